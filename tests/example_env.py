"""The environment for a subprocess running the example project: the caller's, minus everything the
example project (settings, gunicorn.conf.py, demo app) reads, so a developer's own variables cannot leak in.
The tests then set what they need explicitly."""

from __future__ import annotations

import os

EXAMPLE_ENV_PREFIXES = ("RT_", "DJANGO_", "OPENAI_", "DATABASE_", "GUNICORN_")
EXAMPLE_ENV_KEYS = ("REDIS_URL", "WEB_CONCURRENCY", "RUN_MAIN")


def clean_environ(**values: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(EXAMPLE_ENV_PREFIXES) and key not in EXAMPLE_ENV_KEYS
    }
    env.update(values)
    return env
