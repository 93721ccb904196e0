"""Shared fixtures. The OpenAI stand-in fixtures (`openai_standin`, `openai_standin_server`) come from
the package's own pytest plugin, the same one site owners get."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from django_rt_sessions.models import SessionPreset
from django_rt_sessions.upstreams import transport

from .log_guard import LogGuard, guard_fixture_body

TRANSCRIBE_URL = "/rt/transcription-sessions/"
PRESETS_URL = "/rt/presets/"

# A model that takes server turn detection (gpt-live-transcribe takes none: the client commits turns).
SESSION = {
    "input_audio_format": "pcm16",
    "input_audio_noise_reduction": {"type": "far_field"},
    "input_audio_transcription": {"model": "gpt-transcribe", "language": "fr", "prompt": ""},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    },
    "include": ["item.input_audio_transcription.logprobs"],
}


# The least a preset's session holds: a model.
MINIMAL_SESSION = {"input_audio_transcription": {"model": "gpt-live-transcribe"}}


DROP = object()  # for `changed_copy`: delete the key


def changed_copy(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `base` with dotted-path changes (`turn_detection__threshold=1.5`); DROP deletes."""
    result = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = result
        for key in parents:
            target = target[key]
        if value is DROP:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return result


def pytest_report_header(config: Any) -> list[str]:
    database = os.environ.get("RT_TEST_DATABASE_URL", "sqlite (in memory)")
    cache_url = os.environ.get("RT_TEST_REDIS_URL", "local memory")
    return [f"rt-sessions: database={database.split('@')[-1]} cache={cache_url}"]


@pytest.fixture(autouse=True)
def _clean_state(settings: Any) -> Iterator[None]:
    """Rate-limit counters live in the cache and upstream connections in a per-thread pool: reset both."""
    cache.clear()
    transport.close_sessions()
    settings.RT_SESSIONS = {"API_KEY": "sk-test-placeholder", "BASE_URL": "http://127.0.0.1:9/v1"}
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_secret_in_logs(request: pytest.FixtureRequest) -> Iterator[LogGuard]:
    """Every test: no API key or ephemeral key in any log record at DEBUG (tests/log_guard.py)."""
    yield from guard_fixture_body(request)


@pytest.fixture
def upstream(openai_standin: Any, settings: Any) -> Any:
    """The stand-in, with RT_SESSIONS pointing at it (GA shape) and fast timeouts for the fault tests."""
    settings.RT_SESSIONS = {
        **settings.RT_SESSIONS,
        "UPSTREAM": "openai",
        "BASE_URL": openai_standin.base_url,
        "API_KEY": openai_standin.api_key,
        "READ_TIMEOUT": 2,
        "CONNECT_TIMEOUT": 1,
    }
    return openai_standin


def set_rt(settings: Any, **values: Any) -> None:
    settings.RT_SESSIONS = {**settings.RT_SESSIONS, **values}


@pytest.fixture
def preset(db: Any) -> SessionPreset:
    return SessionPreset.objects.create(
        name="meetings-fr",
        title="Meetings (French)",
        default=True,
        session=copy.deepcopy(SESSION),
        expires_after_seconds=60,
        overridable=["language", "prompt", "noise_reduction"],
    )


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", password="pw-alice")


@pytest.fixture
def api(client: Client, user: Any) -> Client:
    """A logged-in client (CSRF checks off, as Django's test client does by default)."""
    client.force_login(user)
    return client


@pytest.fixture
def csrf_client(user: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.fixture
def group(db: Any) -> Group:
    return Group.objects.create(name="transcribers")


def post(client: Client, body: Any = None, **extra: Any) -> Any:
    data = (
        "" if body is None else (body if isinstance(body, (str, bytes)) else __import__("json").dumps(body))
    )
    return client.post(TRANSCRIBE_URL, data=data, content_type="application/json", **extra)
