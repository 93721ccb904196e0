"""The upstream layer over real sockets to the OpenAI stand-in: the three shapes, headers, keep-alive,
retries, timeouts, every failure mapping (docs/http-api.md#errors) and what the audit keeps of it
(docs/audit.md).

Nothing here patches `requests` or the package: every upstream call goes through the transport to the
stand-in's loopback HTTP server, which validates bodies against OpenAI's published schemas.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import socket
import threading
import time
from typing import Any

import pytest
from django.test import Client

from django_rt_sessions.errors import ERRORS
from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.testing import Delay, Error, Garbage, Hang, RateLimit, Reset
from django_rt_sessions.testing.validation import schema_validator
from django_rt_sessions.upstreams import UpstreamConfig, UpstreamFailure, get_upstream, transport
from django_rt_sessions.upstreams.openai import OpenAIUpstream

from ..conftest import SESSION, post, set_rt

pytestmark = pytest.mark.django_db

EK = re.compile(r"^ek_[0-9a-f]{32}$")
SESS = re.compile(r"^sess_[A-Za-z0-9]{24}$")
REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")

GA_PATH = "/v1/realtime/client_secrets"
BETA_PATH = "/v1/realtime/transcription_sessions"
AZURE_PATH = "/openai/v1/realtime/client_secrets"

GA_FORMATS = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
RETURNS_KEYS = {
    "client_secret",
    "input_audio_format",
    "input_audio_transcription",
    "modalities",
    "turn_detection",
    "input_audio_noise_reduction",
    "include",
    "id",
    "preset",
    "connect",
}


# ------------------------------------------------------------------------------------------- helpers


def drop_nulls(value: Any) -> Any:
    # OpenAI's published schema types turn_detection etc. as objects although the API answers null for "off".
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def seed_response_errors(body: dict[str, Any]) -> list[str]:
    validator = schema_validator("RealtimeTranscriptionSessionCreateResponse", strict=False)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(drop_nulls(body))]


def only_row() -> TokenRequest:
    rows = list(TokenRequest.objects.all())
    assert len(rows) == 1, rows
    return rows[0]


def assert_no_secret_in_row(row: TokenRequest, *secrets: str) -> None:
    for field in row._meta.concrete_fields:
        text = repr(getattr(row, field.attname))
        for secret in secrets:
            assert secret not in text, field.name


def assert_error_body(response: Any, code: str) -> None:
    assert response.status_code == ERRORS[code][0], response.content
    assert response.json() == {"detail": ERRORS[code][2], "code": code}
    assert response["Cache-Control"] == "no-store"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def direct_config(base_url: str, api_key: str, **values: Any) -> UpstreamConfig:
    defaults: dict[str, Any] = {
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "max_retries": 0,
    }
    return UpstreamConfig(base_url=base_url, api_key=api_key, **{**defaults, **values})


@pytest.fixture
def beta(upstream: Any, settings: Any) -> Any:
    set_rt(settings, UPSTREAM="openai-beta")
    return upstream


@pytest.fixture
def azure(upstream: Any, settings: Any) -> Any:
    set_rt(settings, UPSTREAM="azure", BASE_URL=upstream.azure_base_url)
    return upstream


@pytest.fixture
def bob_api(django_user_model: Any) -> Client:
    bob = django_user_model.objects.create_user("bob", password="pw-bob")
    client = Client()
    client.force_login(bob)
    return client


# ------------------------------------------------------------------------------------ the three shapes


def test_openai_ga_shape(api: Client, preset: SessionPreset, upstream: Any) -> None:
    preset.expires_after_seconds = 120
    preset.save()
    before = int(time.time())
    response = post(api, {})
    after = int(time.time())
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"

    [sent] = upstream.requests
    assert (sent.method, sent.path, sent.shape) == ("POST", GA_PATH, "openai")
    assert sent.headers["authorization"] == f"Bearer {upstream.api_key}"
    assert "api-key" not in sent.headers
    assert sent.json == {
        "expires_after": {"anchor": "created_at", "seconds": 120},
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "noise_reduction": SESSION["input_audio_noise_reduction"],
                    "transcription": SESSION["input_audio_transcription"],
                    "turn_detection": SESSION["turn_detection"],
                }
            },
            "include": SESSION["include"],
        },
    }

    body = response.json()
    assert set(body) == RETURNS_KEYS
    assert seed_response_errors(body) == []
    assert upstream.issued == [body["client_secret"]["value"]]
    assert EK.match(body["client_secret"]["value"])
    assert before + 120 <= body["client_secret"]["expires_at"] <= after + 120
    assert {k: body[k] for k in SESSION} == SESSION  # the beta endpoint's vocabulary, as the preset says
    assert body["modalities"] == ["text"]
    assert SESS.match(body["id"])
    assert body["preset"] == "meetings-fr"
    ws_base = upstream.base_url.replace("http://", "ws://")
    assert body["connect"] == {
        "api": "ga",
        "webrtc_url": f"{upstream.base_url}/realtime/calls",
        "websocket_url": f"{ws_base}/realtime?intent=transcription",
        "transports": ["websocket"],  # gpt-transcribe is served over WebSocket only
        "client_turns": None,  # server VAD: the upstream detects turns
    }

    row = only_row()
    assert row.outcome == "issued" and row.status_code == 201
    assert row.upstream == "openai"
    assert row.upstream_status == 200
    assert REQUEST_ID.match(row.upstream_request_id)
    assert row.upstream_session_id == body["id"]
    assert row.session_config == sent.json
    assert row.secret_fingerprint == hashlib.sha256(body["client_secret"]["value"].encode()).hexdigest()
    assert int(row.expires_at.timestamp()) == body["client_secret"]["expires_at"]
    assert row.upstream_ms is not None and row.upstream_ms >= 0
    assert_no_secret_in_row(row, body["client_secret"]["value"], upstream.api_key)


def test_openai_beta_shape(api: Client, preset: SessionPreset, beta: Any) -> None:
    before = int(time.time())
    response = post(api, {})
    assert response.status_code == 201, response.content

    [sent] = beta.requests
    assert (sent.method, sent.path, sent.shape) == ("POST", BETA_PATH, "openai-beta")
    assert sent.headers["authorization"] == f"Bearer {beta.api_key}"
    assert "api-key" not in sent.headers
    assert sent.json == SESSION  # the beta endpoint's own fields, no expires_after, no session.type

    body = response.json()
    assert set(body) == RETURNS_KEYS
    assert seed_response_errors(body) == []
    assert beta.issued == [body["client_secret"]["value"]]
    assert before + 55 <= body["client_secret"]["expires_at"] <= int(time.time()) + 65
    assert {k: body[k] for k in SESSION} == SESSION
    assert SESS.match(body["id"])
    assert body["preset"] == "meetings-fr"
    assert body["connect"]["api"] == "beta"
    row = only_row()
    assert (row.outcome, row.upstream, row.session_config) == ("issued", "openai-beta", SESSION)


def test_azure_shape(api: Client, preset: SessionPreset, azure: Any) -> None:
    before = int(time.time())
    response = post(api, {})
    assert response.status_code == 201, response.content

    [sent] = azure.requests
    assert (sent.method, sent.path, sent.shape) == ("POST", AZURE_PATH, "azure")
    assert sent.headers["api-key"] == azure.api_key
    assert "authorization" not in sent.headers
    assert sent.json["expires_after"] == {"anchor": "created_at", "seconds": 60}
    assert sent.json["session"]["type"] == "transcription"
    assert sent.json["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}

    body = response.json()
    assert set(body) == RETURNS_KEYS
    assert seed_response_errors(body) == []
    assert azure.issued == [body["client_secret"]["value"]]
    assert before + 60 <= body["client_secret"]["expires_at"] <= int(time.time()) + 60
    assert {k: body[k] for k in SESSION} == SESSION
    assert body["connect"]["api"] == "ga"
    assert body["connect"]["webrtc_url"] == f"{azure.azure_base_url}/realtime/calls"
    assert only_row().upstream == "azure"


def test_seed_schema_check_can_fail() -> None:
    assert seed_response_errors({"client_secret": {"value": 1}})  # the validation above is not vacuous


@pytest.mark.parametrize("beta_format", sorted(GA_FORMATS))
@pytest.mark.parametrize("shape", ["openai", "openai-beta", "azure"])
def test_audio_format_round_trip(openai_standin: Any, shape: str, beta_format: str) -> None:
    """Direct adapter call: each beta format name goes out in the shape's vocabulary and comes back."""
    session = {
        "input_audio_format": beta_format,
        "input_audio_transcription": {"model": "gpt-4o-mini-transcribe", "language": "de"},
    }
    base = openai_standin.azure_base_url if shape == "azure" else openai_standin.base_url
    adapter = get_upstream(shape)
    body = adapter.build_body(session, 300)
    result = adapter.create_session(body, session, direct_config(base, openai_standin.api_key))

    [sent] = openai_standin.requests
    assert sent.shape == shape
    if shape == "openai-beta":
        assert sent.json == session
    else:
        assert sent.json["expires_after"]["seconds"] == 300
        assert sent.json["session"]["type"] == "transcription"
        assert sent.json["session"]["audio"]["input"]["format"] == GA_FORMATS[beta_format]
    assert result.body["input_audio_format"] == beta_format
    assert result.body["input_audio_transcription"] == session["input_audio_transcription"]
    assert result.secret == result.body["client_secret"]["value"] == openai_standin.issued[0]
    assert result.status == 200
    assert REQUEST_ID.match(result.request_id)
    assert SESS.match(result.session_id)
    if shape != "openai-beta":
        assert abs(result.expires_at - (time.time() + 300)) <= 2
    assert seed_response_errors(result.body) == []


@pytest.mark.parametrize("upstream_name", ["openai", "openai-beta", "azure"])
def test_absent_keys_are_not_sent_and_nulls_are_sent_as_null(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, upstream_name: str
) -> None:
    base = upstream.azure_base_url if upstream_name == "azure" else upstream.base_url
    set_rt(settings, UPSTREAM=upstream_name, BASE_URL=base)
    preset.session = {
        "input_audio_transcription": {"model": "gpt-live-transcribe"},
        "turn_detection": None,
        "input_audio_noise_reduction": None,
    }  # no input_audio_format, no include
    preset.save()

    response = post(api, {})
    assert response.status_code == 201, response.content
    [sent] = upstream.requests
    if upstream_name == "openai-beta":
        assert sent.json == preset.session
    else:
        audio_input = sent.json["session"]["audio"]["input"]
        assert audio_input == {
            "transcription": {"model": "gpt-live-transcribe"},
            "turn_detection": None,
            "noise_reduction": None,
        }
        assert "include" not in sent.json["session"]
    body = response.json()
    assert body["turn_detection"] is None
    assert body["input_audio_noise_reduction"] is None
    assert body["input_audio_format"] == "pcm16"  # the upstream's default, in the beta endpoint's vocabulary
    assert only_row().session_config == sent.json


# --------------------------------------------------------------------------------------------- headers


def test_safety_identifier(
    api: Client, bob_api: Client, user: Any, preset: SessionPreset, upstream: Any
) -> None:
    for client in (api, api, bob_api):
        assert post(client, {}).status_code == 201
    alice_1, alice_2, bob = (r.headers.get("openai-safety-identifier") for r in upstream.requests)
    assert alice_1 is not None and HEX64.match(alice_1)
    assert alice_1 == alice_2  # stable for a user
    assert bob != alice_1  # differs between users
    # Not the pk, nor an unkeyed hash of it (which anyone could reverse by enumeration).
    assert alice_1 not in {str(user.pk), hashlib.sha256(str(user.pk).encode()).hexdigest()}
    assert hashlib.sha256(user.username.encode()).hexdigest() != alice_1


def test_safety_identifier_off(api: Client, preset: SessionPreset, upstream: Any, settings: Any) -> None:
    set_rt(settings, SAFETY_IDENTIFIER=False)
    assert post(api, {}).status_code == 201
    assert "openai-safety-identifier" not in upstream.requests[0].headers


def test_organization_and_project_headers(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    assert post(api, {}).status_code == 201
    set_rt(settings, ORGANIZATION="org-test123", PROJECT="proj_test456")
    assert post(api, {}).status_code == 201
    unset, configured = (r.headers for r in upstream.requests)
    assert "openai-organization" not in unset and "openai-project" not in unset
    assert configured["openai-organization"] == "org-test123"
    assert configured["openai-project"] == "proj_test456"


# ------------------------------------------------------------------------------------------ keep-alive


def test_sequential_requests_reuse_one_connection(api: Client, preset: SessionPreset, upstream: Any) -> None:
    for _ in range(3):
        assert post(api, {}).status_code == 201
    session = transport.get_session(2)  # the default MAX_RETRIES
    manager = session.get_adapter(upstream.base_url).poolmanager
    [pool] = [manager.pools[key] for key in manager.pools.keys()]  # noqa: SIM118 (no __iter__)
    assert (pool.host, pool.port) == ("127.0.0.1", upstream.port)
    assert pool.num_requests == 3
    assert pool.num_connections == 1  # one TCP connection, kept alive across the three requests
    assert len(upstream.requests) == 3


def test_one_session_per_thread() -> None:
    main = transport.get_session(2)
    assert transport.get_session(2) is main
    other: list[Any] = []
    thread = threading.Thread(
        target=lambda: other.extend([transport.get_session(2), transport.get_session(2)])
    )
    thread.start()
    thread.join()
    assert other[0] is other[1]
    assert other[0] is not main


# ------------------------------------------------------------------------------------------- retries


def test_5xx_is_retried_then_succeeds(api: Client, preset: SessionPreset, upstream: Any) -> None:
    upstream.enqueue(Error(500), Error(502))
    response = post(api, {})
    assert response.status_code == 201, response.content
    assert len(upstream.requests) == 3
    assert all(r.json == upstream.requests[0].json for r in upstream.requests)  # the same body each time
    row = only_row()
    assert (row.outcome, row.upstream_status) == ("issued", 200)


def test_upstream_retry_after_on_5xx_does_not_stall(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    upstream.enqueue(Error(503, headers={"Retry-After": "30"}))
    started = time.monotonic()
    assert post(api, {}).status_code == 201
    assert time.monotonic() - started < 2  # the backoff is ours, not the upstream's 30 s
    assert len(upstream.requests) == 2


def test_no_retries_when_max_retries_is_zero(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, MAX_RETRIES=0)
    upstream.enqueue(Error(500))
    assert_error_body(post(api, {}), "upstream_error")
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("max_retries", [1, 3])
def test_5xx_exhausted(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, max_retries: int
) -> None:
    set_rt(settings, MAX_RETRIES=max_retries)
    upstream.always(Error(500, "server_error", "boom, inside"))
    assert_error_body(post(api, {}), "upstream_error")
    assert len(upstream.requests) == max_retries + 1
    row = only_row()
    assert (row.upstream_status, row.error_code, row.error_message) == (500, "server_error", "boom, inside")


def test_connection_refused_is_retried_with_backoff(
    api: Client, preset: SessionPreset, settings: Any
) -> None:
    set_rt(settings, BASE_URL=f"http://127.0.0.1:{closed_port()}/v1", MAX_RETRIES=0)
    started = time.monotonic()
    assert_error_body(post(api, {}), "upstream_unavailable")
    without_retries = time.monotonic() - started

    TokenRequest.objects.all().delete()
    set_rt(settings, MAX_RETRIES=2)  # backoff 0 s then 0.4 s between the three attempts
    started = time.monotonic()
    response = post(api, {})
    with_retries = time.monotonic() - started
    assert_error_body(response, "upstream_unavailable")
    assert without_retries < 0.3
    assert 0.35 <= with_retries < 3
    row = only_row()
    assert (row.outcome, row.status_code, row.error_code) == ("upstream_unavailable", 503, "connection_error")
    assert row.upstream_status is None
    assert row.upstream_ms is not None and row.upstream_ms >= 350


def test_connect_timeout(api: Client, preset: SessionPreset, settings: Any) -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so connect() times out.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        set_rt(settings, BASE_URL=f"http://127.0.0.1:{port}/v1", CONNECT_TIMEOUT=0.3, MAX_RETRIES=0)
        started = time.monotonic()
        response = post(api, {})
        elapsed = time.monotonic() - started
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert_error_body(response, "upstream_unavailable")
    assert elapsed < 2
    assert only_row().error_code == "connect_timeout"


# -------------------------------------------------------------------------------- failure mapping


FAILURES = {
    "400": (
        [
            Error(
                400,
                "invalid_value",
                "Invalid value: 'xx'. Supported values are: 'en'.",
                "invalid_request_error",
            )
        ],
        {},
        "upstream_error",
        400,
        "invalid_value",
        "Invalid value: 'xx'. Supported values are: 'en'.",
    ),
    "401": (
        [Error(401, "invalid_api_key", "Incorrect API key provided.", "invalid_request_error")],
        {},
        "upstream_error",
        401,
        "invalid_api_key",
        "Incorrect API key provided.",
    ),
    "403": (
        [Error(403, "unsupported_country_region_territory", "Country not supported.", "request_forbidden")],
        {},
        "upstream_error",
        403,
        "unsupported_country_region_territory",
        "Country not supported.",
    ),
    "404": (
        [Error(404, "model_not_found", "The model does not exist.", "invalid_request_error")],
        {},
        "upstream_error",
        404,
        "model_not_found",
        "The model does not exist.",
    ),
    "429": (
        [RateLimit(retry_after=9)],
        {},
        "upstream_unavailable",
        429,
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    "hang": ([Hang(max_seconds=5)], {"READ_TIMEOUT": 0.5}, "upstream_timeout", None, "read_timeout", None),
    "reset": ([Reset()], {}, "upstream_unavailable", None, "connection_error", None),
    "200-not-json": ([Garbage()], {}, "upstream_error", 200, "invalid_response", None),
    "200-no-value": (
        [Garbage(200, b'{"expires_at": 1700000000, "session": {}}')],
        {},
        "upstream_error",
        200,
        "invalid_response",
        None,
    ),
    "200-empty-value": (
        [Garbage(200, b'{"value": "", "expires_at": 1700000000}')],
        {},
        "upstream_error",
        200,
        "invalid_response",
        None,
    ),
    "200-list": ([Garbage(200, b"[]")], {}, "upstream_error", 200, "invalid_response", None),
    "302": ([Garbage(302, b"")], {}, "upstream_error", 302, "invalid_response", None),
    "502-html": (
        [Garbage(502, b"<html>Bad gateway from the proxy</html>", "text/html")] * 3,
        {},
        "upstream_error",
        502,
        "http_502",
        "<html>Bad gateway from the proxy</html>",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failure_mapping_and_audit(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, case: str
) -> None:
    behaviours, rt_values, code, upstream_status, error_code, error_message = FAILURES[case]
    set_rt(settings, **rt_values)
    upstream.enqueue(*behaviours)
    started = time.monotonic()
    response = post(api, {})
    elapsed = time.monotonic() - started

    assert_error_body(response, code)
    # 4xx, 429, read timeouts, resets and unusable 2xx/3xx are never retried; the 5xx case is (2 retries).
    assert len(upstream.requests) == len(behaviours)
    if upstream_status == 429:
        assert response["Retry-After"] == "9"
    else:
        assert not response.has_header("Retry-After")
    if case == "hang":
        assert elapsed < 0.5 + 1.0

    row = only_row()
    assert row.outcome == code
    assert row.status_code == response.status_code
    assert row.upstream_status == upstream_status
    assert row.error_code == error_code
    if error_message is not None:
        assert row.error_message == error_message
        assert error_message.encode() not in response.content  # staff only
    else:
        assert row.error_message
    if upstream_status is None:
        assert row.upstream_request_id == ""
    else:
        assert REQUEST_ID.match(row.upstream_request_id)
    assert row.upstream_ms is not None and row.upstream_ms >= 0
    assert row.session_config == upstream.requests[0].json
    assert row.upstream == "openai"
    assert row.preset_name == "meetings-fr" and row.username == "alice"
    assert row.expires_at is None and row.secret_fingerprint == ""
    assert_no_secret_in_row(row, upstream.api_key, *upstream.issued)


def test_read_timeouts_are_never_retried(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, READ_TIMEOUT=0.5, MAX_RETRIES=3)
    upstream.always(Hang(max_seconds=5))
    started = time.monotonic()
    assert_error_body(post(api, {}), "upstream_timeout")
    assert time.monotonic() - started < 1.5
    assert len(upstream.requests) == 1  # the upstream may have created a session: never pay twice


def test_delay_below_read_timeout_succeeds(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, READ_TIMEOUT=1)
    upstream.enqueue(Delay(0.3))
    response = post(api, {})
    assert response.status_code == 201, response.content
    assert len(upstream.requests) == 1
    assert only_row().upstream_ms >= 300


def test_user_never_sees_upstream_message(api: Client, preset: SessionPreset, upstream: Any) -> None:
    message = "Internal detail: shard 7 of cluster eu-west failed"
    upstream.enqueue(Error(400, "invalid_value", message, "invalid_request_error"))
    response = post(api, {})
    assert_error_body(response, "upstream_error")
    assert b"shard 7" not in response.content and b"invalid_value" not in response.content
    assert only_row().error_message == message


def test_upstream_error_echoing_a_key_is_redacted(api: Client, preset: SessionPreset, upstream: Any) -> None:
    upstream.enqueue(
        Error(401, "invalid_api_key", "Incorrect API key provided: sk-abc123456789", "invalid_request_error")
    )
    assert_error_body(post(api, {}), "upstream_error")
    row = only_row()
    assert row.error_code == "invalid_api_key"
    assert "sk-abc123456789" not in row.error_message
    assert "abc123456789" not in row.error_message
    assert row.error_message.startswith("Incorrect API key provided: ")
    assert "[redacted]" in row.error_message


@pytest.mark.parametrize(
    "echo",
    [
        "sk-proj-****************************************wxyz",  # OpenAI's masked form
        "sk-stan*********-key",
        "{api_key}",  # the configured key itself
    ],
)
def test_masked_and_configured_keys_are_redacted(
    api: Client, preset: SessionPreset, upstream: Any, echo: str
) -> None:
    echoed = echo.format(api_key=upstream.api_key)
    upstream.enqueue(Error(401, "invalid_api_key", f"Incorrect API key provided: {echoed}."))
    assert_error_body(post(api, {}), "upstream_error")
    row = only_row()
    assert echoed not in row.error_message
    assert upstream.api_key not in row.error_message


def test_beta_api_shape_disabled(
    api: Client, preset: SessionPreset, beta: Any, caplog: pytest.LogCaptureFixture
) -> None:
    beta.beta_disabled = True
    with caplog.at_level(logging.WARNING, logger="django_rt_sessions"):
        response = post(api, {})
    assert_error_body(response, "upstream_error")
    assert len(beta.requests) == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors, caplog.records
    assert any("UPSTREAM" in r.getMessage() and "'openai'" in r.getMessage() for r in errors)
    row = only_row()
    assert (row.upstream_status, row.error_code) == (400, "beta_api_shape_disabled")
    assert "client_secrets" in row.error_message


def test_ga_is_unaffected_by_beta_retirement(api: Client, preset: SessionPreset, upstream: Any) -> None:
    upstream.beta_disabled = True
    assert post(api, {}).status_code == 201


# ------------------------------------------------------------------------------------ configuration


def test_no_api_key(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    set_rt(settings, API_KEY=None)
    assert_error_body(post(api, {}), "upstream_unavailable")
    assert upstream.requests == []
    row = only_row()
    assert (row.outcome, row.status_code, row.error_code) == ("upstream_unavailable", 503, "no_api_key")


def test_api_key_from_environment(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", upstream.api_key)
    set_rt(settings, API_KEY=None)
    assert post(api, {}).status_code == 201
    assert upstream.requests[0].headers["authorization"] == f"Bearer {upstream.api_key}"


def test_azure_without_base_url_sends_nothing(openai_standin: Any) -> None:
    session = copy.deepcopy(SESSION)
    adapter = get_upstream("azure")
    config = direct_config("https://api.openai.com/v1", openai_standin.api_key)
    with pytest.raises(UpstreamFailure) as info:
        adapter.create_session(adapter.build_body(session, 60), session, config)
    assert (info.value.code, info.value.error_code) == ("upstream_unavailable", "misconfigured")
    assert "BASE_URL" in info.value.error_message


def test_direct_call_maps_429(openai_standin: Any) -> None:
    openai_standin.enqueue(RateLimit(retry_after=4))
    session = copy.deepcopy(SESSION)
    adapter = get_upstream("openai")
    config = direct_config(openai_standin.base_url, openai_standin.api_key, max_retries=2)
    with pytest.raises(UpstreamFailure) as info:
        adapter.create_session(adapter.build_body(session, 60), session, config)
    failure = info.value
    assert (failure.code, failure.status, failure.retry_after) == ("upstream_unavailable", 503, 4)
    assert (failure.upstream_status, failure.error_code) == (429, "rate_limit_exceeded")
    assert REQUEST_ID.match(failure.request_id)
    assert len(openai_standin.requests) == 1


@pytest.mark.parametrize(
    ("model", "transports"),
    [("gpt-transcribe", ["websocket"]), ("gpt-live-transcribe", ["websocket", "webrtc"])],
)
def test_connect_lists_the_transports_of_the_sessions_model(
    api: Client, preset: SessionPreset, upstream: Any, model: str, transports: list[str]
) -> None:
    preset.session = {"input_audio_transcription": {"model": model}}
    preset.save()
    response = post(api, {})
    assert response.status_code == 201, response.content
    assert response.json()["connect"]["transports"] == transports


@pytest.mark.parametrize(
    ("base_url", "transports"),
    [
        ("https://api.openai.com/v1", ["webrtc", "websocket"]),  # OpenAI's order: WebRTC preferred
        (
            "http://127.0.0.1:8765/v1",
            ["websocket", "webrtc"],
        ),  # a browser reaches loopback WebRTC only with a flag
        ("http://localhost:8765/v1", ["websocket", "webrtc"]),
        ("http://[::1]:8765/v1", ["websocket", "webrtc"]),
    ],
)
def test_an_upstream_on_loopback_is_offered_websocket_first(base_url: str, transports: list[str]) -> None:
    session = {"input_audio_transcription": {"model": "gpt-live-transcribe"}}
    assert OpenAIUpstream().connect_info(base_url, session)["transports"] == transports


@pytest.mark.parametrize(
    ("session", "client_turns", "expected"),
    [
        # No server turn detection: the browser commits turns, with the preset's numbers or the defaults.
        (
            {"input_audio_transcription": {"model": "gpt-live-transcribe"}, "turn_detection": None},
            {"silence_duration_ms": 800},
            {"silence_duration_ms": 800, "max_turn_ms": 15000},
        ),
        (
            {"input_audio_transcription": {"model": "gpt-live-transcribe"}},  # absent: none for this model
            None,
            {"silence_duration_ms": 600, "max_turn_ms": 15000},
        ),
        (
            {"input_audio_transcription": {"model": "gpt-transcribe"}, "turn_detection": None},
            None,
            {"silence_duration_ms": 600, "max_turn_ms": 15000},
        ),
        # The upstream detects turns: the preset's client_turns are not used.
        (
            {"input_audio_transcription": {"model": "gpt-transcribe"}},  # absent: the upstream's default VAD
            {"silence_duration_ms": 800},
            None,
        ),
        (
            {
                "input_audio_transcription": {"model": "gpt-transcribe"},
                "turn_detection": {"type": "semantic_vad"},
            },
            None,
            None,
        ),
    ],
    ids=["live-null", "live-absent", "transcribe-null", "transcribe-absent", "transcribe-semantic"],
)
def test_connect_says_whether_the_browser_commits_turns(
    api: Client,
    preset: SessionPreset,
    upstream: Any,
    session: dict[str, Any],
    client_turns: Any,
    expected: Any,
) -> None:
    preset.session, preset.client_turns = session, client_turns
    preset.save()
    response = post(api, {})
    assert response.status_code == 201, response.content
    assert response.json()["connect"]["client_turns"] == expected
    assert "client_turns" not in json.dumps(upstream.requests[-1].json)  # never sent upstream


def test_a_stored_preset_with_bad_client_turns_answers_503_as_misconfigured(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    SessionPreset.objects.filter(pk=preset.pk).update(
        session={"input_audio_transcription": {"model": "gpt-live-transcribe"}},
        client_turns={"silence_duration_ms": 5},  # written around the validator
    )
    response = post(api, {})
    assert (response.status_code, response.json()["code"]) == (503, "upstream_unavailable")
    assert not upstream.requests
    row = only_row()
    assert (row.outcome, row.error_code) == ("upstream_unavailable", "invalid_preset")
    assert "client_turns.silence_duration_ms" in row.error_message


def test_a_stored_preset_with_vad_on_a_model_without_it_answers_503(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    """Saved before OpenAI's turn rule: the site's mistake, answered without calling the upstream."""
    SessionPreset.objects.filter(pk=preset.pk).update(
        session={
            "input_audio_transcription": {"model": "gpt-live-transcribe"},
            "turn_detection": {"type": "server_vad"},
        }
    )
    response = post(api, {})
    assert (response.status_code, response.json()["code"]) == (503, "upstream_unavailable")
    assert not upstream.requests
    row = only_row()
    assert (row.outcome, row.error_code) == ("upstream_unavailable", "invalid_preset")
    assert "gpt-live-transcribe takes no server turn detection" in row.error_message


@pytest.mark.parametrize("source", ["setting", "environment"])
def test_refused_credentials_are_logged_naming_where_the_key_came_from(
    api: Client,
    preset: SessionPreset,
    upstream: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    source: str,
) -> None:
    wrong = "sk-wrong-key-for-this-test"
    if source == "setting":
        set_rt(settings, API_KEY=wrong)
        where = "check RT_SESSIONS['API_KEY']"
    else:
        settings.RT_SESSIONS = {k: v for k, v in settings.RT_SESSIONS.items() if k != "API_KEY"}
        monkeypatch.setenv("OPENAI_API_KEY", wrong)
        where = "check the OPENAI_API_KEY environment variable"
    with caplog.at_level(logging.ERROR, logger="django_rt_sessions.upstream"):
        response = post(api, {})
    assert response.status_code == 502
    [record] = [r for r in caplog.records if "refused our credentials" in r.getMessage()]
    assert where in record.getMessage()
    assert wrong not in record.getMessage()
