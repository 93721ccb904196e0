"""Settings of the real relay in the benchmark (bench/relay.py, configurations "ours" and "ours-daphne").

RT_BENCH_RELAY_DATABASE_URL: its PostgreSQL database (bench/relay.py creates it; the tables come from the
app's migrations); RT_BENCH_RELAY_UPSTREAM_URL: the sink, standing where OpenAI stands (the relay opens
`{BASE_URL}/realtime?intent=transcription`). DEBUG off, warnings only, no channel layer (staff's end then
arrives by the relay's database poll, which runs either way).
"""

import os

import dj_database_url

SECRET_KEY = "relay-bench-not-secret"  # noqa: S105 - a benchmark on loopback
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "django_rt_sessions",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.channels_relay.urls"
ASGI_APPLICATION = "bench.real_relay.asgi.application"
DATABASES = {
    "default": {
        **dj_database_url.parse(
            os.environ.get(
                "RT_BENCH_RELAY_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rt_relaybench_ours"
            )
        ),
        # The relay's queries run in asgiref's one thread for sync code: one connection, kept.
        "CONN_MAX_AGE": 600,
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
RT_SESSIONS = {
    "API_KEY": "sk-bench-not-a-real-key",
    "BASE_URL": os.environ.get("RT_BENCH_RELAY_UPSTREAM_URL", "ws://127.0.0.1:8791").replace(
        "ws://", "http://"
    ),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
