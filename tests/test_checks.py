"""System checks for RT_SESSIONS (`manage.py check`)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_rt_sessions.checks import check_settings, check_settings_shape

from .conftest import set_rt

FINE = {"API_KEY": "sk-test", "BASE_URL": "https://api.openai.com/v1"}


SHARED_CACHE = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}


@pytest.fixture(autouse=True)
def _production_like(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """No key in the environment, a shared rate-limit cache (only its BACKEND is read, never connected)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    settings.CACHES = {**settings.CACHES, "ratelimit": SHARED_CACHE}
    settings.RATELIMIT_USE_CACHE = "ratelimit"


def ids(settings: Any, **rt: Any) -> list[str]:
    settings.RT_SESSIONS = rt
    return [message.id for message in check_settings()]


def test_a_good_configuration_passes(settings: Any) -> None:
    assert ids(settings, **FINE) == []


def test_the_defaults_with_an_api_key_pass(settings: Any) -> None:
    assert ids(settings, API_KEY="sk-test") == []


@pytest.mark.parametrize("upstream", ["openai", "openai-beta", "azure", "myproject.upstreams.Custom"])
def test_e001_not_for_known_or_dotted_upstreams(settings: Any, upstream: str) -> None:
    assert "rt_sessions.E001" not in ids(settings, **FINE, UPSTREAM=upstream)


@pytest.mark.parametrize("upstream", ["bogus", "OpenAI", "", "azure-openai"])
def test_e001_for_an_unknown_upstream(settings: Any, upstream: str) -> None:
    assert ids(settings, **FINE, UPSTREAM=upstream) == ["rt_sessions.E001"]


def test_e002_for_azure_without_base_url(settings: Any) -> None:
    assert ids(settings, API_KEY="sk-test", UPSTREAM="azure") == ["rt_sessions.E002"]


def test_e002_not_for_azure_with_base_url(settings: Any) -> None:
    base = "https://res.openai.azure.com/openai/v1"
    assert ids(settings, API_KEY="sk-test", UPSTREAM="azure", BASE_URL=base) == []


def test_e002_not_for_azure_with_base_url_from_env(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://res.openai.azure.com/openai/v1")
    assert ids(settings, API_KEY="sk-test", UPSTREAM="azure") == []


@pytest.mark.parametrize("upstream", ["openai", "openai-beta"])
def test_e002_not_for_other_upstreams_without_base_url(settings: Any, upstream: str) -> None:
    assert "rt_sessions.E002" not in ids(settings, API_KEY="sk-test", UPSTREAM=upstream)


@pytest.mark.parametrize("key", ["USER_RATE", "IP_RATE"])
@pytest.mark.parametrize("rate", ["ten per minute", "10/min", "0/m", "10", 10, "5/0m"], ids=str)
def test_e003_for_a_bad_rate(settings: Any, key: str, rate: Any) -> None:
    assert ids(settings, **FINE, **{key: rate}) == ["rt_sessions.E003"]


@pytest.mark.parametrize("key", ["USER_RATE", "IP_RATE"])
@pytest.mark.parametrize("rate", ["10/m", "1/s", "100/h", "5/10m", None, ""])
def test_e003_not_for_a_good_or_disabled_rate(settings: Any, key: str, rate: Any) -> None:
    assert ids(settings, **FINE, **{key: rate}) == []


def test_e003_for_each_bad_rate(settings: Any) -> None:
    settings.RT_SESSIONS = {**FINE, "USER_RATE": "x", "IP_RATE": "y"}
    messages = check_settings()
    assert [m.id for m in messages] == ["rt_sessions.E003", "rt_sessions.E003"]
    assert "USER_RATE" in messages[0].msg
    assert "IP_RATE" in messages[1].msg


def test_w001_without_an_api_key_in_production(settings: Any) -> None:
    settings.DEBUG = False
    assert ids(settings, BASE_URL="https://api.openai.com/v1") == ["rt_sessions.W001"]


def test_w001_in_debug_too(settings: Any) -> None:
    """With DEBUG and no key every request answers 503 just the same: say so, and how to work offline."""
    settings.DEBUG = True
    settings.RT_SESSIONS = {"BASE_URL": "https://api.openai.com/v1"}
    [message] = check_settings()
    assert message.id == "rt_sessions.W001"
    assert "OPENAI_BASE_URL" in message.hint and "stand-in" in message.hint


def test_w001_not_with_the_key_in_the_environment(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DEBUG = False
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert ids(settings) == []


def test_w001_is_a_warning_and_the_others_errors(settings: Any) -> None:
    settings.DEBUG = False
    settings.RT_SESSIONS = {"UPSTREAM": "bogus", "USER_RATE": "x"}
    levels = {m.id: m.is_serious() for m in check_settings()}
    assert levels == {"rt_sessions.E001": True, "rt_sessions.E003": True, "rt_sessions.W001": False}


def test_check_ids_are_unique_per_problem(settings: Any) -> None:
    """Each kind of problem has its own id, and an id always means the same problem (same hint)."""
    settings.DEBUG = False
    problems = {
        "unknown upstream": {"UPSTREAM": "bogus"},
        "azure without base url": {"UPSTREAM": "azure"},
        "bad user rate": {"UPSTREAM": "openai", "USER_RATE": "x"},
        "bad ip rate": {"UPSTREAM": "openai", "IP_RATE": "y"},
        "no api key": {},
        "beta on openai": {"UPSTREAM": "openai-beta"},
        "plain http": {"BASE_URL": "http://proxy.example/v1"},
        "bad timeout": {"READ_TIMEOUT": 0},
        "unshared cache": {"_cache": "django.core.cache.backends.locmem.LocMemCache"},
        "non-atomic cache": {"_cache": "django.core.cache.backends.redis.RedisCache"},
        "no such cache": {"_alias": "missing"},
        "bad relay url": {"RELAY_URL": "https://example.com/rt/relay"},
        "bad relay origins": {"RELAY_ALLOWED_ORIGINS": ["example.com"]},
    }
    ids_by_problem: dict[str, set[str]] = {}
    hints_by_id: dict[str, set[str]] = {}
    for problem, rt in problems.items():
        backend = rt.pop("_cache", None)
        settings.CACHES = {**settings.CACHES, "ratelimit": {"BACKEND": backend} if backend else SHARED_CACHE}
        settings.RATELIMIT_USE_CACHE = rt.pop("_alias", "ratelimit")
        settings.RT_SESSIONS = rt
        for message in check_settings():
            ids_by_problem.setdefault(problem, set()).add(message.id)
            hints_by_id.setdefault(message.id, set()).add(message.hint)
    own = {
        problem: found - ids_by_problem["no api key"] if problem != "no api key" else found
        for problem, found in ids_by_problem.items()
    }
    assert own == {
        "unknown upstream": {"rt_sessions.E001"},
        "azure without base url": {"rt_sessions.E002"},
        "bad user rate": {"rt_sessions.E003"},
        "bad ip rate": {"rt_sessions.E003"},
        "no api key": {"rt_sessions.W001"},
        "beta on openai": {"rt_sessions.E004"},
        "plain http": {"rt_sessions.E005"},
        "bad timeout": {"rt_sessions.E006"},
        "unshared cache": {"rt_sessions.E007"},
        "non-atomic cache": {"rt_sessions.W006"},
        "no such cache": {"rt_sessions.E009"},
        "bad relay url": {"rt_sessions.E011"},
        "bad relay origins": {"rt_sessions.E012"},
    }
    assert all(len(hints) == 1 for hints in hints_by_id.values())


def test_e004_for_the_beta_shape_on_api_openai_com(settings: Any) -> None:
    assert ids(settings, **FINE, UPSTREAM="openai-beta") == ["rt_sessions.E004"]
    assert (
        ids(settings, API_KEY="sk-test", UPSTREAM="openai-beta", BASE_URL="https://compat.example/v1") == []
    )


@pytest.mark.parametrize(
    ("base_url", "debug", "expected"),
    [
        ("http://proxy.example/v1", False, ["rt_sessions.E005"]),
        ("http://10.1.2.3:8080/v1", False, ["rt_sessions.E005"]),
        ("ftp://api.example/v1", False, ["rt_sessions.E005"]),
        ("http://proxy.example/v1", True, []),
        ("http://127.0.0.1:8765/v1", False, []),
        ("http://localhost:8765/v1", False, []),
        ("http://[::1]:8765/v1", False, []),
        ("https://proxy.example/v1", False, []),
    ],
)
def test_e005_for_plain_http_outside_debug(settings: Any, base_url: str, debug: bool, expected: list) -> None:
    settings.DEBUG = debug
    assert ids(settings, API_KEY="sk-test", BASE_URL=base_url) == expected


@pytest.mark.parametrize(
    "values",
    [
        {"CONNECT_TIMEOUT": 0},
        {"CONNECT_TIMEOUT": -1},
        {"READ_TIMEOUT": 600},
        {"READ_TIMEOUT": "soon"},
        {"MAX_RETRIES": -1},
        {"MAX_RETRIES": 50},
    ],
    ids=str,
)
def test_e006_for_timeouts_and_retries_out_of_range(settings: Any, values: dict) -> None:
    assert ids(settings, **FINE, **values) == ["rt_sessions.E006"]


@pytest.mark.parametrize(
    ("values", "expected", "named"),
    [
        ({"RELAY_URL": "wss://relay.example.com/rt/relay"}, [], ""),
        ({"RELAY_URL": "ws://127.0.0.1:8000/rt/relay"}, [], ""),
        ({"RELAY_URL": "ws://relay.example.com/rt/relay"}, ["rt_sessions.E011"], "only for loopback"),
        ({"RELAY_URL": "/rt/relay"}, ["rt_sessions.E011"], "'/rt/relay'"),
        ({"RELAY_URL": "wss://x.example/rt/relay?a=1"}, ["rt_sessions.E011"], "query"),
        ({"RELAY_ALLOWED_ORIGINS": ["https://app.example.com", "http://localhost:3000"]}, [], ""),
        ({"RELAY_ALLOWED_ORIGINS": "https://app.example.com"}, ["rt_sessions.E012"], "not a list"),
        ({"RELAY_ALLOWED_ORIGINS": ["https://app.example.com/"]}, ["rt_sessions.E012"], "'https://app"),
    ],
)
def test_e011_e012_for_malformed_relay_settings(
    settings: Any, values: dict, expected: list[str], named: str
) -> None:
    settings.RT_SESSIONS = {**FINE, **values}
    messages = check_settings()
    assert [m.id for m in messages] == expected
    assert all(named in m.msg for m in messages)


def test_e006_not_for_sensible_numbers(settings: Any) -> None:
    assert ids(settings, **FINE, CONNECT_TIMEOUT=1, READ_TIMEOUT=30, MAX_RETRIES=0) == []


@pytest.mark.parametrize(
    "backend",
    ["django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache"],
)
def test_e007_for_an_unshared_rate_limit_cache_outside_debug(settings: Any, backend: str) -> None:
    settings.CACHES = {**settings.CACHES, "ratelimit": {"BACKEND": backend}}
    settings.DEBUG = False
    assert ids(settings, **FINE) == ["rt_sessions.E007"]
    settings.DEBUG = False
    assert ids(settings, **FINE, USER_RATE=None, IP_RATE=None) == []  # no limits: nothing to count


@pytest.mark.parametrize(
    "backend",
    ["django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache"],
)
def test_w005_for_an_unshared_rate_limit_cache_with_debug(settings: Any, backend: str) -> None:
    """A site that follows the README but keeps Django's default cache is told, even with DEBUG on, and
    without django_ratelimit in INSTALLED_APPS; a Warning, so that runserver still starts."""
    settings.CACHES = {**settings.CACHES, "ratelimit": {"BACKEND": backend}}
    settings.DEBUG = True
    [message] = check_settings_with(settings, **FINE)
    assert (message.id, message.is_serious()) == ("rt_sessions.W005", False)
    assert "development server" in message.msg and "django-redis" in message.hint


def test_the_default_cache_of_a_new_site_is_reported(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    del settings.RATELIMIT_USE_CACHE
    settings.DEBUG = True
    assert "django_ratelimit" not in settings.INSTALLED_APPS
    assert ids(settings, **FINE) == ["rt_sessions.W005"]
    settings.DEBUG = False
    assert ids(settings, **FINE) == ["rt_sessions.E007"]


@pytest.mark.parametrize(
    "backend",
    ["django.core.cache.backends.redis.RedisCache", "django.core.cache.backends.db.DatabaseCache"],
)
@pytest.mark.parametrize("debug", [True, False])
def test_w006_for_a_cache_without_atomic_increments(settings: Any, backend: str, debug: bool) -> None:
    settings.CACHES = {**settings.CACHES, "ratelimit": {"BACKEND": backend}}
    settings.DEBUG = debug
    assert ids(settings, **FINE) == ["rt_sessions.W006"]


def test_e009_for_a_rate_limit_cache_that_is_not_configured(settings: Any) -> None:
    settings.RATELIMIT_USE_CACHE = "missing"
    assert ids(settings, **FINE) == ["rt_sessions.E009"]


def check_settings_with(settings: Any, **rt: Any) -> list[Any]:
    settings.RT_SESSIONS = rt
    return list(check_settings())


def test_the_check_is_registered(settings: Any) -> None:
    set_rt(settings, UPSTREAM="bogus")
    with pytest.raises(SystemCheckError, match=r"rt_sessions\.E001"):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    set_rt(settings, UPSTREAM="openai")
    call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


def test_w007_names_an_unknown_key_and_the_closest_valid_one(settings: Any) -> None:
    settings.RT_SESSIONS = {**FINE, "USER_RATES": "5/m", "UPSTREEM": "openai", "COLOUR": "blue"}
    messages = {str(m.msg): m for m in check_settings_shape()}
    assert set(messages) == {
        "RT_SESSIONS has an unknown key 'USER_RATES', which is ignored.",
        "RT_SESSIONS has an unknown key 'UPSTREEM', which is ignored.",
        "RT_SESSIONS has an unknown key 'COLOUR', which is ignored.",
    }
    assert {m.id for m in messages.values()} == {"rt_sessions.W007"}
    assert messages["RT_SESSIONS has an unknown key 'USER_RATES', which is ignored."].hint.startswith(
        "Did you mean USER_RATE?"
    )
    assert messages["RT_SESSIONS has an unknown key 'UPSTREEM', which is ignored."].hint.startswith(
        "Did you mean UPSTREAM?"
    )
    assert (
        "The settings are: UPSTREAM, API_KEY"
        in messages["RT_SESSIONS has an unknown key 'COLOUR', which is ignored."].hint
    )


def test_w007_not_for_known_keys(settings: Any) -> None:
    settings.RT_SESSIONS = {**FINE, "USER_RATE": "5/m", "AUDIT_RETENTION_DAYS": 30}
    assert check_settings_shape() == []


@pytest.mark.parametrize("value", [["UPSTREAM", "openai"], "openai", 42])
def test_e010_for_settings_that_are_not_a_dict_and_no_crash(settings: Any, value: Any) -> None:
    settings.RT_SESSIONS = value
    messages = check_settings_shape()
    assert [m.id for m in messages] == ["rt_sessions.E010"]
    assert type(value).__name__ in messages[0].msg
    # Every other check runs on the defaults instead of crashing (manage.py check prints them all).
    assert "rt_sessions.E010" in [m.id for m in run_checks()]
