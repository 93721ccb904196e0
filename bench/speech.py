"""Benchmark: the stand-in's speech engines over its realtime WebSocket (accuracy, delay, CPU).

    .venv/bin/python bench/speech.py                                  # both engines, both turn modes
    .venv/bin/python bench/speech.py --engines whisper --modes vad    # one of each
    .venv/bin/python bench/speech.py --sentences 6 --verbose          # a quick look, every transcript shown

Speaks 24 ordinary English sentences with espeak-ng (three voices and speeds; none of them is used by a
test), starts the stand-in for each engine as its own process (`python -m django_rt_sessions.testing
--speech ENGINE`), and streams the sentences through its realtime WebSocket over a real loopback socket,
in 40 ms `input_audio_buffer.append` chunks paced at real time, in two sessions:

  vad     server VAD (threshold 0.5, prefix 300 ms, silence 500 ms): each sentence, then 1.5 s of silence
  commit  `turn_detection: null`: each sentence, then `input_audio_buffer.commit` at once

and prints per engine and mode:

  WER         word error rate over all sentences (jiwer), after lowercasing, dropping punctuation and
              spelling out numbers (num2words), so that "7" and "seven" are the same word
  delay       from the end of speech (the end of the sentence's last 20 ms frame above -40 dBFS, the VAD's
              default level, as sent) to `conversation.item.input_audio_transcription.completed`: p50, p95,
              max. With server VAD this includes the 500 ms of silence the VAD waits for
  after turn  from the end of the turn to `completed`: with server VAD, from when the audio at which the VAD
              ended the turn (`speech_stopped`'s `audio_end_ms`) was sent; with commits, from the commit
              (sent after the sentence's audio, whose last ~0.4 s is espeak-ng's trailing quiet)
  CPU         the stand-in process's CPU seconds (from /proc) per second of audio streamed, silences included
  peak MB     the stand-in process's peak resident memory (VmHWM) so far

Targets: WER <= 20 %, delay <= 1.5 s. Needs espeak-ng (apt-get install espeak-ng), the engines'
extras (standin-speech, standin-speech-lite), and jiwer and num2words (pip install jiwer num2words).
Linux only (CPU time from /proc). The machine's other load shows in the delays: compare engines within one
run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy  # noqa: E402
import requests  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from django_rt_sessions.testing.audio import from_text, silence  # noqa: E402

SENTENCES = (
    "the weather is nice today so we will walk to the park",
    "please send me the report before the meeting on friday",
    "my sister lives in a small house near the river",
    "we need to buy bread milk and eggs at the store",
    "the train to boston leaves at seven in the morning",
    "can you tell me where the nearest bank is",
    "the children are playing football in the garden",
    "i forgot my keys in the car again",
    "she reads a book every night before she goes to sleep",
    "the meeting has been moved to next tuesday afternoon",
    "turn left at the second traffic light and keep going",
    "our team won the game by three points",
    "the doctor said i should drink more water",
    "he bought a new computer for his office",
    "it started to rain just as we left the house",
    "could you please close the window it is cold in here",
    "the museum is open every day except monday",
    "they are planning a trip to the mountains this summer",
    "my phone battery is almost empty",
    "the price of gas went up again this week",
    "we watched a funny movie last night",
    "the restaurant on the corner serves excellent pizza",
    "i will call you back in ten minutes",
    "the students must finish their homework by thursday",
)
VOICES = (("en-us", 150), ("en", 170), ("en-us+f3", 130))  # (espeak-ng voice, words per minute), in turn
CHUNK_MS = 40
BYTES_PER_MS = 48  # PCM16 at 24 kHz
SPEECH_DBFS = -40.0
WER_TARGET = 0.20
DELAY_TARGET_S = 1.5
API_KEY = "sk-standin-test-key"
COMPLETED = "conversation.item.input_audio_transcription.completed"
VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


@dataclass
class Utterance:
    text: str
    voice: str
    pcm: bytes
    speech_end_ms: int  # where the last loud frame ends, from the start of pcm


@dataclass
class Result:
    engine: str
    mode: str
    references: list[str] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    after_turn: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    audio_s: float = 0.0
    peak_mb: float = 0.0


def speech_end_ms(pcm: bytes) -> int:
    samples = numpy.frombuffer(pcm, dtype="<i2").astype(numpy.float64)
    frame = 24000 // 50
    usable = len(samples) - len(samples) % frame
    rms = numpy.sqrt((samples[:usable].reshape(-1, frame) ** 2).mean(axis=1))
    loud = numpy.nonzero(rms >= 32768 * 10 ** (SPEECH_DBFS / 20))[0]
    return int((loud[-1] + 1) * 20) if len(loud) else 0


def utterances(count: int) -> list[Utterance]:
    spoken = []
    for index, text in enumerate(SENTENCES[:count]):
        voice, wpm = VOICES[index % len(VOICES)]
        pcm = from_text(text, voice=voice, words_per_minute=wpm)
        spoken.append(Utterance(text, f"{voice}@{wpm}", pcm, speech_end_ms(pcm)))
    return spoken


def normalise(text: str) -> str:
    from num2words import num2words

    text = text.lower().replace("-", " ")
    text = re.sub(r"\d+", lambda match: f" {num2words(int(match.group()))} ", text)
    text = re.sub(r"[^a-z' ]", " ", text.replace("-", " "))
    return " ".join(text.split())


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class StandIn:
    """`python -m django_rt_sessions.testing --speech ENGINE` on a free port, ready once its model loaded."""

    def __init__(self, engine: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("RT_STANDIN_SPEECH", None)
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", "django_rt_sessions.testing", "--port", "0", "--speech", engine],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.base = ""
        self.description = ""
        started = time.perf_counter()
        for line in self.proc.stdout:
            if "listening on" in line:
                self.base = line.split()[-1]
            if line.startswith("  Transcription"):
                self.description = line.split(":", 1)[1].strip()
                if line.startswith("  Transcription is off"):
                    self.stop()
                    raise SystemExit(f"{engine}: {self.description}")
            if line.startswith("Press Ctrl-C"):
                break
        self.ready_s = time.perf_counter() - started

    def key(self, turn_detection: dict[str, Any] | None) -> str:
        session = {
            "type": "transcription",
            "audio": {
                "input": {
                    # OpenAI's turn rule: gpt-live-transcribe takes no server VAD, gpt-transcribe does.
                    "transcription": {
                        "model": "gpt-transcribe" if turn_detection else "gpt-live-transcribe",
                        "language": "en",
                    },
                    "turn_detection": turn_detection,
                }
            },
        }
        response = requests.post(
            self.base + "/v1/realtime/client_secrets",
            json={"session": session},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["value"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Session:
    """One realtime connection: a paced sender and a reader thread that time-stamps every server event."""

    def __init__(self, standin: StandIn, turn_detection: dict[str, Any] | None) -> None:
        url = standin.base.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
        self.ws = connect(url, additional_headers={"Authorization": f"Bearer {standin.key(turn_detection)}"})
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.arrived = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.clock = time.perf_counter()  # when the next chunk is due
        self.sent_ms = 0
        self.sent_at: list[tuple[int, float]] = []  # (audio sent so far in ms, when) after each chunk

    def _read(self) -> None:
        try:
            for message in self.ws:
                event = json.loads(message)
                with self.arrived:
                    self.events.append((time.perf_counter(), event))
                    self.arrived.notify_all()
        except Exception:  # noqa: S110 - the connection closed: the bench is over
            pass

    def send_audio(self, pcm: bytes, mark_ms: int | None = None) -> float | None:
        """Send ``pcm`` in real time; returns when the chunk holding ``mark_ms`` went out."""
        marked = None
        chunk = CHUNK_MS * BYTES_PER_MS
        for offset in range(0, len(pcm), chunk):
            delay = self.clock - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            piece = pcm[offset : offset + chunk]
            self.ws.send(
                json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(piece).decode()})
            )
            self.sent_ms += len(piece) // BYTES_PER_MS
            self.sent_at.append((self.sent_ms, time.perf_counter()))
            if mark_ms is not None and marked is None and offset + len(piece) >= mark_ms * BYTES_PER_MS:
                marked = time.perf_counter()
            self.clock += len(piece) / BYTES_PER_MS / 1000
        return marked

    def pause_until(self, seconds: float) -> None:
        """Send nothing until ``seconds`` from now (the clock moves on, as a microphone's would)."""
        time.sleep(seconds)
        self.clock = time.perf_counter()

    def wait_for(self, kind: str, count: int, timeout: float = 30) -> list[tuple[float, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while sum(event["type"] == kind for _, event in self.events) < count:
                if not self.arrived.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no {kind} #{count} after {timeout} s")
            return [(at, event) for at, event in self.events if event["type"] == kind]

    def close(self) -> None:
        self.ws.close()
        self.reader.join(5)


def run_vad(standin: StandIn, spoken: list[Utterance], result: Result) -> None:
    session = Session(standin, VAD)
    session.wait_for("session.created", 1)
    session.send_audio(silence(500))
    ends: list[float] = []
    starts_ms: list[int] = []
    for utterance in spoken:
        starts_ms.append(session.sent_ms)
        end = session.send_audio(utterance.pcm + silence(1500), mark_ms=utterance.speech_end_ms)
        assert end is not None
        ends.append(end)
    session.send_audio(silence(500))
    # Each sentence's text: the completed turns that started within its stretch of audio (a sentence the
    # VAD cut in two has two). Every turn has ended by now; wait for the last ones to be transcribed.
    session.wait_for(COMPLETED, len(spoken))
    while True:
        started = session.wait_for("input_audio_buffer.speech_started", 1)
        completed = session.wait_for(COMPLETED, len(started))
        if len(session.wait_for("input_audio_buffer.speech_started", 1)) == len(started):
            break
    # When the audio at which the VAD ended the turn went out.
    stopped_at = {
        e["item_id"]: next(at for sent_ms, at in session.sent_at if sent_ms >= e["audio_end_ms"])
        for _, e in session.wait_for("input_audio_buffer.speech_stopped", 1)
    }
    by_item = {event["item_id"]: (at, event) for at, event in completed}
    for index, utterance in enumerate(spoken):
        upper = starts_ms[index + 1] if index + 1 < len(spoken) else session.sent_ms
        # audio_start_ms is where the VAD heard speech (after 60 ms of it) less the prefix padding.
        heard = [(e["audio_start_ms"] + VAD["prefix_padding_ms"] + 100, e["item_id"]) for _, e in started]
        items = [item for at_ms, item in heard if starts_ms[index] <= at_ms < upper]
        result.references.append(utterance.text)
        result.transcripts.append(" ".join(by_item[item][1]["transcript"] for item in items))
        if items:
            result.delays.append(by_item[items[-1]][0] - ends[index])
            result.after_turn.append(by_item[items[-1]][0] - stopped_at[items[-1]])
    session.close()


def run_commit(standin: StandIn, spoken: list[Utterance], result: Result) -> None:
    session = Session(standin, None)
    session.wait_for("session.created", 1)
    for index, utterance in enumerate(spoken):
        session.send_audio(silence(200))
        end = session.send_audio(utterance.pcm, mark_ms=utterance.speech_end_ms)
        assert end is not None
        session.ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        committed = time.perf_counter()
        at, event = session.wait_for(COMPLETED, index + 1)[-1]
        result.references.append(utterance.text)
        result.transcripts.append(event["transcript"])
        result.delays.append(at - end)
        result.after_turn.append(at - committed)
        session.pause_until(max(0.0, 1.0 - (time.perf_counter() - end)))
    session.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="whisper,pocketsphinx")
    parser.add_argument("--modes", default="vad,commit")
    parser.add_argument("--sentences", type=int, default=len(SENTENCES))
    parser.add_argument("--verbose", action="store_true", help="print every sentence and its transcript")
    args = parser.parse_args()
    try:
        import jiwer
    except ImportError:
        raise SystemExit("bench/speech.py needs jiwer and num2words: pip install jiwer num2words") from None

    print(f"Speaking {args.sentences} sentences with espeak-ng ...", flush=True)
    spoken = utterances(args.sentences)
    print(f"  {sum(len(u.pcm) for u in spoken) / BYTES_PER_MS / 1000:.1f} s of speech", flush=True)
    results: list[Result] = []
    for engine in args.engines.split(","):
        standin = StandIn(engine)
        print(f"\n{engine}: {standin.description} (ready in {standin.ready_s:.1f} s)", flush=True)
        try:
            for mode in args.modes.split(","):
                result = Result(engine, mode)
                before = cpu_seconds(standin.proc.pid)
                started = time.perf_counter()
                (run_vad if mode == "vad" else run_commit)(standin, spoken, result)
                result.cpu_s = cpu_seconds(standin.proc.pid) - before
                result.audio_s = time.perf_counter() - started  # paced at real time: audio seconds sent
                result.peak_mb = peak_rss_mb(standin.proc.pid)
                results.append(result)
                wer = jiwer.wer(
                    [normalise(r) for r in result.references], [normalise(t) for t in result.transcripts]
                )
                print(f"  {mode}: WER {wer:.1%}, {len(result.delays)} turns timed", flush=True)
                for reference, transcript in zip(result.references, result.transcripts, strict=True):
                    if args.verbose or normalise(reference) != normalise(transcript):
                        print(f"    {reference!r}\n      -> {transcript!r}")
        finally:
            standin.stop()

    print()
    header = (
        f"{'engine':13} {'mode':7} {'WER':>6}  {'after speech':>12} {'p95':>6} {'max':>6}  "
        f"{'after turn':>10} {'p95':>6}  {'CPU s/audio s':>13} {'peak MB':>7}"
    )
    print(header)
    print("-" * len(header))
    failed = False
    for result in results:
        wer = jiwer.wer([normalise(r) for r in result.references], [normalise(t) for t in result.transcripts])
        decode = f"{statistics.median(result.after_turn):10.2f} {percentile(result.after_turn, 0.95):6.2f}"
        print(
            f"{result.engine:13} {result.mode:7} {wer:6.1%}  {statistics.median(result.delays):12.2f} "
            f"{percentile(result.delays, 0.95):6.2f} {max(result.delays):6.2f}  {decode}  "
            f"{result.cpu_s / result.audio_s:13.3f} {result.peak_mb:7.0f}"
        )
        if result.engine == "whisper":
            failed |= wer > WER_TARGET or percentile(result.delays, 0.95) > DELAY_TARGET_S
    print(
        f"\nTargets (whisper): WER <= {WER_TARGET:.0%}, delay p95 <= {DELAY_TARGET_S} s: "
        + ("missed" if failed else "met")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
