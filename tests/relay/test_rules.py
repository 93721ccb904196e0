"""The relay's frame rules (relay/rules.py), in-process: the fast path that counts an append's audio without
parsing it must agree with the parsed path on every frame it accepts, and refuse every frame that is not
exactly a plain append; session updates pass only what the preset lets a user change.

The end-to-end tests (tests/relay/test_relay.py) run these rules inside a uvicorn process; here each rule is
checked on its own, against expectations written by hand."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest

from django_rt_sessions.relay import rules
from django_rt_sessions.upstreams import OpenAIUpstream
from django_rt_sessions.upstreams.beta import OpenAIBetaUpstream

pytestmark = pytest.mark.no_database

GA = OpenAIUpstream()
BETA = OpenAIBetaUpstream()

# The shape a relay preset stores (the beta endpoint's vocabulary).
SESSION: dict[str, Any] = {
    "input_audio_format": "pcm16",
    "input_audio_noise_reduction": {"type": "far_field"},
    "input_audio_transcription": {"model": "gpt-transcribe", "language": "en", "prompt": ""},
    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
}


def browser_frame(audio: bytes, **extra: str) -> str:
    """An append as JSON.stringify writes it (no spaces)."""
    return json.dumps(
        {"type": rules.APPEND, "audio": base64.b64encode(audio).decode(), **extra}, separators=(",", ":")
    )


def sdk_frame(audio: bytes, **extra: str) -> str:
    """An append as openai-python's json.dumps writes it."""
    return json.dumps({"type": rules.APPEND, "audio": base64.b64encode(audio).decode(), **extra})


@pytest.mark.parametrize("make", [browser_frame, sdk_frame])
def test_the_fast_path_counts_every_length_exactly_and_agrees_with_the_parsed_path(make: Any) -> None:
    rng = random.Random(17)
    for length in [0, 1, 2, 3, 4, 5, 959, 960, 961, 1920, 4096]:
        audio = rng.randbytes(length)
        for extra in ({}, {"event_id": "evt_42.a:b-c"}):
            frame = make(audio, **extra)
            assert rules.append_audio_bytes(frame) == length, (length, extra)
            parsed = rules.parse_event(frame)
            assert parsed is not None
            assert rules.audio_bytes_of(parsed) == length


@pytest.mark.parametrize(
    "frame",
    [
        # A second "type" after the audio: parsers disagree on which one wins, so it is never fast-pathed.
        '{"type":"input_audio_buffer.append","audio":"AAAA","type":"session.update"}',
        '{"type":"input_audio_buffer.append","audio":"AAAA","session":{}}',
        '{"type":"input_audio_buffer.append","audio":"AA\\u0041A"}',  # an escape is not base64
        '{"type":"input_audio_buffer.append","audio":"AAAA"',  # unterminated
        '{"type":"input_audio_buffer.append","audio":"AAAA"} ',
        '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"has space"}',
        '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"' + "x" * 65 + '"}',
        '{"type":"input_audio_buffer.append","audio":"AA-A"}',  # base64url is not what OpenAI takes
        '{"type":"input_audio_buffer.append","audio":"AAAA","x":"é"}',
        '{"audio":"AAAA","type":"input_audio_buffer.append"}',  # other key order: parsed instead
        '{"type":"input_audio_buffer.commit"}',
    ],
)
def test_the_fast_path_refuses_anything_but_a_plain_append(frame: str) -> None:
    assert rules.append_audio_bytes(frame) is None


def test_parse_event_accepts_one_object_and_nothing_else() -> None:
    assert rules.parse_event('{"type": "input_audio_buffer.commit"}') == {"type": rules.COMMIT}
    assert rules.parse_event('{"type": "a", "type": "b"}') is None
    assert rules.parse_event('{"session": {"x": 1, "x": 2}}') is None
    assert rules.parse_event("[1, 2]") is None
    assert rules.parse_event("not json") is None
    assert rules.parse_event("[" * 100_000 + "]" * 100_000) is None


def test_audio_bytes_of_a_parsed_append() -> None:
    assert rules.audio_bytes_of({"audio": base64.b64encode(b"12345").decode()}) == 5
    assert rules.audio_bytes_of({"audio": "not base64!"}) is None
    assert rules.audio_bytes_of({"audio": 12}) is None
    assert rules.audio_bytes_of({}) is None


def test_event_ids_are_echoed_only_when_they_are_plain_ids() -> None:
    assert rules.event_id_of({"event_id": "evt_1"}) == "evt_1"
    assert rules.event_id_of({"event_id": "<script>"}) is None
    assert rules.event_id_of({"event_id": 7}) is None
    assert rules.event_id_of(None) is None


def test_forwarded_frames_carry_only_their_own_keys() -> None:
    event = {"type": rules.APPEND, "audio": "AAAA", "event_id": "e1", "session": {"model": "x"}}
    assert json.loads(rules.append_frame(event)) == {"type": rules.APPEND, "audio": "AAAA", "event_id": "e1"}
    assert json.loads(rules.buffer_frame({"type": rules.COMMIT, "event_id": "bad id", "x": 1})) == {
        "type": rules.COMMIT
    }


def ga_update(audio_input: dict[str, Any], **session: Any) -> dict[str, Any]:
    return {
        "type": rules.GA_UPDATE,
        "session": {"type": "transcription", "audio": {"input": audio_input}, **session},
    }


def test_an_overridable_field_changes_and_the_upstream_gets_the_whole_session_in_its_shape() -> None:
    event = ga_update({"transcription": {"model": "gpt-transcribe", "language": "de"}})
    update = rules.check_update(event, SESSION, ["language"], GA)
    assert update.session["input_audio_transcription"]["language"] == "de"
    assert update.session["turn_detection"] == SESSION["turn_detection"]
    sent = json.loads(update.upstream_event)
    assert sent["type"] == "session.update"
    assert sent["session"]["audio"]["input"]["transcription"]["language"] == "de"
    assert sent["session"]["audio"]["input"]["turn_detection"] == SESSION["turn_detection"]


def test_the_beta_shape_is_understood_and_answered_in_kind() -> None:
    event = {"type": rules.BETA_UPDATE, "session": {"input_audio_transcription": {"prompt": "Names: Ada"}}}
    update = rules.check_update(event, SESSION, ["prompt"], BETA)
    assert update.session["input_audio_transcription"]["prompt"] == "Names: Ada"
    sent = json.loads(update.upstream_event)
    assert sent == {"type": rules.BETA_UPDATE, "session": update.session}


def test_noise_reduction_switched_off_with_null() -> None:
    event = ga_update({"noise_reduction": None})
    update = rules.check_update(event, SESSION, ["noise_reduction"], GA)
    assert update.session.get("input_audio_noise_reduction") is None


def test_an_unchanged_session_is_no_change() -> None:
    event = ga_update({"transcription": dict(SESSION["input_audio_transcription"])})
    assert rules.check_update(event, SESSION, [], GA).session == SESSION


@pytest.mark.parametrize(
    ("event", "overridable", "param"),
    [
        # The model is never a user's to change.
        (
            ga_update({"transcription": {"model": "whisper-1"}}),
            ["language", "prompt"],
            "input_audio_transcription.model",
        ),
        # A field the preset does not open.
        (ga_update({"transcription": {"language": "de"}}), ["prompt"], "input_audio_transcription.language"),
        (ga_update({"turn_detection": None}), ["language"], "turn_detection"),
        # What the relay never forwards.
        (ga_update({"format": {"type": "audio/pcmu"}}), ["language"], "input_audio_format"),
        (ga_update({"format": {"type": "audio/pcm", "rate": 16000}}), ["language"], "format"),
        (ga_update({}, instructions="be a pirate"), ["language"], "instructions"),
        (ga_update({"speed": 2}), ["language"], "speed"),
        ({"type": rules.GA_UPDATE, "session": {"type": "realtime"}}, ["language"], None),
        ({"type": rules.GA_UPDATE, "session": {"audio": {"output": {}}}}, ["language"], "session.audio"),
        ({"type": rules.GA_UPDATE, "session": "model=x"}, ["language"], "session"),
        (
            {"type": rules.BETA_UPDATE, "session": {"input_audio_format": "g711_ulaw"}},
            ["language"],
            "input_audio_format",
        ),
    ],
)
def test_what_the_preset_does_not_allow_is_refused_by_name(
    event: dict[str, Any], overridable: list[str], param: str | None
) -> None:
    with pytest.raises(rules.Refused) as refused:
        rules.check_update(event, SESSION, overridable, GA)
    assert refused.value.code == "event_not_allowed"
    assert refused.value.param == param


def test_an_allowed_field_with_a_bad_value_is_refused_with_the_validators_message() -> None:
    event = ga_update({"transcription": {"language": "english"}})
    with pytest.raises(rules.Refused) as refused:
        rules.check_update(event, SESSION, ["language"], GA)
    assert refused.value.code == "invalid"
    assert "english" in refused.value.message


def test_bytes_per_second_by_format() -> None:
    assert rules.bytes_per_second(SESSION) == 48_000
    assert rules.bytes_per_second({"input_audio_format": "g711_alaw"}) == 8_000
    assert rules.bytes_per_second({}) == 48_000
