"""Settings of the load benchmark (bench/load.py): the example project as deployed in docs/deployment.md.

The example project's settings, plus what the deployment guide recommends for production, plus rate
limits that are counted (in Redis, as in production) but high enough never to refuse the benchmark:

RT_BENCH_LOAD_DATABASE_URL  PostgreSQL database of the benchmark
                            (default postgres://postgres@127.0.0.1:5432/rt_bench_load)
RT_BENCH_DB_POOL            connections in each worker's psycopg pool, 0 for no pool (default 16)
RT_BENCH_CONN_MAX_AGE       CONN_MAX_AGE when there is no pool (default 0)
RT_BENCH_SESSION_ENGINE     SESSION_ENGINE (default django.contrib.sessions.backends.cached_db)
RT_BENCH_SERVER_SIDE_BINDING, RT_BENCH_SYNC_COMMIT   experiment knobs: psycopg server-side binding (any
                            value), PostgreSQL synchronous_commit (on/off) for the app's connections

REDIS_URL, OPENAI_API_KEY, OPENAI_BASE_URL, DJANGO_DEBUG are read by the example settings.
"""

import os

import dj_database_url

from example_project.settings import *  # noqa: F403
from example_project.settings import RT_SESSIONS

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("RT_BENCH_LOAD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rt_bench_load"),
        conn_max_age=int(os.environ.get("RT_BENCH_CONN_MAX_AGE", "0")),
    )
}
_pool = int(os.environ.get("RT_BENCH_DB_POOL", "16"))
if _pool:
    # Django's own connection pool (Django 5.1+, psycopg[pool]): a request borrows a connection and gives
    # it back when it ends, so the number of PostgreSQL connections is bounded per worker process.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 2, "max_size": _pool, "timeout": 10}}

# Sessions read from the cache (Redis) and written through to the database: no session query per request.
if os.environ.get("RT_BENCH_SERVER_SIDE_BINDING"):
    # An experiment knob: psycopg's server-side binding (prepared statements after 5 executions).
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
if os.environ.get("RT_BENCH_SYNC_COMMIT"):
    # An experiment knob: PostgreSQL's synchronous_commit for the app's connections.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c synchronous_commit={os.environ['RT_BENCH_SYNC_COMMIT']}"
    )

SESSION_ENGINE = os.environ.get("RT_BENCH_SESSION_ENGINE", "django.contrib.sessions.backends.cached_db")

RT_SESSIONS = {**RT_SESSIONS, "USER_RATE": "100000000/m", "IP_RATE": "100000000/m"}

# Production logging: warnings and errors only, no access log (gunicorn's accesslog is off too).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
