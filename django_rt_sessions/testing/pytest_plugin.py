"""pytest fixtures for the OpenAI stand-in (registered through the ``pytest11`` entry point).

``openai_standin_server`` (session scope)
    One started :class:`~django_rt_sessions.testing.OpenAIStandIn` for the whole run, stopped at the end.

``openai_standin`` (function scope)
    The session server after ``reset()`` (no recorded requests, no queued behaviours, default
    ``beta_disabled``). When Django is configured and pytest-django is installed, it also points
    ``settings.RT_SESSIONS`` at the stand-in for the test: ``BASE_URL`` (``azure_base_url`` when
    ``RT_SESSIONS["UPSTREAM"] == "azure"``) and ``API_KEY``, keeping the other keys; pytest-django restores
    the settings afterwards. Example::

        def test_rate_limited_upstream(client, openai_standin):
            openai_standin.enqueue(RateLimit(retry_after=3))
            response = client.post("/rt/transcription-sessions/", {}, content_type="application/json")
            assert response.status_code == 503

``openai_realtime`` (function scope)
    ``openai_standin``, for tests of live transcription: it fails, naming the extra to install, when the
    stand-in's speech engine (the ``standin-speech`` extra) is missing. Its realtime WebSocket is at
    ``openai_realtime.realtime_url`` (what the app's ``connect.websocket_url`` names); the audio to send
    comes from ``django_rt_sessions.testing.audio`` (``from_wav``, ``from_text``, ``base64_frames``)::

        from django_rt_sessions.testing.audio import base64_frames, from_text, silence

        def test_dictation(client, openai_realtime):
            key = client.post("/rt/transcription-sessions/", {}, content_type="application/json").json()
            ...  # open openai_realtime.realtime_url with key["client_secret"]["value"], then send
            for audio in base64_frames(from_text("i would like a cup of coffee") + silence(1000)):
                ...  # {"type": "input_audio_buffer.append", "audio": audio}

This module is imported in every pytest run of any environment that installs the package, so it imports only
the standard library (and pytest) at module level; aiohttp, jsonschema and Django are imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django_rt_sessions.testing.server import OpenAIStandIn


@pytest.fixture(scope="session")
def openai_standin_server() -> Iterator[OpenAIStandIn]:
    """One OpenAI stand-in for the whole test session."""
    from django_rt_sessions.testing.server import OpenAIStandIn

    standin = OpenAIStandIn().start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def openai_standin(request: pytest.FixtureRequest, openai_standin_server: OpenAIStandIn) -> OpenAIStandIn:
    """The session stand-in, reset, with Django's RT_SESSIONS pointed at it when Django is in use."""
    openai_standin_server.reset()
    settings = _django_settings_fixture(request)
    if settings is not None:
        current = dict(getattr(settings, "RT_SESSIONS", None) or {})
        azure = current.get("UPSTREAM") == "azure"
        current["BASE_URL"] = (
            openai_standin_server.azure_base_url if azure else openai_standin_server.base_url
        )
        current["API_KEY"] = openai_standin_server.api_key
        settings.RT_SESSIONS = current
    return openai_standin_server


def _django_settings_fixture(request: pytest.FixtureRequest) -> Any:
    """pytest-django's ``settings`` fixture, or None when Django or pytest-django is not in use."""
    try:
        from django.conf import settings as django_settings
    except ImportError:
        return None
    # pytest-django's fixture would skip the test rather than fail when Django is not configured.
    if not django_settings.configured:
        return None
    try:
        return request.getfixturevalue("settings")
    except pytest.FixtureLookupError:
        return None


@pytest.fixture
def openai_realtime(openai_standin: OpenAIStandIn) -> OpenAIStandIn:
    """The reset stand-in, with its speech engine: a test of live transcription fails without the extra."""
    if openai_standin.speech_engine is None:
        pytest.fail(f"openai_realtime: {openai_standin.speech_problem}", pytrace=False)
    return openai_standin
