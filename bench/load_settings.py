"""Settings of the load benchmark (bench/load.py): the example project's settings, as deployed.

The database, the pool, the caches and the sessions are the example project's own (example_project/
settings.py), read from the environment bench/load.py gives every Django server: DATABASE_URL (PostgreSQL),
DATABASE_POOL (16 for the documented gevent deployment; unset for persistent connections, with
DATABASE_CONN_MAX_AGE), REDIS_URL, DJANGO_SESSION_ENGINE (cached_db), DJANGO_DEBUG=false. The hand-written
peer (bench/handwritten/settings.py) reads this module too, so that both run with the same middleware,
database, cache and session settings. This module adds only what a benchmark needs:

- rate limits that are counted (in Redis, as in production) but high enough never to refuse the benchmark;
- production logging (warnings and errors only, no access log);
- RT_BENCH_APP_NAME: the PostgreSQL `application_name` of the server's connections, by which
  bench/load.py finds its PostgreSQL backends (and their CPU);
- experiment knobs: RT_BENCH_SERVER_SIDE_BINDING (any value: psycopg's server-side binding),
  RT_BENCH_SYNC_COMMIT (on/off: PostgreSQL's synchronous_commit for the server's connections).
"""

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import DATABASES, RT_SESSIONS

_options = DATABASES["default"].setdefault("OPTIONS", {})
if os.environ.get("RT_BENCH_APP_NAME"):
    _options["application_name"] = os.environ["RT_BENCH_APP_NAME"]
if os.environ.get("RT_BENCH_SERVER_SIDE_BINDING"):
    _options["server_side_binding"] = True
if os.environ.get("RT_BENCH_SYNC_COMMIT"):
    _options["options"] = f"-c synchronous_commit={os.environ['RT_BENCH_SYNC_COMMIT']}"

RT_SESSIONS = {**RT_SESSIONS, "USER_RATE": "100000000/m", "IP_RATE": "100000000/m"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
