"""Settings of the hand-written peer: ours (bench/load_settings.py) without the app, plus one view.

Middleware, DATABASES, CACHES, SESSION_*, SECRET_KEY, DEBUG and ALLOWED_HOSTS are the very values the
example project runs with (they are imported, not copied), so a session cookie issued by one is valid on
the other and both pay for the same session read and user query.
"""

import os

from bench.load_settings import *  # noqa: F403
from bench.load_settings import INSTALLED_APPS as _OURS

# What a site without django-rt-sessions has: Django's own apps (admin, auth, sessions …), and this one.
INSTALLED_APPS = [app for app in _OURS if app.startswith("django.contrib.")] + ["bench.handwritten"]
ROOT_URLCONF = "bench.handwritten.urls"
WSGI_APPLICATION = "bench.handwritten.wsgi.application"

OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
