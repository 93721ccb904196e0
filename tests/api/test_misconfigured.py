"""Settings that `manage.py check` reports as Errors, met by a request under a server that runs no checks
(uvicorn, daphne, gunicorn, or the test client): a JSON 503 `misconfigured`, audited, logged once at ERROR
with the check's hint; never a traceback page (docs/http-api.md#errors)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from django_rt_sessions.issuing import service
from django_rt_sessions.models import SessionPreset, TokenRequest

from ..conftest import post, set_rt

pytestmark = pytest.mark.django_db

CASES = {
    "unknown upstream": (
        {"UPSTREAM": "open-ai"},
        {},
        "rt_sessions.E001",
        "RT_SESSIONS['UPSTREAM'] is 'open-ai'",
    ),
    "zero read timeout": ({"READ_TIMEOUT": 0}, {}, "rt_sessions.E006", "RT_SESSIONS['READ_TIMEOUT'] must be"),
    "missing rate-limit cache": ({}, {"RATELIMIT_USE_CACHE": "limits"}, "rt_sessions.E009", "'limits'"),
    "not a rate": ({"USER_RATE": "10 per minute"}, {}, "rt_sessions.E003", "'10 per minute'"),
    "malformed models": ({"MODELS": {"m": {"fields": "all"}}}, {}, "rt_sessions.E008", "['m']['fields']"),
}


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG"])
@pytest.mark.parametrize(("rt", "django", "check_id", "named"), CASES.values(), ids=CASES.keys())
def test_a_misconfigured_site_answers_503_json_audited_and_logged_once(
    user: Any,
    preset: SessionPreset,
    upstream: Any,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    rt: dict[str, Any],
    django: dict[str, Any],
    check_id: str,
    named: str,
    debug: bool,
) -> None:
    monkeypatch.setattr(service, "_logged_once", set())  # a new process
    settings.DEBUG = debug
    set_rt(settings, **rt)
    for name, value in django.items():
        setattr(settings, name, value)
    client = Client(raise_request_exception=False)  # as a server would: a bug would be a 500 page
    client.force_login(user)
    with caplog.at_level(logging.ERROR, logger="django_rt_sessions"):
        responses = [post(client, {}) for _ in range(3)]
    for response in responses:
        assert response.status_code == 503, response.content[:300]
        assert response["Content-Type"] == "application/json"
        assert response.json() == {
            "detail": "The service is not configured correctly; the site's staff need to fix it.",
            "code": "misconfigured",
        }
    assert not upstream.requests  # nothing was sent
    rows = list(TokenRequest.objects.all())
    assert [(r.outcome, r.status_code, r.error_code) for r in rows] == [
        ("misconfigured", 503, "misconfigured")
    ] * 3
    assert check_id in rows[0].error_message and named in rows[0].error_message
    logged = [
        r for r in caplog.records if r.name.startswith("django_rt_sessions") and r.levelno == logging.ERROR
    ]
    assert len(logged) == 1, [r.getMessage() for r in logged]  # once, not once per request
    assert check_id in logged[0].getMessage() and "Hint:" in logged[0].getMessage()


def test_an_unshared_cache_outside_debug_still_serves(
    user: Any, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    """rt_sessions.E007 is refused by manage.py check, but a running site survives it (limits per process)."""
    settings.CACHES = {
        **settings.CACHES,
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.RATELIMIT_USE_CACHE = "local"
    client = Client()
    client.force_login(user)
    assert post(client, {}).status_code == 201


def test_the_site_recovers_when_the_setting_is_fixed(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, UPSTREAM="open-ai")
    assert post(api, {}).status_code == 503
    set_rt(settings, UPSTREAM="openai")
    assert post(api, {}).status_code == 201


def test_the_checks_answer_follows_the_environment_and_the_settings(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issuing service reuses the checks' answer until an input changes: OPENAI_BASE_URL (read from the
    environment), or any setting (`setting_changed`)."""
    from django_rt_sessions.checks import configuration_errors

    def ids() -> set[str]:
        return {message.id for message in configuration_errors() if message.id is not None}

    settings.DEBUG = False
    settings.RT_SESSIONS = {key: v for key, v in settings.RT_SESSIONS.items() if key != "BASE_URL"}
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.example.com/v1")
    assert "rt_sessions.E005" not in ids()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://api.example.com/v1")  # unencrypted: no signal tells
    assert "rt_sessions.E005" in ids()
    set_rt(settings, BASE_URL="https://api.example.com/v1")
    assert "rt_sessions.E005" not in ids()
    set_rt(settings, READ_TIMEOUT=0)
    assert "rt_sessions.E006" in ids()
