"""Audio for realtime tests: PCM16 24 kHz mono frames from a WAV file or from text-to-speech (espeak-ng).

::

    from django_rt_sessions.testing.audio import frames, from_text, from_wav, silence

    pcm = silence(300) + from_text("hello world") + silence(1000)
    for frame in frames(pcm):          # 100 ms each, ready for input_audio_buffer.append (base64)
        ...

``from_wav`` reads any PCM WAV (8/16/24/32-bit, mono or stereo, any rate): channels are averaged and the
rate converted to 24 kHz with soxr (the ``standin-speech`` extra). ``from_text`` runs Debian's ``espeak-ng``
(``apt-get install espeak-ng``); :class:`TextToSpeechUnavailable` says so when it is missing.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import wave
from pathlib import Path

from . import extras
from .speech import INPUT_RATE

__all__ = [
    "INPUT_RATE",
    "TextToSpeechUnavailable",
    "base64_frames",
    "frames",
    "from_text",
    "from_wav",
    "silence",
    "to_wav",
]


class TextToSpeechUnavailable(RuntimeError):
    """espeak-ng is not installed."""


def silence(ms: int) -> bytes:
    """``ms`` milliseconds of digital silence."""
    return b"\x00\x00" * (INPUT_RATE * ms // 1000)


def frames(pcm16: bytes, ms: int = 100) -> list[bytes]:
    """Split audio into frames of ``ms`` milliseconds (the last one may be shorter)."""
    size = INPUT_RATE * ms // 1000 * 2
    return [pcm16[i : i + size] for i in range(0, len(pcm16), size)]


def base64_frames(pcm16: bytes, ms: int = 100) -> list[str]:
    """``frames`` base64-encoded: each is the ``audio`` of one ``input_audio_buffer.append``."""
    return [base64.b64encode(frame).decode("ascii") for frame in frames(pcm16, ms)]


def from_wav(source: str | os.PathLike[str] | bytes) -> bytes:
    """A WAV file (a path, or its bytes) as PCM16 24 kHz mono little-endian."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with wave.open(io.BytesIO(data)) as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        raw = wav.readframes(wav.getnframes())
    try:
        import numpy
    except ImportError as exc:
        raise RuntimeError(
            f"Reading WAV files needs numpy and soxr: {extras.install_hint(extras.SPEECH_LITE)}"
        ) from exc
    if width == 1:
        samples = (numpy.frombuffer(raw, dtype=numpy.uint8).astype(numpy.float32) - 128) / 128
    elif width == 3:
        padded = numpy.frombuffer(raw, dtype=numpy.uint8).reshape(-1, 3)
        ints = (padded[:, 0].astype(numpy.int32) | padded[:, 1].astype(numpy.int32) << 8) | (
            padded[:, 2].astype(numpy.int8).astype(numpy.int32) << 16
        )
        samples = ints.astype(numpy.float32) / 2**23
    elif width in (2, 4):
        dtype = "<i2" if width == 2 else "<i4"
        samples = numpy.frombuffer(raw, dtype=dtype).astype(numpy.float32) / 2 ** (8 * width - 1)
    else:
        raise ValueError(f"unsupported WAV sample width: {width} bytes")
    mono = samples.reshape(-1, channels).mean(axis=1)
    if rate != INPUT_RATE:
        try:
            import soxr
        except ImportError as exc:
            raise RuntimeError(f"Resampling needs soxr: {extras.install_hint(extras.SPEECH_LITE)}") from exc
        mono = soxr.resample(mono, rate, INPUT_RATE)
    return bytes((numpy.clip(mono, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes())


def from_text(text: str, *, voice: str = "en-us", words_per_minute: int = 140) -> bytes:
    """``text`` spoken by espeak-ng, as PCM16 24 kHz mono."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise TextToSpeechUnavailable(
            "Text-to-speech needs espeak-ng (Debian/Ubuntu: apt-get install espeak-ng)."
        )
    spoken = subprocess.run(  # noqa: S603 - a fixed binary; the text is one argument, not a shell string
        [binary, "-v", voice, "-s", str(words_per_minute), "--stdout", "--", text],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return from_wav(spoken)


def to_wav(pcm16: bytes, path: str | os.PathLike[str], *, rate: int = INPUT_RATE) -> Path:
    """Write PCM16 mono audio as a WAV file (for a browser's fake microphone, say); returns the path."""
    target = Path(path)
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm16)
    return target
