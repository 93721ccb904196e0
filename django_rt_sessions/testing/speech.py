"""The stand-in's offline speech engine: PocketSphinx behind a small interface, and an energy-based VAD.

Both need the ``standin-speech`` extra (pocketsphinx, whose English model is inside its wheel; soxr to
resample the Realtime API's 24 kHz audio to the engine's 16 kHz; numpy). :func:`load_engine` raises
:class:`SpeechUnavailable`, whose message names the extra, when they are not installed; the stand-in then
serves everything else and answers realtime sessions with an ``error`` event carrying that message.

A different engine plugs in through the :class:`SpeechEngine` protocol (``OpenAIStandIn(speech=...)``).
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "INPUT_RATE",
    "SPEECH_EXTRA",
    "EnergyVAD",
    "PocketSphinxEngine",
    "Recognizer",
    "SpeechEngine",
    "SpeechUnavailable",
    "VADEvent",
    "load_engine",
]

INPUT_RATE = 24000  # audio/pcm in the Realtime API: 16-bit little-endian mono at 24 kHz
SPEECH_EXTRA = "django-rt-sessions[standin-speech]"
INSTALL_HINT = f'pip install "{SPEECH_EXTRA}"'


class SpeechUnavailable(RuntimeError):
    """The speech engine cannot run here; the message says why and what to install."""


class Recognizer(Protocol):
    """One utterance at a time: ``accept`` audio, read the ``partial`` text, ``finish`` for the final text."""

    def accept(self, pcm16: bytes) -> None:
        """Feed 24 kHz PCM16 audio of the current utterance."""
        ...

    def partial(self) -> str:
        """The text recognised so far in the current utterance."""
        ...

    def finish(self) -> str:
        """End the utterance and return its final text; the recognizer is then ready for the next one."""
        ...

    def cancel(self) -> None:
        """Drop the current utterance (input_audio_buffer.clear)."""
        ...


class SpeechEngine(Protocol):
    """Hands out recognizers; ``description`` is shown at start-up and on the demo page."""

    description: str

    @contextmanager
    def recognizer(self) -> Iterator[Recognizer]:
        """A recognizer for one realtime session, returned to the engine when the block exits."""
        ...


def load_engine() -> PocketSphinxEngine:
    """The default engine, or SpeechUnavailable naming the extra to install."""
    missing = []
    for module in ("pocketsphinx", "soxr", "numpy"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise SpeechUnavailable(
            f"The stand-in's speech engine is not installed (missing: {', '.join(missing)}); "
            f"transcription is off. Install it with: {INSTALL_HINT}"
        )
    return PocketSphinxEngine()


class _PocketSphinxRecognizer:
    """A PocketSphinx decoder fed through a streaming 24 kHz → 16 kHz soxr resampler, decoding as the audio
    comes (one pass: a second, whole-turn pass was measured to double the delay to the final text without
    making it better)."""

    def __init__(self, decoder: Any, rate: int) -> None:
        import numpy
        import soxr

        self._numpy = numpy
        self._soxr = soxr
        self._decoder = decoder
        self._rate = rate
        self._resampler: Any = None

    def _begin(self) -> None:
        self._resampler = self._soxr.ResampleStream(INPUT_RATE, self._rate, 1, dtype="int16")
        self._decoder.start_utt()

    def _feed(self, samples: Any) -> None:
        if len(samples):
            self._decoder.process_raw(samples.tobytes(), False, False)

    def accept(self, pcm16: bytes) -> None:
        if self._resampler is None:
            self._begin()
        chunk = self._numpy.frombuffer(pcm16, dtype="<i2")
        self._feed(self._resampler.resample_chunk(chunk))

    def partial(self) -> str:
        if self._resampler is None:
            return ""
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def finish(self) -> str:
        if self._resampler is None:
            return ""
        self._feed(self._resampler.resample_chunk(self._numpy.zeros(0, dtype="<i2"), last=True))
        self._resampler = None
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""

    def cancel(self) -> None:
        if self._resampler is not None:
            self._resampler = None
            self._decoder.end_utt()


class PocketSphinxEngine:
    """PocketSphinx 5 with the US English acoustic model, language model and dictionary of its wheel.

    A decoder holds about 90 MB, so decoders are pooled: a session borrows one and gives it back when it
    closes; at most ``max_decoders`` exist (further sessions wait for one). Each session starts from the
    decoder's initial cepstral mean (which then adapts to the session's audio), so that what one session
    said does not change what the next one hears: the same audio gives the same transcript.
    """

    rate = 16000

    def __init__(self, max_decoders: int = 4) -> None:
        version = importlib.metadata.version("pocketsphinx")
        self.description = f"local speech engine (English): PocketSphinx {version}"
        self._free: list[tuple[Any, str]] = []  # (decoder, its initial cepstral mean)
        self._created = 0
        self._max = max_decoders
        self._lock = threading.Condition()

    def _decoder(self) -> Any:
        from pocketsphinx import Decoder

        # loglevel: the decoder otherwise writes hundreds of INFO lines to stderr.
        return Decoder(samprate=self.rate, loglevel="FATAL")

    def warm_up(self) -> None:
        """Load one decoder now (about half a second) so that the first session does not wait for it."""
        with self.recognizer():
            pass

    @contextmanager
    def recognizer(self) -> Iterator[Recognizer]:
        with self._lock:
            while not self._free and self._created >= self._max:
                self._lock.wait()
            decoder = self._free.pop() if self._free else None
            if decoder is None:
                self._created += 1
        if decoder is None:
            try:
                created = self._decoder()
            except BaseException:
                with self._lock:
                    self._created -= 1
                    self._lock.notify()
                raise
            decoder = (created, created.get_cmn())
        else:
            decoder[0].set_cmn(decoder[1])
        recognizer = _PocketSphinxRecognizer(decoder[0], self.rate)
        try:
            yield recognizer
        finally:
            recognizer.cancel()
            with self._lock:
                self._free.append(decoder)
                self._lock.notify()


# ------------------------------------------------------------------------------------------------ VAD


@dataclass(frozen=True)
class VADEvent:
    """``kind`` "start" (``audio`` = the prefix padding and the speech so far) or "stop"; times in ms."""

    kind: str
    at_ms: int
    audio: bytes = b""


class EnergyVAD:
    """Server VAD by frame energy, with the session's ``threshold``, ``prefix_padding_ms`` and
    ``silence_duration_ms`` (OpenAI's ``server_vad`` parameters).

    A 20 ms frame is speech when its RMS level is above a level set by ``threshold`` (0.0 → -60 dBFS, the
    default 0.5 → -40 dBFS, 1.0 → -20 dBFS). Speech starts after ``MIN_SPEECH_MS`` of speech frames (a
    click does not start a turn) and stops after ``silence_duration_ms`` without one. ``feed`` splits the
    audio at those points: it yields ``(event_or_None, audio)`` pieces, where the audio after a "start" and
    before the "stop" belongs to the turn.
    """

    FRAME_MS = 20
    MIN_SPEECH_MS = 60

    def __init__(self, threshold: float = 0.5, prefix_padding_ms: int = 300, silence_duration_ms: int = 500):
        import numpy

        self._numpy = numpy
        self.level_dbfs = -60.0 + 40.0 * max(0.0, min(1.0, float(threshold)))
        self._min_rms = 32768.0 * 10 ** (self.level_dbfs / 20)
        self._frame_bytes = INPUT_RATE * self.FRAME_MS // 1000 * 2
        self._padding_frames = max(0, int(prefix_padding_ms) // self.FRAME_MS)
        self._silence_frames = max(1, int(silence_duration_ms) // self.FRAME_MS)
        self._min_speech_frames = self.MIN_SPEECH_MS // self.FRAME_MS
        self._pending = b""  # less than one frame, carried to the next feed
        self._frames_seen = 0
        self.speaking = False
        self._recent: list[bytes] = []  # before speech: padding + candidate speech frames
        self._speech_run = 0
        self._silence_run = 0

    def reset(self) -> None:
        """Forget the current turn (input_audio_buffer.clear); the audio clock keeps running."""
        self.speaking = False
        self._recent = []
        self._speech_run = self._silence_run = 0

    def _is_speech(self, frame: bytes) -> bool:
        samples = self._numpy.frombuffer(frame, dtype="<i2").astype(self._numpy.float64)
        return bool(self._numpy.sqrt(self._numpy.mean(samples * samples)) >= self._min_rms)

    def feed(self, pcm16: bytes) -> list[tuple[VADEvent | None, bytes]]:
        data = self._pending + pcm16
        usable = len(data) - len(data) % self._frame_bytes
        self._pending = data[usable:]
        pieces: list[tuple[VADEvent | None, bytes]] = []
        turn_audio: list[bytes] = []
        for offset in range(0, usable, self._frame_bytes):
            frame = data[offset : offset + self._frame_bytes]
            self._frames_seen += 1
            speech = self._is_speech(frame)
            if not self.speaking:
                self._recent.append(frame)
                self._speech_run = self._speech_run + 1 if speech else 0
                if self._speech_run >= self._min_speech_frames:
                    keep = self._padding_frames + self._speech_run
                    audio = b"".join(self._recent[-keep:])
                    start_ms = (self._frames_seen - min(keep, len(self._recent))) * self.FRAME_MS
                    self.speaking, self._recent, self._silence_run = True, [], 0
                    pieces.append((VADEvent("start", start_ms, audio), b""))
                else:
                    del self._recent[: -(self._padding_frames + self._min_speech_frames)]
                continue
            turn_audio.append(frame)
            self._silence_run = 0 if speech else self._silence_run + 1
            if self._silence_run >= self._silence_frames:
                pieces.append((None, b"".join(turn_audio)))
                turn_audio = []
                self.speaking, self._speech_run = False, 0
                pieces.append((VADEvent("stop", self._frames_seen * self.FRAME_MS), b""))
        if turn_audio:
            pieces.append((None, b"".join(turn_audio)))
        return pieces

    @property
    def position_ms(self) -> int:
        return self._frames_seen * self.FRAME_MS
