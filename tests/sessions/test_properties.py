"""Property tests (hypothesis): override validation, and the beta/GA translation round trip.

Pure functions only (no database, no HTTP): `payload.parse_overrides` + `presets.apply_overrides` for the
request body (docs/http-api.md), and the upstream adapters' `build_body`/`normalise` against the OpenAI
description in django_rt_sessions/testing/schema/ (through the stand-in's strict validator) and the
stand-in's own answer builders.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from django_rt_sessions.errors import IssueError
from django_rt_sessions.issuing.payload import parse_overrides
from django_rt_sessions.presets.validation import MAX_EXPIRES_AFTER, MIN_EXPIRES_AFTER
from django_rt_sessions.sessions.validation import PresetValidationError, apply_overrides, validate_session
from django_rt_sessions.testing import validation
from django_rt_sessions.testing.server import DEFAULT_TURN_DETECTION, OpenAIStandIn
from django_rt_sessions.upstreams.beta import OpenAIBetaUpstream
from django_rt_sessions.upstreams.openai import OpenAIUpstream, ga_to_beta

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)

# ------------------------------------------------------------------------------- session strategies

ABSENT = object()
# OpenAI's GA audio formats for the beta endpoint's names, written here from its docs.
BETA_TO_GA_FORMAT = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
AUDIO_FORMATS = tuple(BETA_TO_GA_FORMAT)
# The model rules, written here on their own from OpenAI's docs (not read from the app's description).
KNOWN_MODELS = (
    "gpt-live-transcribe",
    "gpt-transcribe",
    "gpt-realtime-whisper",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
    "whisper-1",
)
MODELS_WITHOUT_PROMPT = ("gpt-4o-transcribe-diarize", "gpt-realtime-whisper")
# OpenAI's realtime VAD guide: these "require turn detection to be omitted or set to null".
MODELS_WITHOUT_VAD = ("gpt-realtime-whisper", "gpt-live-transcribe")
KEYWORD_MODELS = ("gpt-transcribe", "gpt-live-transcribe")
DELAY_MODELS = ("gpt-realtime-whisper", "gpt-live-transcribe")

languages = st.from_regex(r"[a-z]{2}", fullmatch=True)


def long_texts(low: int, high: int) -> st.SearchStrategy[str]:
    """Long strings near a length limit, cheaply (hypothesis' text() is slow at thousands of characters)."""
    return st.builds(lambda n, c: c * n, st.integers(low, high), st.sampled_from(["a", "é", " ", "ü"]))


# Text the audit row can store and the upstream accept: no NUL, no unpaired surrogate.
storable_texts = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)
prompts = storable_texts | long_texts(3990, 4000)
models = st.sampled_from(KNOWN_MODELS) | st.from_regex(r"[a-z][a-z0-9-]{0,19}", fullmatch=True)
noise_reductions = st.none() | st.fixed_dictionaries(
    {"type": st.sampled_from(["near_field", "far_field"])}, optional={"strength": st.floats(0.0, 1.0)}
)
server_vads = st.fixed_dictionaries(
    {},
    optional={
        "type": st.just("server_vad"),
        "threshold": st.floats(0.0, 1.0) | st.sampled_from([0, 1]),
        "prefix_padding_ms": st.integers(0, 10000),
        "silence_duration_ms": st.integers(0, 10000),
        "idle_timeout_ms": st.none() | st.integers(5000, 30000),
    },
)
semantic_vads = st.fixed_dictionaries(
    {"type": st.just("semantic_vad")},
    optional={"eagerness": st.sampled_from(["low", "medium", "high", "auto"])},
)
turn_detections = st.none() | server_vads | semantic_vads
language_lists = st.lists(languages, min_size=1, max_size=10, unique=True)
keywords = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="<>\r\n\x00"), min_size=1, max_size=100
)
keyword_lists = st.lists(keywords, min_size=1, max_size=8, unique=True)
delays = st.sampled_from(["minimal", "low", "medium", "high", "xhigh"])


@st.composite
def sessions(draw: st.DrawFn) -> dict[str, Any]:
    """A preset `session` that docs/presets.md allows: any subset of the keys, nulls where allowed, a model,
    the model rules."""
    session: dict[str, Any] = {}
    if draw(st.booleans()):
        session["input_audio_format"] = draw(st.sampled_from(AUDIO_FORMATS))
    if draw(st.booleans()):
        session["input_audio_noise_reduction"] = draw(noise_reductions)
    model = draw(models)
    known = model in KNOWN_MODELS
    transcription: dict[str, Any] = {"model": model}
    if (not known or model in KEYWORD_MODELS) and draw(st.booleans()):
        transcription["languages"] = draw(language_lists)
    elif draw(st.booleans()):
        transcription["language"] = draw(languages)
    if (not known or model in KEYWORD_MODELS) and draw(st.booleans()):
        transcription["keywords"] = draw(keyword_lists)
    if (not known or model in DELAY_MODELS) and draw(st.booleans()):
        transcription["delay"] = draw(delays)
    if model not in MODELS_WITHOUT_PROMPT and draw(st.booleans()):
        transcription["prompt"] = draw(prompts)
    session["input_audio_transcription"] = transcription
    if model in MODELS_WITHOUT_VAD:
        if draw(st.booleans()):
            session["turn_detection"] = None  # or absent: both mean none for these models
    elif draw(st.booleans()):
        session["turn_detection"] = draw(turn_detections)
    if draw(st.booleans()):
        session["include"] = draw(st.sampled_from([[], ["item.input_audio_transcription.logprobs"]]))
    return session


def wire(value: Any) -> Any:
    """What crosses HTTP: a JSON round trip."""
    return json.loads(json.dumps(value))


# ------------------------------------------------------------------------------ override validation

OVERRIDABLE = ("language", "languages", "keywords", "prompt", "noise_reduction")
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
language_values = st.one_of(
    languages,
    st.none(),
    st.sampled_from(["fra", "f", "", "EN", "Fr", "f1", "fr\n", " fr", "é"]),
    st.from_regex(r"[a-zA-Z]{1,3}", fullmatch=True),
    junk,
)
prompt_values = st.one_of(
    st.text(max_size=30), st.none(), st.sampled_from([3999, 4000, 4001]).map(lambda n: "é" * n), junk
)
noise_values = st.one_of(
    st.sampled_from(["near_field", "far_field", "Far_Field", "off", ""]), st.none(), junk
)
languages_values = st.one_of(
    language_lists,
    st.none(),
    st.sampled_from([[], ["en", "en"], ["EN"], ["en"] * 11, ["en", 3]]),
    junk,
)
keywords_values = st.one_of(
    keyword_lists,
    st.none(),
    st.sampled_from([[], ["a", "a"], ["<b>"], ["two\nlines"], [""], ["k" * 101], [3]]),
    junk,
)
unknown_keys = st.text(min_size=1, max_size=8).filter(lambda k: k not in (*OVERRIDABLE, "preset"))
preset_values = st.one_of(st.none(), st.text(max_size=10), junk)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Bodies of the right shape, each field absent or drawn from its valid and invalid values."""
    body: dict[str, Any] = {}
    for key, values in (
        ("language", language_values),
        ("languages", languages_values),
        ("keywords", keywords_values),
        ("prompt", prompt_values),
        ("noise_reduction", noise_values),
        ("preset", preset_values),
    ):
        value = draw(st.one_of(st.just(ABSENT), values))
        if value is not ABSENT:
            body[key] = value
    return body


payloads = st.one_of(
    bodies(),  # listed thrice: mostly bodies of the right shape, whose values are what is tested
    bodies(),
    bodies(),
    st.dictionaries(st.one_of(unknown_keys, st.sampled_from(OVERRIDABLE)), junk, max_size=3),
    junk,
)


def acceptable(payload: Any, session: dict[str, Any]) -> bool:
    """docs/presets.md and docs/http-api.md, written independently of the app: would this body be accepted
    for this preset?"""
    if not isinstance(payload, dict):
        return False
    if any(key not in (*OVERRIDABLE, "preset") for key in payload):
        return False
    preset = payload.get("preset")
    if preset is not None and not isinstance(preset, str):
        return False
    language = payload.get("language", ABSENT)
    if language not in (ABSENT, None) and not (
        isinstance(language, str) and re.fullmatch(r"[a-z]{2}", language)
    ):
        return False
    prompt = payload.get("prompt", ABSENT)
    if prompt not in (ABSENT, None) and not (
        isinstance(prompt, str) and len(prompt) <= 4000 and not re.search("[\x00\ud800-\udfff]", prompt)
    ):
        return False
    if payload.get("noise_reduction", ABSENT) not in (ABSENT, None, "near_field", "far_field"):
        return False
    lists = {key: payload.get(key, ABSENT) for key in ("languages", "keywords")}
    for key, value in lists.items():
        if value in (ABSENT, None):
            continue
        if not isinstance(value, list) or not 1 <= len(value) <= (10 if key == "languages" else 100):
            return False
        if len(set(map(repr, value))) != len(value):
            return False
        for item in value:
            if key == "languages" and not (isinstance(item, str) and re.fullmatch(r"[a-z]{2}", item)):
                return False
            if key == "keywords" and not (
                isinstance(item, str) and 1 <= len(item) <= 100 and not set(item) & set("<>\r\n")
            ):
                return False
    if language not in (ABSENT, None) and lists["languages"] not in (ABSENT, None):
        return False  # both at once
    # Model rules on the merged session.
    model = (session.get("input_audio_transcription") or {}).get("model")
    if isinstance(prompt, str) and model in MODELS_WITHOUT_PROMPT:
        return False
    return not (
        model in KNOWN_MODELS
        and model not in KEYWORD_MODELS
        and any(value not in (ABSENT, None) for value in lists.values())
    )


FULL_SESSION = {
    "input_audio_format": "pcm16",
    "input_audio_noise_reduction": {"type": "far_field"},
    "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "fr", "prompt": ""},
    "turn_detection": None,  # gpt-live-transcribe: the client commits turns
    "include": ["item.input_audio_transcription.logprobs"],
}
DIARIZE = {"input_audio_transcription": {"model": "gpt-4o-transcribe-diarize"}}
LIVE = {"input_audio_transcription": {"model": "gpt-live-transcribe", "languages": ["en", "fr"]}}
WHISPER = {"input_audio_transcription": {"model": "gpt-realtime-whisper"}, "turn_detection": None}
# The boundaries, always tried whatever hypothesis draws: (session, payload).
BOUNDARIES = [
    *[(FULL_SESSION, {"language": v}) for v in ("de", "fra", "d", "EN", "Fr", "fr\n", "d1", "", None, 1)],
    *[(FULL_SESSION, {"prompt": v}) for v in ("é" * 4000, "é" * 4001, "", None, ["x"])],
    *[(FULL_SESSION, {"noise_reduction": v}) for v in ("near_field", "far_field", "off", "", None, {})],
    (DIARIZE, {"prompt": "x"}),
    (DIARIZE, {"prompt": None}),
    (WHISPER, {"prompt": ""}),
    (WHISPER, {"language": "en", "noise_reduction": "near_field"}),
    (DIARIZE, {"keywords": ["Acme"]}),
    (DIARIZE, {"languages": ["en"]}),
    (LIVE, {"language": "de"}),
    (LIVE, {"languages": None, "keywords": ["Acme", "ACME-42"]}),
    (FULL_SESSION, {"languages": ["en", "fr"]}),
    (FULL_SESSION, {"language": "de", "languages": ["en"]}),
    (FULL_SESSION, {"keywords": ["<b>"]}),
    (FULL_SESSION, {"keywords": ["k" * 100]}),
    (FULL_SESSION, {"keywords": ["k" * 101]}),
    (FULL_SESSION, {"preset": "p", "unknown": 1}),
    (FULL_SESSION, {"preset": 5}),
    (FULL_SESSION, []),
    (FULL_SESSION, "{}"),
    (FULL_SESSION, None),
]


def boundaries(test: Any) -> Any:
    for session, payload in reversed(BOUNDARIES):
        test = example(session=session, payload=payload)(test)
    return test


@PROPERTY
@given(session=sessions(), payload=payloads)
@boundaries
def test_override_validation(session: dict[str, Any], payload: Any) -> None:
    preset_session = validate_session(session)
    frozen = copy.deepcopy(preset_session)
    try:
        _name, overrides = parse_overrides(payload)
        merged = apply_overrides(preset_session, overrides)
    except (IssueError, PresetValidationError) as exc:
        assert not acceptable(payload, preset_session), (payload, exc)
        if isinstance(exc, IssueError):
            assert exc.code == "invalid" and exc.status == 400
            assert bool(exc.errors) == isinstance(payload, dict), "a refusal of an object names its fields"
        else:
            assert set(exc.errors) <= set(OVERRIDABLE), exc.errors  # keyed by what the user sent
    else:
        assert acceptable(payload, preset_session), payload
        assert set(overrides) == set(payload) - {"preset"}
        assert validate_session(merged) == merged  # the merged session passes the validator as it is
        transcription = merged.get("input_audio_transcription") or {}
        for key in ("language", "languages", "keywords", "prompt"):
            if key in payload:
                if payload[key] is None:
                    assert key not in transcription
                else:
                    assert transcription[key] == payload[key]
        # A language replaces the preset's languages, and the reverse: never both.
        assert not ("language" in transcription and "languages" in transcription)
        if "noise_reduction" in payload:
            value = payload["noise_reduction"]
            before = preset_session.get("input_audio_noise_reduction") or {}
            assert merged["input_audio_noise_reduction"] == (
                None if value is None else {**before, "type": value}
            )
        # Whatever is not overridden is the preset's.
        untouched = {k: v for k, v in preset_session.items() if k != "input_audio_transcription"}
        if "noise_reduction" in payload:
            untouched.pop("input_audio_noise_reduction", None)
        assert {k: merged[k] for k in untouched} == untouched
    assert preset_session == frozen, "the preset's session must never be mutated"


@PROPERTY
@given(payload=payloads)
def test_parse_payload_only_raises_issue_errors(payload: Any) -> None:
    frozen = copy.deepcopy(payload)
    try:
        _name, overrides = parse_overrides(payload)
    except IssueError as exc:
        assert exc.code == "invalid"
    else:
        assert set(overrides) <= set(OVERRIDABLE)
    assert payload == frozen


# ------------------------------------------------------------------------------- translation (GA)

STANDIN = OpenAIStandIn()  # never started: only its answer builders are used


def expected_beta(session: dict[str, Any]) -> dict[str, Any]:
    """The beta endpoint's "Returns" fields for a sent session, when the upstream echoes it."""
    return {
        "input_audio_format": session.get("input_audio_format", "pcm16"),
        "input_audio_transcription": session.get("input_audio_transcription"),
        # An absent turn_detection is the upstream's default VAD (none for the models that take none), and
        # the answer says so.
        "turn_detection": session.get(
            "turn_detection",
            None
            if session["input_audio_transcription"]["model"] in MODELS_WITHOUT_VAD
            else DEFAULT_TURN_DETECTION,
        ),
        "input_audio_noise_reduction": session.get("input_audio_noise_reduction"),
        "include": session.get("include"),
        "modalities": ["text"],
    }


@PROPERTY
@given(session=sessions(), ttl=st.integers(MIN_EXPIRES_AFTER, MAX_EXPIRES_AFTER))
def test_ga_round_trip(session: dict[str, Any], ttl: int) -> None:
    session = validate_session(session)
    frozen = copy.deepcopy(session)
    # Checked against the OpenAI description (the stand-in's validator) and key by key below, never
    # against beta_to_ga, which is what build_body returns.
    body = wire(OpenAIUpstream().build_body(session, ttl))
    assert validation.validate_request("openai", body) is None, validation.validate_request("openai", body)
    assert body["expires_after"] == {"anchor": "created_at", "seconds": ttl}
    ga_session = body["session"]
    assert ga_session["type"] == "transcription"
    audio_input = ga_session.get("audio", {}).get("input", {})
    if "input_audio_format" in session:
        assert audio_input["format"] == BETA_TO_GA_FORMAT[session["input_audio_format"]]
    for beta_key, ga_key in (
        ("input_audio_noise_reduction", "noise_reduction"),
        ("input_audio_transcription", "transcription"),
        ("turn_detection", "turn_detection"),
    ):
        # Absent stays absent (not sent), null stays null (turns the feature off).
        assert audio_input.get(ga_key, ABSENT) == session.get(beta_key, ABSENT)
    assert ga_session.get("include", ABSENT) == session.get("include", ABSENT)

    answer = wire(STANDIN._ga_success(body))
    returned = OpenAIUpstream().normalise(answer, session)
    assert returned["client_secret"] == {"value": answer["value"], "expires_at": answer["expires_at"]}
    assert returned["id"] == answer["session"]["id"]
    assert {k: returned[k] for k in expected_beta(session)} == expected_beta(session)
    assert session == frozen


@PROPERTY
@given(session=sessions())
def test_ga_to_beta_falls_back_on_what_was_sent(session: dict[str, Any]) -> None:
    """An upstream answer that omits the session echoes nothing: every field comes from what was sent."""
    session = validate_session(session)
    returned = ga_to_beta({"value": "ek_x", "expires_at": 1, "session": {"id": "sess_1"}}, session)
    expected = {**expected_beta(session), "turn_detection": session.get("turn_detection")}
    assert {k: returned[k] for k in expected} == expected


# ----------------------------------------------------------------------------- translation (beta)


@PROPERTY
@given(session=sessions(), ttl=st.integers(MIN_EXPIRES_AFTER, MAX_EXPIRES_AFTER))
def test_beta_round_trip(session: dict[str, Any], ttl: int) -> None:
    session = validate_session(session)
    upstream = OpenAIBetaUpstream()
    if upstream.unsupported(session):
        # GA-only settings: the validator refuses them for this upstream, so nothing would be sent.
        with pytest.raises(PresetValidationError):
            validate_session(session, upstream=upstream)
        return
    frozen = copy.deepcopy(session)
    body = upstream.build_body(session, ttl)
    assert body == session and body is not session  # the beta body is the session; no TTL in the shape
    body["mutated"] = True
    assert "mutated" not in session
    body = wire(upstream.build_body(session, ttl))
    assert validation.validate_request("openai-beta", body) is None, validation.validate_request(
        "openai-beta", body
    )
    answer = wire(STANDIN._beta_success(body))
    returned = upstream.normalise(answer, session)
    assert returned["client_secret"] == answer["client_secret"]
    assert returned["id"] == answer["id"]
    assert {k: returned[k] for k in expected_beta(session)} == expected_beta(session)
    assert session == frozen
