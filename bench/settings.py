"""Settings for the benchmarks: the test settings on a PostgreSQL database of their own."""

import os

import dj_database_url

from tests.settings import *  # noqa: F403

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("RT_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rt_sessions_bench")
    )
}
DEBUG = False
