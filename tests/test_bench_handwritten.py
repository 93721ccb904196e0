"""The load benchmark's hand-written peer (bench/handwritten/) does what bench/load.py says it does.

It must require a logged-in user (and a correct CSRF token, like any POST view behind the site's
middleware), make the same upstream POST as the app's GA adapter, and return the upstream's JSON; and it
must run with the app's own middleware, database, cache and session settings. Through Django's stack,
against the OpenAI stand-in over a real socket.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from bench import floor

ROOT = Path(__file__).resolve().parent.parent
TOKEN_URL = "/token/"


@pytest.fixture
def peer(settings: Any, openai_standin: Any, db: Any) -> Any:
    """The test settings with the peer's URLs, its login template, and its upstream at the stand-in."""
    settings.ROOT_URLCONF = "bench.handwritten.urls"
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [ROOT / "bench" / "handwritten" / "templates"]},
        *settings.TEMPLATES[1:],
    ]
    settings.OPENAI_BASE_URL = openai_standin.base_url
    settings.OPENAI_API_KEY = openai_standin.api_key
    return openai_standin


def test_a_logged_in_user_gets_the_upstreams_json(peer: Any, api: Client) -> None:
    response = api.post(TOKEN_URL, data="{}", content_type="application/json")

    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert peer.issued == [body["value"]]  # the key the stand-in handed out, passed through
    assert body["session"]["type"] == "transcription"
    assert isinstance(body["expires_at"], int)


def test_it_makes_the_apps_upstream_post(peer: Any, api: Client) -> None:
    api.post(TOKEN_URL, data="{}", content_type="application/json")

    [sent] = peer.requests
    assert (sent.method, sent.path, sent.shape) == ("POST", "/v1/realtime/client_secrets", "openai")
    assert sent.headers["authorization"] == f"Bearer {peer.api_key}"
    assert sent.json == floor.BODY


def test_an_anonymous_client_is_sent_to_the_login_page(peer: Any, client: Client) -> None:
    response = client.post(TOKEN_URL, data="{}", content_type="application/json")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/token/")
    assert peer.requests == []


def test_a_post_without_the_csrf_token_is_refused(peer: Any, csrf_client: Client) -> None:
    assert csrf_client.post(TOKEN_URL, data="{}", content_type="application/json").status_code == 403
    assert peer.requests == []


def test_only_post(peer: Any, api: Client) -> None:
    assert api.get(TOKEN_URL).status_code == 405
    assert peer.requests == []


def test_an_upstream_refusal_is_not_a_201(peer: Any, api: Client, settings: Any) -> None:
    settings.OPENAI_API_KEY = "sk-wrong"
    response = api.post(TOKEN_URL, data="{}", content_type="application/json")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_login_through_its_page_then_a_token_with_the_csrf_header(peer: Any, user: Any) -> None:
    """What bench/load.py does: log in through the login page, then POST with the CSRF header."""
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    logged_in = browser.post(
        "/accounts/login/", {"username": "alice", "password": "pw-alice", "csrfmiddlewaretoken": token}
    )
    assert logged_in.status_code == 302, logged_in.content

    response = browser.post(
        TOKEN_URL,
        data="{}",
        content_type="application/json",
        headers={"X-CSRFToken": browser.cookies["csrftoken"].value},
    )
    assert response.status_code == 201, response.content
    assert len(peer.requests) == 1


SETTINGS_DUMP = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({name: getattr(settings, name) for name in NAMES}, default=str, sort_keys=True))
"""
SHARED = [
    "MIDDLEWARE",
    "DATABASES",
    "CACHES",
    "SESSION_ENGINE",
    "SESSION_CACHE_ALIAS",
    "SESSION_COOKIE_AGE",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "AUTHENTICATION_BACKENDS",
    "AUTH_USER_MODEL",
    "PASSWORD_HASHERS",
]


def _settings_of(module: str, env: dict[str, str]) -> dict[str, Any]:
    script = f"NAMES = {[*SHARED, 'INSTALLED_APPS']!r}\n{SETTINGS_DUMP}"
    done = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": module, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("deployment", ["gevent", "gthread"])
def test_its_settings_are_ours(deployment: str) -> None:
    """The peer reads the app's settings module: same middleware, database, cache and sessions."""
    from bench import load

    env = load.django_environment(
        load.common_environment("http://127.0.0.1:9"),
        ROOT,
        "postgres://postgres@127.0.0.1:5432/rt_bench_settings_only",
        "redis://127.0.0.1:6379/15",
        8000,
        name="peer",
        settings="unused",
        threads=8 if deployment == "gthread" else None,
    )
    ours = _settings_of("bench.load_settings", env)
    peer = _settings_of("bench.handwritten.settings", env)

    assert {name: peer[name] for name in SHARED} == {name: ours[name] for name in SHARED}
    assert ours["SESSION_ENGINE"] == "django.contrib.sessions.backends.cached_db"
    assert ours["CACHES"]["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    database = ours["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["OPTIONS"]["application_name"] == "peer"
    if deployment == "gevent":
        assert database["OPTIONS"]["pool"]["max_size"] == load.DEPLOYMENT_POOL
    else:
        assert "pool" not in database["OPTIONS"]
        assert database["CONN_MAX_AGE"] > 0  # persistent connections
    # A site without the app: none of it, nor DRF or django-ratelimit, is installed in the peer.
    assert "django_rt_sessions" in ours["INSTALLED_APPS"]
    assert not [app for app in peer["INSTALLED_APPS"] if not app.startswith(("django.contrib.", "bench."))]
