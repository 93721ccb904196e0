"""tests.settings for a site whose API also takes DRF token authentication, served in a subprocess by
tests/test_browser_client.py: a SQLite file and the OpenAI stand-in named by the environment."""

import os

from .settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RT_CLIENT_DATABASE"]}}
# Session authentication first, as on most sites: a request with a token must not be claimed by it (the client
# sends no cookie with an Authorization header, so there is no session to check CSRF for).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
}
RT_SESSIONS = {
    "API_KEY": os.environ["RT_CLIENT_API_KEY"],
    "BASE_URL": os.environ["RT_CLIENT_BASE_URL"],
    "USER_RATE": "1000/m",
    "IP_RATE": "1000/m",
    "MAX_RETRIES": 0,
}
