"""The example project: its settings read from the environment, and a demo user getting a token end to end.

The suite itself runs with tests.settings, so everything that needs example_project.settings runs in a
subprocess with a controlled environment.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .example_env import clean_environ, serving

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent

# Runs in the subprocess: set up Django with the example settings, report what the tests check.
INSPECT = """
import json, os, sys, threading
sys.argv = json.loads(os.environ.pop("RT_TEST_ARGV", '["manage.py", "check"]'))
os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
import django
django.setup()
from django.conf import settings
from django.core.checks import run_checks
from example_project.demo import apps
print(json.dumps({
    "database": settings.DATABASES["default"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "silenced": list(getattr(settings, "SILENCED_SYSTEM_CHECKS", [])),
    "session_engine": settings.SESSION_ENGINE,
    "session_cache": settings.SESSION_CACHE_ALIAS,
    "ignoring_errors": sorted(
        alias for alias, cache in settings.CACHES.items() if cache.get("OPTIONS", {}).get("IGNORE_EXCEPTIONS")
    ),
    "rt_sessions": settings.RT_SESSIONS,
    "standin": apps._standin.base_url if apps._standin else None,
    "standin_threads": [t.name for t in threading.enumerate() if t.name == "openai-standin"],
    "checks": [m.id for m in run_checks() if not m.is_silenced()],
}, default=str))
"""


def example_env(**values: str) -> dict[str, str]:
    return clean_environ(**values)


def inspect_settings(argv: list[str] | None = None, **values: str) -> dict[str, Any]:
    env = example_env(**values)
    if argv is not None:
        env["RT_TEST_ARGV"] = json.dumps(argv)
    completed = subprocess.run(  # noqa: S603  (our own interpreter and script)
        [sys.executable, "-c", INSPECT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_defaults_sqlite_locmem_and_standin(tmp_path: Path) -> None:
    report = inspect_settings()
    assert report["database"]["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(report["database"]["NAME"]) == ROOT / "db.sqlite3"
    # Local memory only for the single-process dev server, so the app's shared-cache warning is silenced.
    assert report["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    # With no OPENAI_API_KEY the demo brings its own stand-in: the missing-key warning does not apply.
    assert report["silenced"] == ["rt_sessions.W005", "rt_sessions.W001"]
    assert report["checks"] == []
    assert report["session_engine"] == "django.contrib.sessions.backends.db"
    # No key: the demo serves the stand-in on loopback and points the app at it.
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", report["standin"])
    assert report["rt_sessions"]["BASE_URL"] == report["standin"]
    assert report["rt_sessions"]["API_KEY"]
    assert report["rt_sessions"]["UPSTREAM"] == "openai"


def test_database_url_and_redis_url(tmp_path: Path) -> None:
    database = tmp_path / "other.sqlite3"
    report = inspect_settings(DATABASE_URL=f"sqlite:///{database}", REDIS_URL="redis://127.0.0.1:6390/3")
    assert report["database"]["NAME"] == str(database)
    # django-redis increments atomically; Django's built-in RedisCache would draw rt_sessions.W006.
    assert report["cache"] == "django_redis.cache.RedisCache"
    assert report["cache_location"] == "redis://127.0.0.1:6390/3"
    assert report["silenced"] == ["rt_sessions.W001"]  # no OPENAI_API_KEY: the demo's stand-in
    assert report["checks"] == []
    # The documented deployment: cached_db sessions in a cache of their own whose errors fall back to the
    # database; the rate limits' cache never ignores an error.
    assert report["session_engine"] == "django.contrib.sessions.backends.cached_db"
    assert report["session_cache"] == "sessions"
    assert report["ignoring_errors"] == ["sessions"]

    postgres = inspect_settings(DATABASE_URL="postgres://u:p@db.example:5433/rt")
    assert postgres["database"]["ENGINE"] == "django.db.backends.postgresql"
    assert (postgres["database"]["HOST"], postgres["database"]["PORT"]) == ("db.example", 5433)


def test_openai_environment_is_used_as_given_and_no_standin() -> None:
    report = inspect_settings(
        argv=["manage.py", "runserver", "--noreload"],
        OPENAI_API_KEY="sk-harness",
        OPENAI_BASE_URL="http://127.0.0.1:9999/openai/v1",
        RT_UPSTREAM="azure",
    )
    assert report["rt_sessions"] == {
        "UPSTREAM": "azure",
        "API_KEY": "sk-harness",
        "BASE_URL": "http://127.0.0.1:9999/openai/v1",
    }
    assert report["standin"] is None
    assert report["standin_threads"] == []


def test_azure_without_key_points_at_the_standins_azure_path() -> None:
    report = inspect_settings(RT_UPSTREAM="azure")
    assert report["rt_sessions"]["UPSTREAM"] == "azure"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/openai/v1", report["rt_sessions"]["BASE_URL"])
    assert report["checks"] == []


def test_runserver_reloader_parent_starts_no_standin() -> None:
    # The autoreloader's parent only watches files; its child (RUN_MAIN=true) serves and gets the stand-in.
    parent = inspect_settings(argv=["manage.py", "runserver", "127.0.0.1:0"])
    assert parent["standin"] is None
    child = inspect_settings(argv=["manage.py", "runserver", "127.0.0.1:0"], RUN_MAIN="true")
    assert child["standin"] is not None
    assert len(child["standin_threads"]) == 1
    noreload = inspect_settings(argv=["manage.py", "runserver", "--noreload"])
    assert noreload["standin"] is not None


def test_commands_that_never_call_the_upstream_start_no_standin() -> None:
    assert inspect_settings(argv=["manage.py", "migrate"])["standin"] is None
    assert inspect_settings(argv=["manage.py", "rt_sessions_issue", "--user", "demo"])["standin"] is not None


def test_manage_py_check_passes_without_a_key() -> None:
    completed = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=example_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "local OpenAI stand-in" in completed.stderr


# ---------------------------------------------------------------------------------------------- end to end

SERVE = """
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
call_command("demo_setup")
call_command("demo_setup")  # idempotent
from werkzeug.serving import make_server
from example_project.wsgi import application
server = make_server("127.0.0.1", 0, application, threaded=True)
print("LISTENING", server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The example project's WSGI app on a free port with a fresh SQLite file; yields (url, setup output)."""
    env = example_env(DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}", PYTHONUNBUFFERED="1")
    with serving(SERVE, env, what="the demo server", timeout=30) as (url, output):
        yield url, "".join(output)


def browser() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy from the environment
    return session


def test_demo_user_gets_a_token_from_the_standin(demo_server: tuple[str, str]) -> None:
    url, setup_output = demo_server
    assert "demo-only" in setup_output
    assert "'admin'" in setup_output and "/admin/" in setup_output
    assert "Imported the example presets" in setup_output
    assert "Presets exist already" in setup_output  # the second run changed nothing

    client = browser()
    # Not logged in: the home page sends to Django's login.
    response = client.get(f"{url}/", allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")

    login = client.get(f"{url}/accounts/login/", timeout=10)
    assert login.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
    assert token is not None
    response = client.post(
        f"{url}/accounts/login/",
        data={"username": "demo", "password": "demo", "csrfmiddlewaretoken": token.group(1), "next": "/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:500]
    assert response.headers["Location"] == "/"

    home = client.get(f"{url}/", timeout=10)
    assert home.status_code == 200
    for element_id in ("preset", "language", "get-session", "result", "countdown", "error"):
        assert f'id="{element_id}"' in home.text
    assert ">demo<" in home.text

    presets = client.get(f"{url}/rt/presets/", timeout=10).json()["results"]
    default = next(p for p in presets if p["default"])
    assert default["overridable"] == ["language"]

    csrf = client.cookies["csrftoken"]
    headers = {"X-CSRFToken": csrf, "Content-Type": "application/json"}
    # Without the CSRF header the session-authenticated POST is refused, as in a browser.
    refused = client.post(f"{url}/rt/transcription-sessions/", data="{}", timeout=10)
    assert refused.status_code == 403

    response = client.post(
        f"{url}/rt/transcription-sessions/",
        data=json.dumps({"preset": default["name"], "language": "de"}),
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["client_secret"]["value"].startswith("ek_")
    assert body["client_secret"]["expires_at"] > time.time()
    assert body["preset"] == default["name"]
    assert body["input_audio_transcription"]["language"] == "de"
    assert response.headers["Cache-Control"] == "no-store"

    # Every example preset works against the stand-in.
    for preset in presets:
        response = client.post(
            f"{url}/rt/transcription-sessions/",
            data=json.dumps({"preset": preset["name"]}),
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 201, (preset["name"], response.text)
