"""Settings of the relay benchmark's Channels application (bench/relay.py), DEBUG off.

RT_BENCH_RELAY_DATABASE_URL: its PostgreSQL database (default rt_relaybench on loopback; bench/relay.py
creates it and its table). RT_BENCH_RELAY_LAYER=redis adds a channels-redis channel layer on
RT_BENCH_RELAY_REDIS_URL (default db 12), each consumer then in a group of its own.
"""

import os

import dj_database_url

SECRET_KEY = "relay-bench-not-secret"  # noqa: S105 - a benchmark on loopback
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "bench.channels_relay"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.channels_relay.urls"
ASGI_APPLICATION = "bench.channels_relay.asgi.application"
DATABASES = {
    "default": {
        **dj_database_url.parse(
            os.environ.get("RT_BENCH_RELAY_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rt_relaybench")
        ),
        # The relay's queries run in asgiref's one thread for sync code: one connection, kept.
        "CONN_MAX_AGE": 600,
    }
}
if os.environ.get("RT_BENCH_RELAY_LAYER", "none") == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": os.environ.get("RT_BENCH_RELAY_REDIS_URL", "redis://127.0.0.1:6379/12"),
                        # redis-py 8 reads with a 5 s timeout by default; the layer's receive is a
                        # blocking BZPOPMIN of up to 5 s, so every idle consumer would crash
                        # (channels_redis issue #422).
                        "socket_timeout": None,
                    }
                ]
            },
        }
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
