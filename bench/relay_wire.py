"""What the relay benchmark's processes share: the frames the clients send, how the sink reads them back.

Each client frame is what a browser sends (rt-sessions.js: `JSON.stringify` of the event, `type` first):

    {"type":"input_audio_buffer.append","audio":"<base64 of 1,280 bytes>","event_id":"evt_<n>_<ns>"}

every 40 ms: 1,280 bytes of PCM16 24 kHz mono (1,708 characters of base64) by default, and an `event_id`
carrying the session's number and the client's `time.monotonic_ns()` just before the frame was written. A
relay forwards the text unchanged, so the sink (bench/relay_sink.py) reads the send time back from the
frame's tail and the added latency is its arrival time minus that (one clock: CLOCK_MONOTONIC is the
machine's, not the process's). The audio is a synthetic voice-like signal (harmonics, a slow envelope,
noise), 2 s of frames played in a loop, so that a server that compresses (permessage-deflate) pays what
real audio costs it.
"""

from __future__ import annotations

import base64
import math
import random
from array import array

SAMPLE_RATE = 24_000
FRAME_MS = 40
FRAME_NS = FRAME_MS * 1_000_000
# What the benchmark's brief and the outside measurement it is compared with send per 40 ms frame: 1,280 bytes
# (1,708 characters of base64). Real time at 24 kHz would be 1,920 bytes per 40 ms (bytes_for_ms below):
# bench/relay.py --frame-bytes 1920 sends that.
FRAME_BYTES = 1280
FRAMES_PER_SECOND = 1000 // FRAME_MS
LOOP_FRAMES = 50  # 2 s of distinct audio, played in a loop
PREFIX = b'{"type":"input_audio_buffer.append","audio":"'
EVENT_ID = b'","event_id":"evt_'
END = b'"}'


def bytes_for_ms(ms: int) -> int:
    """PCM16 mono bytes of `ms` milliseconds at 24 kHz (what the relay meters: 48,000 a second)."""
    return SAMPLE_RATE * 2 * ms // 1000


def audio_frames(count: int = LOOP_FRAMES, frame_bytes: int = FRAME_BYTES, seed: int = 24) -> list[bytes]:
    """Base64 of `count` frames of a voice-like signal (PCM16 little-endian), ASCII bytes."""
    rng = random.Random(seed)  # noqa: S311 - reproducible noise, not a secret
    frames = []
    for index in range(count):
        samples = array("h")
        for i in range(frame_bytes // 2):
            t = (index * (frame_bytes // 2) + i) / SAMPLE_RATE
            envelope = 0.35 + 0.3 * math.sin(2 * math.pi * 3.1 * t)
            pitch = 140 + 25 * math.sin(2 * math.pi * 0.7 * t)
            voice = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3, 5))
            value = 6000 * envelope * voice + rng.gauss(0, 300)
            samples.append(max(-32768, min(32767, int(value))))
        if samples.itemsize != 2:  # pragma: no cover - every platform CPython runs on has 16-bit shorts
            raise RuntimeError("array('h') is not 16 bits here")
        frames.append(base64.b64encode(samples.tobytes()))
    return frames


def client_frame(audio: bytes, session: int, sent_ns: int) -> bytes:
    """One append event as the clients send it (UTF-8)."""
    return b"".join((PREFIX, audio, EVENT_ID, str(session).encode(), b"_", str(sent_ns).encode(), END))


def sent_ns_of(frame: bytes) -> int:
    """The send time a client wrote in a frame's event_id (ValueError when the frame is not one of theirs)."""
    if not frame.endswith(END):
        raise ValueError("not a benchmark frame")
    return int(frame[frame.rindex(b"_") + 1 : -len(END)])


def quantile(sorted_values: list[float] | array, fraction: float, total: int | None = None) -> float:
    """The value at `fraction` of `total` sorted values, where the values missing from `total` (frames that
    never arrived) count as infinitely late."""
    total = len(sorted_values) if total is None else total
    if total <= 0:
        return math.nan
    rank = max(0, math.ceil(fraction * total) - 1)
    return sorted_values[rank] if rank < len(sorted_values) else math.inf
