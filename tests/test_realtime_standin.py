"""The stand-in's realtime WebSocket (django_rt_sessions.testing.realtime), over real loopback sockets with
the `websockets` client: key checks at the upgrade, GA events in and out, the speech engine, VAD timing and
faults.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from django_rt_sessions.testing import DropSocket, Error, Expired, OpenAIStandIn, SlowEvents
from django_rt_sessions.testing.audio import from_text, from_wav, silence

from .realtime_support import (
    COFFEE,
    COMPLETED,
    DELTA,
    DOOR,
    WORDS,
    events_until,
    has_words,
    mint,
    needs_espeak,
    noise,
    open_socket,
    receive,
    send,
    speech,
    stream,
    transcripts,
)

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as standin:
        assert standin.speech_engine is not None, standin.speech_problem
        yield standin


@pytest.fixture
def standin(server: OpenAIStandIn) -> OpenAIStandIn:
    server.reset()
    return server


def refused(standin: OpenAIStandIn, key: str | None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a refused upgrade."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with pytest.raises(InvalidStatus) as caught:
        connect(kwargs.pop("url", standin.realtime_url), additional_headers=headers, **kwargs)
    response = caught.value.response
    return response.status_code, json.loads(response.body or b"{}")


# ------------------------------------------------------------------------------------------- the upgrade


def test_subprotocol_key_opens_the_session_it_was_minted_with(standin: OpenAIStandIn) -> None:
    audio_input = {
        "transcription": {"model": "gpt-transcribe", "language": "en", "prompt": "coffee orders"},
        "noise_reduction": {"type": "near_field"},
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.4,
            "prefix_padding_ms": 200,
            "silence_duration_ms": 700,
        },
    }
    key = mint(standin, audio_input)
    with open_socket(standin, key, browser_style=True) as ws:
        assert ws.subprotocol == "realtime"
        created = receive(ws)
    assert created["type"] == "session.created"
    assert created["event_id"].startswith("event_")
    session = created["session"]
    assert session["type"] == "transcription"
    assert session["audio"]["input"] == {**audio_input, "format": {"type": "audio/pcm", "rate": 24000}}
    (connection,) = standin.realtime
    assert connection.credential == "ephemeral_key"
    assert connection.subprotocol == "realtime"
    assert connection.wait_closed()
    assert connection.close_code == 1000
    assert key not in repr(connection)


def test_beta_key_gets_the_ga_equivalent_session(standin: OpenAIStandIn) -> None:
    beta = requests.post(
        standin.base_url + "/realtime/transcription_sessions",
        json={"input_audio_transcription": {"model": "gpt-live-transcribe"}, "turn_detection": None},
        headers={"Authorization": f"Bearer {standin.api_key}"},
        timeout=10,
    ).json()
    with open_socket(standin, beta["client_secret"]["value"]) as ws:
        session = receive(ws)["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-live-transcribe"}
    assert session["audio"]["input"]["turn_detection"] is None


def test_forged_unknown_expired_and_used_keys_are_refused_at_the_upgrade(standin: OpenAIStandIn) -> None:
    status, body = refused(standin, None)
    assert (status, body["error"]["code"]) == (401, None)
    assert "API key" in body["error"]["message"]

    forged = "ek_" + "0" * 32
    status, body = refused(standin, forged)
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    assert forged not in json.dumps(body)
    assert refused(standin, "sk-not-the-key")[0] == 401

    expired = mint(standin)
    standin.expire(expired)
    assert refused(standin, expired) == (
        401,
        {
            "error": {
                "message": "The ephemeral key has expired: ask your server for a new session.",
                "type": "invalid_request_error",
                "param": None,
                "code": "ephemeral_key_expired",
            }
        },
    )

    used = mint(standin)
    with open_socket(standin, used) as ws:
        receive(ws)
        # Open or closed, a key's session is its only one.
        assert refused(standin, used)[1]["error"]["code"] == "ephemeral_key_used"
    status, body = refused(standin, used)
    assert (status, body["error"]["code"]) == (403, "ephemeral_key_used")
    assert [r.shape for r in standin.requests].count("realtime") == 7


def test_expired_behaviour_issues_a_key_that_is_refused(standin: OpenAIStandIn) -> None:
    standin.enqueue(Expired())
    response = requests.post(
        standin.base_url + "/realtime/client_secrets",
        json={"session": {"type": "transcription"}},
        headers={"Authorization": f"Bearer {standin.api_key}"},
        timeout=10,
    ).json()
    assert response["expires_at"] < time.time()
    assert refused(standin, response["value"])[1]["error"]["code"] == "ephemeral_key_expired"


def test_reset_forgets_the_keys(standin: OpenAIStandIn) -> None:
    key = mint(standin)
    standin.reset()
    assert refused(standin, key)[1]["error"]["code"] == "invalid_api_key"


def test_upgrade_needs_the_realtime_subprotocol_and_a_websocket(standin: OpenAIStandIn) -> None:
    key = mint(standin)
    with pytest.raises(InvalidStatus) as caught:
        connect(standin.realtime_url, subprotocols=[f"openai-insecure-api-key.{key}"])  # type: ignore[list-item]
    assert caught.value.response.status_code == 400
    plain = requests.get(standin.realtime_url.replace("ws://", "http://"), timeout=5)
    assert plain.status_code == 426
    assert plain.json()["error"]["code"] == "websocket_required"
    # The key was not spent by the refused attempts.
    with open_socket(standin, key) as ws:
        assert receive(ws)["type"] == "session.created"


def test_http_behaviours_apply_to_the_upgrade(standin: OpenAIStandIn) -> None:
    key = mint(standin)
    standin.enqueue(Error(status=503, code="server_overloaded", message="busy"))
    status, body = refused(standin, key)
    assert (status, body["error"]["code"]) == (503, "server_overloaded")


def test_api_key_session_waits_for_a_session_update(standin: OpenAIStandIn) -> None:
    status, body = refused(standin, standin.api_key, url=standin.realtime_url.split("?")[0])
    assert (status, body["error"]["param"]) == (400, "intent")
    with open_socket(standin, standin.api_key) as ws:
        created = receive(ws)
        assert created["session"]["audio"]["input"]["transcription"] is None
        stream(ws, speech(DOOR))
        error = receive(ws)
        assert error["type"] == "error"
        assert error["error"]["param"] == "session.audio.input.transcription"
        send(
            ws,
            {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"transcription": {"model": "gpt-transcribe"}}},
                },
            },
        )
        updated = receive(ws)
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["transcription"] == {"model": "gpt-transcribe"}
        assert updated["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        stream(ws, speech(DOOR))
        (transcript,) = transcripts(events_until(ws, COMPLETED))
    assert has_words(transcript, WORDS[DOOR]), transcript
    assert standin.realtime[0].credential == "api_key"


# --------------------------------------------------------------------------------------------- events


def test_bad_client_events_get_openai_shaped_errors_and_the_session_goes_on(standin: OpenAIStandIn) -> None:
    with open_socket(standin, mint(standin)) as ws:
        receive(ws)

        def error_for(raw: str) -> dict[str, Any]:
            ws.send(raw)
            event = receive(ws)
            assert event["type"] == "error", event
            assert set(event["error"]) == {"type", "code", "message", "param", "event_id"}
            assert event["error"]["message"]
            return dict(event["error"])

        unknown = error_for(json.dumps({"type": "response.create", "event_id": "evt_1"}))
        assert (unknown["code"], unknown["param"], unknown["event_id"]) == ("invalid_value", "type", "evt_1")
        assert "input_audio_buffer.append" in unknown["message"]
        assert error_for("{not json")["code"] == "invalid_json"
        assert error_for(json.dumps({"audio": "AAAA"}))["code"] == "missing_required_parameter"
        bad_base64 = error_for(
            json.dumps({"type": "input_audio_buffer.append", "audio": "***", "event_id": "e2"})
        )
        assert (bad_base64["code"], bad_base64["param"], bad_base64["event_id"]) == (
            "invalid_value",
            "audio",
            "e2",
        )
        odd = error_for(
            json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()})
        )
        assert odd["param"] == "audio"
        update = error_for(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"type": "transcription", "audio": {"input": {"foo": 1}}},
                }
            )
        )
        assert (update["code"], update["param"]) == ("unknown_parameter", "session.audio.input.foo")
        realtime = error_for(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        assert realtime["param"] == "session.type"
        ws.send(b"\x00\x01")
        assert receive(ws)["error"]["code"] == "invalid_value"
        # Still serving: a valid event is answered.
        send(ws, {"type": "input_audio_buffer.clear"})
        assert receive(ws)["type"] == "input_audio_buffer.cleared"
    received = standin.realtime[0].received
    assert received[0] == {"type": "response.create", "event_id": "evt_1"}
    assert received[-1] == {"type": "input_audio_buffer.clear"}


def test_speech_is_transcribed_turn_by_turn_with_deltas_while_speaking(standin: OpenAIStandIn) -> None:
    with open_socket(standin, mint(standin)) as ws:
        receive(ws)
        # The first turn at the pace of a speaker: Whisper's partial text comes from decodes in the
        # background, which a burst of audio would outrun. (speech(COFFEE, DOOR), in two parts.)
        stream(ws, speech(COFFEE), pace=1.0)
        stream(ws, from_wav(DOOR) + silence(1000))
        events = events_until(ws, COMPLETED, count=2)
    kinds = [event["type"] for event in events]
    first_turn = kinds[: kinds.index(COMPLETED) + 1]
    assert first_turn[0] == "input_audio_buffer.speech_started"
    # Deltas come while the turn is spoken, before the VAD hears it end.
    assert DELTA in first_turn[: first_turn.index("input_audio_buffer.speech_stopped")]
    # Then: speech_stopped, committed, the last words (if any), completed.
    after_stop = first_turn[first_turn.index("input_audio_buffer.speech_stopped") :]
    assert after_stop[:2] == ["input_audio_buffer.speech_stopped", "input_audio_buffer.committed"]
    assert set(after_stop[2:-1]) <= {DELTA} and after_stop[-1] == COMPLETED
    coffee, door = transcripts(events)
    assert has_words(coffee, WORDS[COFFEE]), coffee
    assert has_words(door, WORDS[DOOR]), door
    assert not has_words(coffee, WORDS[DOOR]) and not has_words(door, WORDS[COFFEE])
    # One item per turn, chained, and every event of a turn names it.
    started = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
    committed = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    completed = [e for e in events if e["type"] == COMPLETED]
    assert (
        [e["item_id"] for e in started]
        == [e["item_id"] for e in committed]
        == [e["item_id"] for e in completed]
    )
    assert committed[0]["previous_item_id"] is None
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]
    assert completed[0]["usage"]["type"] == "duration" and completed[0]["usage"]["seconds"] > 1
    assert completed[0]["content_index"] == 0
    # Deltas only add whole words to what was sent.
    for item in completed:
        deltas = [e["delta"] for e in events if e["type"] == DELTA and e["item_id"] == item["item_id"]]
        assert deltas and not deltas[0].startswith(" ")
        assert all(delta.startswith(" ") and delta.strip() for delta in deltas[1:]), deltas


def test_silence_and_noise_do_not_make_words(standin: OpenAIStandIn) -> None:
    with open_socket(standin, mint(standin)) as ws:
        receive(ws)
        stream(ws, silence(3000))
        send(ws, {"type": "input_audio_buffer.clear"})
        assert receive(ws)["type"] == "input_audio_buffer.cleared"  # nothing came before it
        stream(ws, silence(300) + noise(2000) + silence(1000))
        events = events_until(ws, COMPLETED)
    assert events[0]["type"] == "input_audio_buffer.speech_started"  # noise is loud: it does start a turn
    (transcript,) = transcripts(events)
    assert not has_words(transcript, WORDS[COFFEE]) and not has_words(transcript, WORDS[DOOR])


def _turns(
    standin: OpenAIStandIn, turn_detection: dict[str, Any], pcm: bytes, count: int
) -> list[dict[str, Any]]:
    key = mint(standin, {"transcription": {"model": "gpt-transcribe"}, "turn_detection": turn_detection})
    with open_socket(standin, key) as ws:
        receive(ws)
        stream(ws, pcm)
        events = events_until(ws, COMPLETED, count=count)
        send(ws, {"type": "input_audio_buffer.commit"})  # ends a turn still open; else the buffer is empty
        events.append(receive(ws))
    return events


def test_silence_duration_ms_decides_where_a_turn_ends(standin: OpenAIStandIn) -> None:
    # With the WAVs' own silence, 800 ms between the sentences; 1500 ms after them.
    two_sentences = speech(COFFEE, DOOR, gap_ms=400) + silence(1100)
    vad = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300}
    short = _turns(standin, {**vad, "silence_duration_ms": 500}, two_sentences, count=2)
    assert [e["type"] for e in short].count("input_audio_buffer.speech_started") == 2
    assert short[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    # 800 ms of silence does not end a turn that waits 1200 ms: one turn with both sentences, which ends
    # 1200 ms after the last loud frame (the door WAV is loud until 1180 ms).
    long = _turns(standin, {**vad, "silence_duration_ms": 1200}, two_sentences, count=1)
    assert [e["type"] for e in long].count("input_audio_buffer.speech_started") == 1
    (transcript,) = transcripts(long)
    # Both sentences (11 words) in one transcript; in one run, the second's words come out less well.
    assert has_words(transcript, WORDS[COFFEE]) and len(transcript.split()) >= 8, transcript
    stopped = next(e for e in long if e["type"] == "input_audio_buffer.speech_stopped")
    end_of_door = 500 + len(from_wav(COFFEE)) // 48 + 400 + 1180
    assert end_of_door + 1200 - 40 <= stopped["audio_end_ms"] <= end_of_door + 1200 + 40


def test_semantic_vad_eagerness_sets_the_silence_that_ends_a_turn(standin: OpenAIStandIn) -> None:
    pcm = speech(COFFEE, DOOR, gap_ms=400) + silence(1500)  # 800 ms between the sentences, 1900 ms after
    eager = _turns(standin, {"type": "semantic_vad", "eagerness": "high"}, pcm, count=2)  # 500 ms
    assert [e["type"] for e in eager].count("input_audio_buffer.speech_started") == 2
    patient = _turns(standin, {"type": "semantic_vad", "eagerness": "low"}, pcm, count=1)  # 1500 ms
    assert [e["type"] for e in patient].count("input_audio_buffer.speech_started") == 1


def test_prefix_padding_ms_moves_the_turns_start(standin: OpenAIStandIn) -> None:
    pcm = silence(1000) + from_wav(DOOR) + silence(1000)
    starts = {}
    for padding in (0, 300):
        events = _turns(
            standin,
            {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": padding,
                "silence_duration_ms": 500,
            },
            pcm,
            count=1,
        )
        starts[padding] = events[0]["audio_start_ms"]
    assert 1000 <= starts[0] <= 1200  # espeak-ng starts speaking right away
    assert starts[0] - starts[300] == 300


def test_manual_turns_with_commit_and_clear(standin: OpenAIStandIn) -> None:
    key = mint(standin, {"transcription": {"model": "gpt-transcribe"}, "turn_detection": None})
    with open_socket(standin, key) as ws:
        receive(ws)
        send(ws, {"type": "input_audio_buffer.commit", "event_id": "c1"})
        empty = receive(ws)
        assert (empty["error"]["code"], empty["error"]["event_id"]) == (
            "input_audio_buffer_commit_empty",
            "c1",
        )
        stream(ws, from_wav(COFFEE))
        send(ws, {"type": "input_audio_buffer.clear"})
        cleared_turn = events_until(ws, "input_audio_buffer.cleared")
        stream(ws, silence(200) + from_wav(DOOR) + silence(200))
        send(ws, {"type": "input_audio_buffer.commit"})
        events = events_until(ws, COMPLETED)
    # Until the clear, only the open turn's words (deltas); the clear drops the turn, never committed.
    assert {e["type"] for e in cleared_turn[:-1]} <= {DELTA}
    dropped = {e["item_id"] for e in cleared_turn[:-1]}
    kinds = [e["type"] for e in events]
    assert "input_audio_buffer.speech_started" not in kinds
    assert kinds[-2:] == ["input_audio_buffer.committed", COMPLETED] or kinds[-3:] == [
        "input_audio_buffer.committed",
        DELTA,
        COMPLETED,
    ]
    (committed,) = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert committed["item_id"] not in dropped
    assert {e["item_id"] for e in events if e["type"] in (DELTA, COMPLETED)} == {committed["item_id"]}
    (transcript,) = transcripts(events)
    assert has_words(transcript, WORDS[DOOR]) and not has_words(transcript, WORDS[COFFEE]), transcript


# ----------------------------------------------------------------------- models that take no server VAD

LIVE = {"transcription": {"model": "gpt-live-transcribe", "language": "en"}}  # no turn_detection: none


def test_without_turn_detection_words_stream_while_the_audio_arrives_and_commit_ends_the_turn(
    standin: OpenAIStandIn,
) -> None:
    key = mint(standin, LIVE)
    with open_socket(standin, key) as ws:
        session = receive(ws)["session"]
        assert session["audio"]["input"]["turn_detection"] is None
        # 1 s of silence after the words: no VAD ends the turn. At the pace of a speaker: Whisper's partial
        # text comes from decodes in the background, which a burst of audio would outrun.
        stream(ws, speech(COFFEE), pace=1.0)
        send(ws, {"type": "input_audio_buffer.commit"})
        events = events_until(ws, COMPLETED)
        # One turn per commit: the next commit has nothing to commit.
        send(ws, {"type": "input_audio_buffer.commit"})
        assert receive(ws)["error"]["code"] == "input_audio_buffer_commit_empty"
    kinds = [e["type"] for e in events]
    assert "input_audio_buffer.speech_started" not in kinds
    # Deltas came while the audio arrived, before the commit.
    assert DELTA in kinds[: kinds.index("input_audio_buffer.committed")]
    committed = events[kinds.index("input_audio_buffer.committed")]
    assert {e["item_id"] for e in events} == {committed["item_id"]}
    (transcript,) = transcripts(events)
    assert has_words(transcript, WORDS[COFFEE]), transcript
    assert events[-1]["usage"]["seconds"] > 2  # the whole buffer, silences included


def test_session_update_cannot_turn_vad_on_for_a_model_that_takes_none(standin: OpenAIStandIn) -> None:
    vad = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}
    with open_socket(standin, mint(standin, LIVE)) as ws:
        receive(ws)
        for turn_detection in (vad, {"type": "semantic_vad"}):
            send(
                ws,
                {
                    "type": "session.update",
                    "event_id": "u1",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"turn_detection": turn_detection}},
                    },
                },
            )
            error = receive(ws)
            assert error["type"] == "error", error
            assert (error["error"]["code"], error["error"]["param"], error["error"]["event_id"]) == (
                "invalid_value",
                "session.audio.input.turn_detection",
                "u1",
            )
            assert "gpt-live-transcribe" in error["error"]["message"]
        # Nothing changed: still no VAD, and a commit ends the turn.
        stream(ws, speech(DOOR))
        send(ws, {"type": "input_audio_buffer.commit"})
        (transcript,) = transcripts(events_until(ws, COMPLETED))
    assert has_words(transcript, WORDS[DOOR]), transcript

    # A session with VAD cannot switch to such a model and keep its VAD; it can with turn detection off.
    with open_socket(standin, mint(standin)) as ws:  # gpt-transcribe, server VAD
        receive(ws)
        live = {"transcription": {"model": "gpt-live-transcribe"}}
        send(ws, {"type": "session.update", "session": {"type": "transcription", "audio": {"input": live}}})
        assert receive(ws)["error"]["param"] == "session.audio.input.turn_detection"
        send(
            ws,
            {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {**live, "turn_detection": None}}},
            },
        )
        updated = receive(ws)
    assert updated["type"] == "session.updated", updated
    assert updated["session"]["audio"]["input"]["turn_detection"] is None
    assert updated["session"]["audio"]["input"]["transcription"] == {"model": "gpt-live-transcribe"}


def test_api_key_session_on_a_model_without_vad_has_no_turn_detection(standin: OpenAIStandIn) -> None:
    """How a server (the relay) opens such a session: its API key, then the session in a session.update."""
    with open_socket(standin, standin.api_key) as ws:
        assert receive(ws)["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        send(ws, {"type": "session.update", "session": {"type": "transcription", "audio": {"input": LIVE}}})
        updated = receive(ws)
        assert updated["type"] == "session.updated", updated
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        stream(ws, speech(DOOR))
        send(ws, {"type": "input_audio_buffer.commit"})
        events = events_until(ws, COMPLETED)
    assert "input_audio_buffer.speech_started" not in [e["type"] for e in events]
    (transcript,) = transcripts(events)
    assert has_words(transcript, WORDS[DOOR]), transcript


# --------------------------------------------------------------------------------------------- faults


def test_drop_socket_mid_stream(standin: OpenAIStandIn) -> None:
    standin.enqueue(DropSocket(after_events=3))
    with open_socket(standin, mint(standin)) as ws:
        receive(ws)
        # The cut may come while the audio is still being sent, or while the client reads.
        with pytest.raises(ConnectionClosedError) as caught:
            stream(ws, speech(COFFEE))
            while True:
                receive(ws)
    assert caught.value.rcvd is None  # no close frame: the connection was cut
    connection = standin.realtime[0]
    assert connection.wait_closed()
    assert connection.close_code is None
    assert len(connection.sent) == 3  # then nothing more was sent
    # The next connection is served normally.
    with open_socket(standin, mint(standin)) as ws:
        assert receive(ws)["type"] == "session.created"
        send(ws, {"type": "input_audio_buffer.clear"})
        assert receive(ws)["type"] == "input_audio_buffer.cleared"


def test_slow_events_are_held_until_released(standin: OpenAIStandIn) -> None:
    standin.enqueue(SlowEvents(seconds=30))
    with open_socket(standin, mint(standin)) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        standin.reset()  # releases the held event
        assert receive(ws)["type"] == "session.created"


def test_stop_closes_open_sockets() -> None:
    standin = OpenAIStandIn().start()
    try:
        with open_socket(standin, mint(standin)) as ws:
            receive(ws)
            standin.stop()
            # The socket is still open on this side: what comes next is the server's close frame.
            with pytest.raises(ConnectionClosed) as caught:
                receive(ws)
    finally:
        standin.stop()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1001


# ------------------------------------------------------------------------- without the speech extra


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


HIDE = """
import importlib.abc, runpy, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Hide())
sys.argv = ["python -m django_rt_sessions.testing", *sys.argv[1:]]
runpy.run_module("django_rt_sessions.testing", run_name="__main__", alter_sys=True)
"""


def _cli_without(*hidden: str, args: tuple[str, ...] = ("--port", "0")) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", HIDE.format(hidden=set(hidden)), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def test_without_the_speech_extra_the_standin_serves_and_says_why() -> None:
    proc = _cli_without("faster_whisper", "pocketsphinx")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        base = next(line for line in lines if "listening on" in line).split()[-1]
        speech_line = next(line for line in lines if line.startswith("  Transcription"))
        assert "standin-speech" in speech_line and "faster-whisper" in speech_line, lines
        key = requests.post(
            base + "/v1/realtime/client_secrets",
            json={"session": {"type": "transcription"}},
            headers={"Authorization": "Bearer sk-standin-test-key"},
            timeout=10,
        ).json()["value"]
        with connect(
            base.replace("http", "ws") + "/v1/realtime?intent=transcription",
            additional_headers={"Authorization": f"Bearer {key}"},
        ) as ws:
            assert receive(ws)["type"] == "session.created"
            error = receive(ws)
            stream(ws, speech(DOOR))
            send(ws, {"type": "input_audio_buffer.commit"})
            again = receive(ws)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert error["error"]["code"] == again["error"]["code"] == "speech_engine_unavailable"
    assert 'pip install "django-rt-sessions[standin-speech]"' in error["error"]["message"]
    assert proc.returncode == 0, stderr


@pytest.mark.parametrize("hidden", [("aiohttp",), ("jsonschema",), ("aiohttp", "jsonschema", "pocketsphinx")])
def test_cli_without_the_testing_extra_names_it(hidden: tuple[str, ...]) -> None:
    proc = _cli_without(*hidden)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert stdout == ""
    assert stderr.strip().splitlines() == [
        "python -m django_rt_sessions.testing needs the testing extra "
        f'(missing: {hidden[0]}): pip install "django-rt-sessions[testing]" '
        '(from a checkout: pip install -e ".[testing]")'
    ]
    assert "Traceback" not in stderr


def test_cli_hider_hides(tmp_path: Path) -> None:
    # Guards the two tests above: the blocker really hides a module that is installed.
    code = HIDE.split("sys.argv")[0].format(hidden={"aiohttp"}) + textwrap.dedent(
        """
        try:
            import aiohttp
        except ModuleNotFoundError:
            print("hidden")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)  # noqa: S603
    assert out.stdout.strip() == "hidden"


def test_text_to_speech_helper_makes_audio_the_engine_understands(standin: OpenAIStandIn) -> None:
    needs_espeak()
    pcm = from_text("i would like a cup of coffee")
    assert len(pcm) > 24000 * 2  # more than a second of 24 kHz PCM16
    with open_socket(standin, mint(standin)) as ws:
        receive(ws)
        stream(ws, silence(500) + pcm + silence(1000))
        (transcript,) = transcripts(events_until(ws, COMPLETED))
    assert has_words(transcript, WORDS[COFFEE]), transcript
