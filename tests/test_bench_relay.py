"""The relay benchmark's parts (bench/relay.py and its helpers) do what it says they measure.

The benchmark is not run for its figures here (no timed assertion): these check the recognition of an
append and its audio count (bench/channels_relay/frames.py), the frames the clients write and the sink
reads back, the verdict of a step, and that a tiny run through the bare forwarder and through the
Channels relay delivers every frame the clients wrote to the sink (real sockets, real processes).
"""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import relay, relay_wire
from bench.channels_relay.frames import append_audio_bytes, audio_bytes_of, parse_event

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
BROWSER = '{{"type":"input_audio_buffer.append","audio":"{audio}"}}'


def audio_of(size: int) -> str:
    return base64.b64encode(bytes(range(256)) * (size // 256) + bytes(size % 256)).decode()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 1278, 1279, 1280, 4800])
def test_an_append_is_counted_from_its_base64_length_padded_or_not(size: int) -> None:
    audio = audio_of(size)
    assert append_audio_bytes(BROWSER.format(audio=audio)) == size
    assert append_audio_bytes(BROWSER.format(audio=audio.rstrip("="))) == size
    sdk_frame = json.dumps({"type": "input_audio_buffer.append", "audio": audio, "event_id": "event_1"})
    assert append_audio_bytes(sdk_frame) == size
    assert audio_bytes_of(json.loads(sdk_frame)) == size


@pytest.mark.parametrize(
    "frame",
    [
        # Another event, another key order, an extra key: the slow path decides.
        '{"type":"input_audio_buffer.commit"}',
        '{"audio":"AAAA","type":"input_audio_buffer.append"}',
        '{"type":"input_audio_buffer.append","audio":"AAAA","extra":1}',
        # A second "type" after the audio: parsers disagree on which one wins.
        '{"type":"input_audio_buffer.append","audio":"AAAA","type":"session.update","session":{}}',
        # An escape or a control character in the audio, a quote that ends it early, a bad tail.
        '{"type":"input_audio_buffer.append","audio":"AA\\"}',
        '{"type":"input_audio_buffer.append","audio":"AA\\u0041A"}',
        '{"type":"input_audio_buffer.append","audio":"AA\x01A"}',
        '{"type":"input_audio_buffer.append","audio":"AAAA"} ',
        '{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"a b"}',
        '{"type":"input_audio_buffer.append","audio":"AAé="}',
        "not json",
    ],
)
def test_anything_but_the_plain_shape_takes_the_slow_path(frame: str) -> None:
    assert append_audio_bytes(frame) is None


def test_the_slow_path_refuses_duplicate_keys_and_non_objects() -> None:
    smuggled = '{"type":"input_audio_buffer.append","audio":"AAAA","type":"session.update"}'
    assert parse_event(smuggled) is None
    assert parse_event("[1, 2]") is None
    assert parse_event("{") is None
    assert parse_event('{"type": "input_audio_buffer.clear"}') == {"type": "input_audio_buffer.clear"}


def test_the_clients_frames_carry_their_send_time_and_a_plain_append() -> None:
    audio = relay_wire.audio_frames(count=2)
    assert len(audio) == 2 and audio[0] != audio[1]
    frame = relay_wire.client_frame(audio[0], 12, 123456789)
    assert relay_wire.sent_ns_of(frame) == 123456789
    assert append_audio_bytes(frame.decode()) == relay_wire.FRAME_BYTES
    with pytest.raises(ValueError):
        relay_wire.sent_ns_of(b'{"type":"session.update"}')


def test_frames_that_never_arrived_count_as_infinitely_late() -> None:
    arrived = [1.0] * 98
    assert relay_wire.quantile(arrived, 0.99, total=98) == 1.0
    assert relay_wire.quantile(arrived, 0.99, total=100) == math.inf  # 2 of 100 lost: above the 99th
    assert relay_wire.quantile(arrived, 0.5, total=100) == 1.0


def test_a_step_fails_on_latency_lost_frames_closed_sessions_or_late_clients() -> None:
    good = relay.Step(config="bare", sessions=10, open_at_window=10, expected=100, received=100)
    good.p99_ms, good.client_lag_p99_ms = 50.0, 5.0
    assert good.passed
    assert relay.Step(**{**good.__dict__, "p99_ms": 50.1}).why_failed() == "p99 50 ms"
    lost = relay.Step(**{**good.__dict__, "received": 90, "p99_ms": math.inf})
    assert lost.why_failed() == "p99 inf ms, 10 frames lost"
    assert "not open" in relay.Step(**{**good.__dict__, "open_at_window": 9}).why_failed()
    assert (
        "closed by the server"
        in relay.Step(**{**good.__dict__, "closed_by_server": {"1011": 1}}).why_failed()
    )
    assert "late" in relay.Step(**{**good.__dict__, "client_lag_p99_ms": 25.0}).why_failed()


def test_configurations_and_their_knobs() -> None:
    config = relay.parse_config("uvicorn-wsproto+DISPATCH=channels+DEFLATE=on")
    assert (config.base, config.knobs, config.deflate) == ("uvicorn-wsproto", {"DISPATCH": "channels"}, True)
    argv = relay.relay_argv(config, "python", 8000, "ws://127.0.0.1:1")
    assert argv[argv.index("--ws") + 1] == "wsproto"
    assert argv[argv.index("--ws-per-message-deflate") + 1] == "true"
    assert "--ws-per-message-deflate" in relay.relay_argv(
        relay.parse_config("uvicorn-websockets"), "p", 1, "u"
    )
    assert (
        relay.relay_env(config, "ws://sink", "sqlite:///x", "redis://r")["RT_BENCH_RELAY_DISPATCH"]
        == "channels"
    )
    for bad in ("nginx", "bare+DISPATCH=channels", "daphne+DEFLATE=on", "uvicorn-wsproto+COLOUR=red"):
        with pytest.raises(ValueError):
            relay.parse_config(bad)


def run_tiny(tmp_path: Path, config: str) -> list[dict[str, object]]:
    """bench/relay.py with 3 sessions for 1 s; the steps it wrote to --json."""
    out = tmp_path / "steps.json"
    done = subprocess.run(  # noqa: S603 - our own script
        [
            sys.executable,
            str(ROOT / "bench" / "relay.py"),
            "--configs",
            config,
            "--steps",
            "3",
            "--duration",
            "1",
            "--warmup",
            "0.5",
            "--ramp",
            "0.5",
            "--tries",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "RT_BENCH_RELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'relay.sqlite3'}",
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.exists(), done.stdout + done.stderr
    return json.loads(out.read_text())


def test_a_tiny_run_through_the_bare_forwarder_delivers_every_frame(tmp_path: Path) -> None:
    [step] = run_tiny(tmp_path, "bare")
    assert step["opened"] == step["open_at_window"] == 3
    assert step["expected"] > 0
    assert step["received"] == step["expected"]
    assert step["closed_by_server"] == {}


def test_a_tiny_run_through_the_channels_relay_delivers_and_meters_every_frame(tmp_path: Path) -> None:
    [step] = run_tiny(tmp_path, "uvicorn-websockets-sansio")
    assert step["opened"] == step["open_at_window"] == 3
    assert step["received"] == step["expected"] > 0
    import sqlite3

    with sqlite3.connect(tmp_path / "relay.sqlite3") as db:
        rows = db.execute("SELECT end_reason, audio_bytes FROM channels_relay_benchrelaysession").fetchall()
    assert [reason for reason, _ in rows] == ["client_closed"] * 3
    # Each session's audio is metered from its frames' base64 lengths: whole frames of 1,280 bytes.
    assert all(audio > 0 and audio % relay_wire.FRAME_BYTES == 0 for _, audio in rows)
