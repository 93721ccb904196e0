"""Settings of the example project, read from the environment.

DATABASE_URL      any dj-database-url URL; default: SQLite file db.sqlite3 at the repository root
REDIS_URL         the shared cache for rate limits and cached_db sessions (django-redis); default: local
                  memory and database sessions (dev server only)
OPENAI_API_KEY    the server-side key; without it the demo serves a local OpenAI stand-in (demo/apps.py)
RT_STANDIN_SPEECH that stand-in's speech engine: whisper, pocketsphinx, none or auto (the default: Whisper
                  when installed, else PocketSphinx); read by the stand-in itself (docs/testing.md)
OPENAI_BASE_URL   the upstream base URL (required for RT_UPSTREAM=azure)
RT_UPSTREAM       openai (default), openai-beta or azure
RT_CONNECT_TIMEOUT, RT_READ_TIMEOUT, RT_MAX_RETRIES, RT_USER_RATE, RT_IP_RATE
                  the RT_SESSIONS settings of the same names; unset: the app's defaults
DATABASE_CONN_MAX_AGE  seconds a database connection is kept (default 60; 0: one per request)
DATABASE_POOL     size of Django's PostgreSQL connection pool per process (default: no pool); set it with
                  the gevent workers of example_project/gunicorn.conf.py (docs/deployment.md)
DJANGO_SESSION_ENGINE  default: cached_db with REDIS_URL, db without
DJANGO_SECRET_KEY, DJANGO_DEBUG, DJANGO_ALLOWED_HOSTS
DJANGO_LOG_LEVEL  level of the console log (default INFO; DEBUG includes Django's own DEBUG records)
"""

import importlib.util
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


# INSECURE: a development-only key, public in this repository. Set DJANGO_SECRET_KEY anywhere else
# (it also keys the OpenAI-Safety-Identifier HMAC).
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "django-insecure-example-project-dev-only-key"
DEBUG = _env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    # Channels' daphne first: `manage.py runserver` then serves the site and the relay's WebSocket (ASGI)
    # from one process, as Channels documents.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_rt_sessions",
    "example_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"  # the site and the relay (asgi.py)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Persistent connections (DATABASE_CONN_MAX_AGE seconds, 0 = one per request), health-checked before
        # a request reuses one: after a database restart a worker reconnects instead of using a dead socket.
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE") or 60),
        conn_health_checks=True,
    )
}
_pool_size = int(os.environ.get("DATABASE_POOL") or 0)
if _pool_size and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Django's connection pool (Django 5.1+, psycopg[pool]) instead of persistent connections: required
    # under gevent workers (docs/deployment.md), where persistent connections would be one per greenlet.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": _pool_size,
        "timeout": 10,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    # The documented deployment (docs/deployment.md, "Redis").
    CACHES = {
        # The rate limits count here. django-redis increments atomically (one INCR; Django's built-in
        # RedisCache takes two round trips). Errors are never ignored on this cache: with Redis down the
        # app refuses token requests with 503 rate_limit_unavailable instead of letting them through.
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rt-sessions-example",
            # A dead or stuck Redis must answer fast (the app then refuses with 503 rate_limit_unavailable),
            # not hold a worker thread for the operating system's TCP timeouts.
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 1.0},
        },
        # The sessions' cache, on the same Redis: cached_db sessions read it before the database and write
        # through to the database. Its errors are ignored (a miss), so with Redis down every session comes
        # from the database: users stay logged in, and the token endpoint can answer its documented 503.
        "sessions": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rt-sessions-example-sessions",
            # A session costs at most two of these (read, then re-fill) while Redis hangs.
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25, "IGNORE_EXCEPTIONS": True},
        },
    }
    SESSION_CACHE_ALIAS = "sessions"
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True  # an outage of the session cache is logged, not silent
    _default_session_engine = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Local memory is per process: each process counts its own rate limits (and the preset cache is not
    # used). That is right for the single-process development server this demo runs on, and wrong for
    # anything with several workers or hosts, which the app's check says: rt_sessions.W005 with DEBUG (the
    # Error rt_sessions.E007 without). Production sets REDIS_URL, and then nothing is silenced.
    SILENCED_SYSTEM_CHECKS = ["rt_sessions.W005"]
    _default_session_engine = "django.contrib.sessions.backends.db"
SESSION_ENGINE = os.environ.get("DJANGO_SESSION_ENGINE") or _default_session_engine

# The relay's channel layer: staff's "End session" reaches the relay process of a session on any host
# (docs/relay.md). On the site's Redis in production; in memory for the single-process dev server.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py reads with a 5 s timeout by default, while the layer's receive blocks for up to
                # 5 s: every idle listener would fail (channels_redis issue #422).
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": "rt-sessions-example:channels:",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Behind a reverse proxy, REMOTE_ADDR is the proxy and every user shares one IP rate limit: set
# RATELIMIT_IP_META_KEY to the header your proxy sets (see "Behind a proxy" in the README). Left unset here,
# because the dev server is reached directly and a header a client can forge must not be trusted blindly.
# RATELIMIT_IP_META_KEY = "HTTP_X_REAL_IP"

# Only the keys that have values: django-rt-sessions has defaults for the rest (docs/configuration.md).
RT_SESSIONS = {
    key: value
    for key, value in {
        "UPSTREAM": os.environ.get("RT_UPSTREAM") or "openai",
        "API_KEY": os.environ.get("OPENAI_API_KEY"),
        "BASE_URL": os.environ.get("OPENAI_BASE_URL"),
        # Optional tuning; unset means the app's defaults (docs/configuration.md).
        "CONNECT_TIMEOUT": os.environ.get("RT_CONNECT_TIMEOUT"),
        "READ_TIMEOUT": os.environ.get("RT_READ_TIMEOUT"),
        "MAX_RETRIES": os.environ.get("RT_MAX_RETRIES"),
        "USER_RATE": os.environ.get("RT_USER_RATE"),
        "IP_RATE": os.environ.get("RT_IP_RATE"),
    }.items()
    if value
}
if not os.environ.get("OPENAI_API_KEY"):
    # The demo brings its own stand-in for OpenAI (demo/apps.py), started where tokens are served: the
    # check that warns about a missing key (rt_sessions.W001) does not apply to it.
    SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "rt_sessions.W001"]

# The `openapi` extra (drf-spectacular): the API's OpenAPI 3 schema at /api/schema/.
if importlib.util.find_spec("drf_spectacular"):
    INSTALLED_APPS.append("drf_spectacular")
    REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
    SPECTACULAR_SETTINGS = {
        "TITLE": "django-rt-sessions example",
        "VERSION": "0.1.0",
        "SERVE_INCLUDE_SCHEMA": False,  # the schema endpoint does not describe itself
    }

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_rt_sessions": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "example_project": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
# DJANGO_LOG_LEVEL=DEBUG logs everything at that level, Django's own loggers included (django.template,
# django.db.backends): no key may reach the log even then (tests/test_example_logging.py).
LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "").strip().upper()
if LOG_LEVEL:
    LOGGING["root"] = {"handlers": ["console"], "level": LOG_LEVEL}
    for _logger in ("django", "django_rt_sessions", "example_project"):
        LOGGING["loggers"][_logger] = {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}
