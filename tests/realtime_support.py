"""Shared by the realtime tests: the speech fixtures, a key minted from the stand-in, a WebSocket client.

The speech fixtures (tests/speech/*.wav) were made with espeak-ng 1.51 (Debian 12) and are committed so that
recognition does not depend on the espeak-ng version installed:

    espeak-ng -v en-us -s 150 -w tests/speech/coffee.wav "i would like a cup of coffee"
    espeak-ng -v en-us -s 150 -w tests/speech/door.wav "he opened the door"

The stand-in's default engine, Whisper tiny.en, hears "i would like a cup and coffee" and "he opened the
door" (the same across espeak-ng voices and speeds); WORDS below are the words it gets right, which the tests
assert. PocketSphinx, the small fallback, gets fewer right: POCKETSPHINX_WORDS are those it gets in every
measured rendering (voices, speeds, preceding speech). Over WebRTC the sentence reaches Whisper through
Chromium's audio processing and Opus, and it hears less: OPUS_WORDS are those it got in every line of 8 runs
of the two WebRTC browser tests (it also wrote "It would", "a curb and coffee" and "He opens the door").
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy
import pytest
import requests
from websockets.sync.client import ClientConnection, connect

from django_rt_sessions.testing import OpenAIStandIn
from django_rt_sessions.testing.audio import from_wav, silence

# The websockets client logs the handshake's headers at DEBUG, the key (Authorization, subprotocol)
# included; the suite's log guard would rightly object.
logging.getLogger("websockets").setLevel(logging.INFO)

SPEECH = Path(__file__).resolve().parent / "speech"
COFFEE = SPEECH / "coffee.wav"
DOOR = SPEECH / "door.wav"
# The words the default engine (Whisper) gets right in each sentence.
WORDS = {COFFEE: ("i", "would", "like", "a", "cup", "coffee"), DOOR: ("he", "opened", "the", "door")}
POCKETSPHINX_WORDS = {COFFEE: ("would", "like"), DOOR: ("opened",)}
OPUS_WORDS = {COFFEE: ("would", "like", "a", "coffee"), DOOR: ("he", "the", "door")}
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
WAIT = 20  # seconds: a bound on any one wait for an event, never an expectation of speed

# Server VAD: the stand-in's turns by energy. gpt-live-transcribe takes no VAD (OpenAI's VAD guide), so the
# sessions with VAD use gpt-transcribe.
GA_INPUT = {
    "transcription": {"model": "gpt-transcribe", "language": "en"},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    },
}


def speech(*wavs: Path, gap_ms: int = 1000) -> bytes:
    """The fixtures in a row, with silence before, between and after (so that server VAD ends each turn)."""
    pcm = silence(500)
    for wav in wavs:
        pcm += from_wav(wav) + silence(gap_ms)
    return pcm


def noise(ms: int, level: float = 3000, seed: int = 7) -> bytes:
    """Gaussian noise well above the VAD's threshold (so it does start turns)."""
    samples = numpy.random.default_rng(seed).normal(0, level, 24 * ms)
    return bytes(numpy.clip(samples, -32768, 32767).astype("<i2").tobytes())


def mint(standin: OpenAIStandIn, audio_input: dict[str, Any] | None = None, **body: Any) -> str:
    """An ephemeral key from the stand-in's GA endpoint, for a transcription session with ``audio_input``."""
    payload = {
        "session": {
            "type": "transcription",
            "audio": {"input": GA_INPUT if audio_input is None else audio_input},
        },
        **body,
    }
    response = requests.post(
        standin.base_url + "/realtime/client_secrets",
        json=payload,
        headers={"Authorization": f"Bearer {standin.api_key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["value"])


def open_socket(standin: OpenAIStandIn, key: str, *, browser_style: bool = False) -> ClientConnection:
    """A realtime connection with the key as a header (SDKs) or as the subprotocol (browsers)."""
    if browser_style:
        return connect(standin.realtime_url, subprotocols=["realtime", f"openai-insecure-api-key.{key}"])  # type: ignore[list-item]
    return connect(standin.realtime_url, additional_headers={"Authorization": f"Bearer {key}"})


def receive(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def send(ws: ClientConnection, event: dict[str, Any]) -> None:
    ws.send(json.dumps(event))


def stream(ws: ClientConnection, pcm: bytes, *, frame_ms: int = 100, pace: float = 0.0) -> None:
    """Append the audio in frames; ``pace`` 1.0 sends it in real time (for latency measurements)."""
    from django_rt_sessions.testing.audio import base64_frames

    for frame in base64_frames(pcm, frame_ms):
        send(ws, {"type": "input_audio_buffer.append", "audio": frame})
        if pace:
            time.sleep(frame_ms / 1000 * pace)


def events_until(ws: ClientConnection, kind: str, count: int = 1) -> list[dict[str, Any]]:
    """Every server event up to the ``count``-th of ``kind`` (fails after WAIT seconds without one)."""
    events: list[dict[str, Any]] = []
    while sum(event["type"] == kind for event in events) < count:
        events.append(receive(ws))
    return events


def transcripts(events: list[dict[str, Any]]) -> list[str]:
    return [event["transcript"] for event in events if event["type"] == COMPLETED]


def spoken_words(transcript: str) -> list[str]:
    """The transcript's words, lowercased, without punctuation (Whisper writes "Coffee.")."""
    return re.findall(r"[a-z0-9']+", transcript.lower())


def has_words(transcript: str, words: tuple[str, ...]) -> bool:
    spoken = spoken_words(transcript)
    return all(word in spoken for word in words)


def needs_espeak() -> None:
    """Skip without espeak-ng on a laptop; with CI=true its absence fails (scripts/test installs it)."""
    if shutil.which("espeak-ng") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: espeak-ng is missing (scripts/test installs it)", pytrace=False)
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
