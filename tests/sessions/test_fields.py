"""Today's session fields (docs/presets.md): one description, read by the validator, the admin form, the
import, the API, the OpenAPI schema, the upstream capabilities and the docs' table.

Each rule is checked with the same message in the validator, through the admin form, the import command and
(for what users may override) the API; every GA-era field goes over a real socket to the stand-in for the
GA and Azure shapes and is refused for the beta shape.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from django_rt_sessions.admin.forms import session_form_class, session_initial
from django_rt_sessions.api.openapi import preset_session_schema, request_schema
from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.sessions import docs
from django_rt_sessions.sessions.fields import FIELDS, SessionField, ga_only_tokens, index
from django_rt_sessions.sessions.rules import Choice, Rule
from django_rt_sessions.sessions.validation import PresetValidationError, validate_session
from django_rt_sessions.upstreams import get_upstream
from django_rt_sessions.upstreams.openai import OpenAIUpstream

from ..conftest import DROP, changed_copy, post, set_rt

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PRESET_ADD = reverse("admin:django_rt_sessions_sessionpreset_add")
TR = "input_audio_transcription"
LOGPROBS = "item.input_audio_transcription.logprobs"

# gpt-live-transcribe with keywords, two languages, delay and noise strength; no server turn detection
# (the client commits turns).
LIVE_SESSION: dict[str, Any] = {
    "input_audio_format": "pcm16",
    "input_audio_noise_reduction": {"type": "far_field", "strength": 0.6},
    TR: {
        "model": "gpt-live-transcribe",
        "languages": ["en", "fr"],
        "keywords": ["Kubernetes", "ACME-42"],
        "delay": "low",
        "prompt": "",
    },
    "turn_detection": None,
    "include": [LOGPROBS],
}


def changed(**paths: Any) -> dict[str, Any]:
    """LIVE_SESSION with dotted-path changes (`input_audio_transcription__delay="high"`); DROP deletes."""
    return changed_copy(LIVE_SESSION, **paths)


SERVER_VAD = {"type": "server_vad", "threshold": 0.4, "prefix_padding_ms": 200, "silence_duration_ms": 400}
# A model that takes server turn detection (and languages and keywords, not delay), with semantic VAD.
VAD_SESSION = changed(
    input_audio_transcription__model="gpt-transcribe",
    input_audio_transcription__delay=DROP,
    turn_detection={"type": "semantic_vad", "eagerness": "high"},
)


def vad(turn_detection: Any) -> dict[str, Any]:
    """VAD_SESSION with another turn detection."""
    return changed_copy(VAD_SESSION, turn_detection=turn_detection)


VALID = {
    "the live preset": LIVE_SESSION,
    "live, turn detection absent": changed(turn_detection=DROP),
    "gpt-transcribe with semantic VAD": VAD_SESSION,
    "one language": changed(input_audio_transcription__languages=["de"]),
    "ten languages": changed(
        input_audio_transcription__languages=["en", "fr", "de", "es", "it", "pt", "nl", "sv", "pl", "ja"]
    ),
    "language instead": changed(
        input_audio_transcription__languages=DROP, input_audio_transcription__language="fr"
    ),
    "100 keywords of 100": changed(
        input_audio_transcription__keywords=[f"{i:03d}" + "k" * 97 for i in range(100)]
    ),
    "unicode keyword": changed(input_audio_transcription__keywords=["Zoë", "東京", "ACME-42 v2"]),
    **{
        f"delay {d}": changed(input_audio_transcription__delay=d)
        for d in ("minimal", "medium", "high", "xhigh")
    },
    "strength 0": changed(input_audio_noise_reduction={"type": "near_field", "strength": 0.0}),
    "strength 1": changed(input_audio_noise_reduction={"type": "near_field", "strength": 1}),
    **{f"eagerness {e}": vad({"type": "semantic_vad", "eagerness": e}) for e in ("low", "auto")},
    "semantic without eagerness": vad({"type": "semantic_vad"}),
    "server vad, idle 5000": vad({**SERVER_VAD, "idle_timeout_ms": 5000}),
    "server vad, idle 30000": vad({**SERVER_VAD, "idle_timeout_ms": 30000}),
    "server vad, idle null": vad({**SERVER_VAD, "idle_timeout_ms": None}),
    "gpt-transcribe keywords": changed(
        input_audio_transcription={"model": "gpt-transcribe", "keywords": ["a"]}
    ),
    "whisper delay": {
        TR: {"model": "gpt-realtime-whisper", "delay": "xhigh"},
        "turn_detection": None,
    },
    "an unknown model takes anything": changed(input_audio_transcription__model="acme-transcribe-9"),
}


@pytest.mark.parametrize("session", VALID.values(), ids=VALID.keys())
def test_valid_sessions(session: dict[str, Any]) -> None:
    assert validate_session(session) == session


# (session, the field, the exact message). The admin form, the import and the API must say the same.
INVALID: dict[str, tuple[dict[str, Any], str, str]] = {
    "format": (
        changed(input_audio_format="mp3"),
        "input_audio_format",
        "'mp3' is not one of pcm16, g711_ulaw, g711_alaw.",
    ),
    "strength above 1": (
        changed(input_audio_noise_reduction__strength=1.5),
        "input_audio_noise_reduction.strength",
        "1.5 is not a number from 0.0 to 1.0.",
    ),
    "strength below 0": (
        changed(input_audio_noise_reduction__strength=-0.1),
        "input_audio_noise_reduction.strength",
        "-0.1 is not a number from 0.0 to 1.0.",
    ),
    "delay value": (
        changed(input_audio_transcription__delay="soon"),
        f"{TR}.delay",
        "'soon' is not one of minimal, low, medium, high, xhigh.",
    ),
    "delay for gpt-transcribe": (
        {TR: {"model": "gpt-transcribe", "delay": "low"}},
        f"{TR}.delay",
        "gpt-transcribe does not accept delay: only gpt-live-transcribe, gpt-realtime-whisper do.",
    ),
    "no languages": (
        changed(input_audio_transcription__languages=[]),
        f"{TR}.languages",
        "Must not be an empty list.",
    ),
    "eleven languages": (
        changed(input_audio_transcription__languages=["a" + c for c in "abcdefghijk"]),
        f"{TR}.languages",
        "Lists 11; at most 10 are allowed.",
    ),
    "a language twice": (
        changed(input_audio_transcription__languages=["en", "en"]),
        f"{TR}.languages",
        "Lists 'en' twice.",
    ),
    "not a language code": (
        changed(input_audio_transcription__languages=["en", "EN"]),
        f"{TR}.languages",
        "Item 2: 'EN' is not an ISO-639-1 code (two lowercase letters, like 'fr').",
    ),
    "language and languages": (
        changed(input_audio_transcription__language="fr"),
        f"{TR}.languages",
        "Give language or languages, not both.",
    ),
    "languages for gpt-4o-transcribe": (
        {TR: {"model": "gpt-4o-transcribe", "languages": ["en"]}},
        f"{TR}.languages",
        "gpt-4o-transcribe does not accept languages: only gpt-live-transcribe, gpt-transcribe do.",
    ),
    "keyword with angle brackets": (
        changed(input_audio_transcription__keywords=["ok", "<b>"]),
        f"{TR}.keywords",
        "Item 2: '<b>' holds '<' and '>', which OpenAI refuses in keywords.",
    ),
    "keyword on two lines": (
        changed(input_audio_transcription__keywords=["two\nlines"]),
        f"{TR}.keywords",
        "Item 1: 'two\\nlines' must be on one line.",
    ),
    "empty keyword": (
        changed(input_audio_transcription__keywords=[""]),
        f"{TR}.keywords",
        "Item 1: Must not be empty.",
    ),
    "long keyword": (
        changed(input_audio_transcription__keywords=["k" * 101]),
        f"{TR}.keywords",
        "Item 1: Has 101 characters; at most 100 are allowed.",
    ),
    "101 keywords": (
        changed(input_audio_transcription__keywords=[f"k{i}" for i in range(101)]),
        f"{TR}.keywords",
        "Lists 101; at most 100 are allowed.",
    ),
    "a keyword twice": (
        changed(input_audio_transcription__keywords=["Acme", "Acme"]),
        f"{TR}.keywords",
        "Lists 'Acme' twice.",
    ),
    "keywords for whisper-1": (
        {TR: {"model": "whisper-1", "keywords": ["Acme"]}},
        f"{TR}.keywords",
        "whisper-1 does not accept keywords: only gpt-live-transcribe, gpt-transcribe do.",
    ),
    "prompt for gpt-realtime-whisper": (
        {TR: {"model": "gpt-realtime-whisper", "prompt": "Acme"}, "turn_detection": None},
        f"{TR}.prompt",
        "gpt-realtime-whisper does not accept prompt.",
    ),
    "turn detection for gpt-realtime-whisper": (
        {TR: {"model": "gpt-realtime-whisper"}, "turn_detection": {"type": "server_vad"}},
        "turn_detection",
        "gpt-realtime-whisper takes no server turn detection: set it to null (off); the browser client "
        "then commits each turn itself (client_turns).",
    ),
    "semantic VAD for gpt-live-transcribe": (
        changed_copy(LIVE_SESSION, turn_detection={"type": "semantic_vad"}),
        "turn_detection",
        "gpt-live-transcribe takes no server turn detection: set it to null (off); the browser client "
        "then commits each turn itself (client_turns).",
    ),
    "noise reduction without its type": (
        changed(input_audio_noise_reduction={"strength": 0.5}),
        "input_audio_noise_reduction.type",
        "Required.",
    ),
    "threshold with semantic VAD": (
        vad({"type": "semantic_vad", "threshold": 0.5}),
        "turn_detection.threshold",
        "Only used with type server_vad, not 'semantic_vad'.",
    ),
    "eagerness with server VAD": (
        vad({"type": "server_vad", "eagerness": "low"}),
        "turn_detection.eagerness",
        "Only used with type semantic_vad, not 'server_vad'.",
    ),
    "eagerness value": (
        vad({"type": "semantic_vad", "eagerness": "eager"}),
        "turn_detection.eagerness",
        "'eager' is not one of low, medium, high, auto.",
    ),
    "idle timeout too short": (
        vad({**SERVER_VAD, "idle_timeout_ms": 4999}),
        "turn_detection.idle_timeout_ms",
        "4999 is not a whole number from 5000 to 30000.",
    ),
    "no model": (
        changed(input_audio_transcription__model=DROP),
        f"{TR}.model",
        "Required.",
    ),
    "NUL in the prompt": (
        changed(input_audio_transcription__prompt="a\x00b"),
        f"{TR}.prompt",
        "The text holds a NUL character.",
    ),
    "surrogate in a keyword": (
        changed(input_audio_transcription__keywords=["\ud800"]),
        f"{TR}.keywords",
        "Item 1: The text holds an unpaired surrogate (\\ud800).",
    ),
}


@pytest.mark.parametrize(("session", "path", "message"), INVALID.values(), ids=INVALID.keys())
def test_the_validator_names_the_field_and_the_bad_value(
    session: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(PresetValidationError) as info:
        validate_session(session)
    assert info.value.errors == {f"session.{path}": [message]}


# The form cannot hold these values (a form field holds text; NUL and surrogates never reach Django's forms).
# One item per line, empty means not sent: a form cannot hold a keyword with a line break, an empty one,
# or an empty list.
NOT_IN_A_FORM = {
    "noise reduction without its type",  # the form's "noise reduction" select is the type
    "surrogate in a keyword",
    "NUL in the prompt",
    "keyword on two lines",
    "empty keyword",
    "no languages",
}


def form_data(session: dict[str, Any]) -> dict[str, Any]:
    """What staff would type in the add form to describe `session` (the form's fields, as posted)."""
    data: dict[str, Any] = {
        "name": "p",
        "title": "",
        "description": "",
        "active": "on",
        "expires_after_seconds": "60",
        "rate": "",
        "groups": [],
    }
    for name, value in session_initial(session).items():
        if isinstance(value, list):
            data[name] = value
        elif value is not None:
            data[name] = str(value)
    return data


@pytest.mark.parametrize(
    ("session", "path", "message"),
    [v for k, v in INVALID.items() if k not in NOT_IN_A_FORM],
    ids=[k for k in INVALID if k not in NOT_IN_A_FORM],
)
def test_the_admin_form_says_the_same_on_the_field(
    admin_client: Client, session: dict[str, Any], path: str, message: str
) -> None:
    response = admin_client.post(PRESET_ADD, form_data(session))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    form_name = index().by_path[path].form_name
    assert errors == {form_name: [message]}, errors
    assert not SessionPreset.objects.exists()


@pytest.mark.parametrize(("session", "path", "message"), INVALID.values(), ids=INVALID.keys())
def test_the_import_says_the_same(tmp_path: Path, session: dict[str, Any], path: str, message: str) -> None:
    file = tmp_path / "presets.json"
    file.write_text(json.dumps([{"name": "p", "session": session}]), encoding="utf-8")
    with pytest.raises(CommandError) as info:
        call_command("rt_sessions_presets", "import", str(file), stdout=io.StringIO())
    assert str(info.value) == f"Preset 'p', field 'session.{path}': {message}"
    assert not SessionPreset.objects.exists()


def test_the_live_preset_in_the_admin_form(admin_client: Client) -> None:
    data = form_data(LIVE_SESSION)
    assert data["keywords"] == "Kubernetes\nACME-42"  # one per line
    response = admin_client.post(PRESET_ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    expected = copy.deepcopy(LIVE_SESSION)
    del expected[TR]["prompt"]  # an empty prompt is not sent
    assert SessionPreset.objects.get().session == expected


# ------------------------------------------------------------------------------------------------ API

OVERRIDE_CASES = {
    "keywords": ({"keywords": ["<b>"]}, "Item 1: '<b>' holds '<' and '>', which OpenAI refuses in keywords."),
    "languages": ({"languages": ["en", "en"]}, "Lists 'en' twice."),
    "language": ({"language": "FR"}, "'FR' is not an ISO-639-1 code (two lowercase letters, like 'fr')."),
    "prompt": ({"prompt": "p" * 4001}, "Has 4001 characters; at most 4000 are allowed."),
    "noise_reduction": ({"noise_reduction": "loud"}, "'loud' is not one of near_field, far_field."),
}


@pytest.fixture
def live_preset(db: Any) -> SessionPreset:
    return SessionPreset.objects.create(
        name="live",
        default=True,
        session=copy.deepcopy(LIVE_SESSION),
        overridable=["language", "languages", "keywords", "prompt", "noise_reduction"],
    )


@pytest.mark.parametrize(("body", "message"), OVERRIDE_CASES.values(), ids=OVERRIDE_CASES.keys())
def test_the_api_says_the_same_for_overrides(
    api: Client, live_preset: SessionPreset, upstream: Any, body: dict[str, Any], message: str
) -> None:
    response = post(api, body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"] == {next(iter(body)): [message]}
    assert not upstream.requests
    assert TokenRequest.objects.get().outcome == "invalid"


def sent_transcription(upstream: Any) -> dict[str, Any]:
    [request] = upstream.requests
    return request.json["session"]["audio"]["input"]["transcription"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"language": "de"}, {"language": "de"}),  # replaces the preset's languages
        ({"languages": ["es", "it", "pt"]}, {"languages": ["es", "it", "pt"]}),
        ({"languages": None}, {}),  # removes them: the model detects the language
        ({"keywords": ["Zorg", "Zoë"]}, {"keywords": ["Zorg", "Zoë"], "languages": ["en", "fr"]}),
        ({"keywords": None}, {"languages": ["en", "fr"]}),
    ],
)
def test_languages_and_keywords_overrides_reach_the_upstream(
    api: Client, live_preset: SessionPreset, upstream: Any, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = post(api, body)
    assert response.status_code == 201, response.content
    sent = sent_transcription(upstream)
    kept = {"model": "gpt-live-transcribe", "delay": "low", "prompt": ""}
    if "keywords" not in body:
        kept["keywords"] = ["Kubernetes", "ACME-42"]
    assert sent == {**kept, **expected}
    assert response.json()[TR] == sent  # the 201 echoes it in the beta endpoint's nesting


def test_a_languages_override_replaces_the_presets_language(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    preset.session[TR]["model"] = "gpt-live-transcribe"
    preset.session["turn_detection"] = None  # gpt-live-transcribe: the client commits turns
    preset.overridable = ["languages"]
    preset.save()
    assert post(api, {"languages": ["en", "de"]}).status_code == 201
    assert sent_transcription(upstream) == {
        "model": "gpt-live-transcribe",
        "languages": ["en", "de"],
        "prompt": "",
    }


def test_language_and_languages_at_once_are_refused(
    api: Client, live_preset: SessionPreset, upstream: Any
) -> None:
    response = post(api, {"language": "de", "languages": ["en"]})
    assert response.status_code == 400
    assert response.json()["errors"] == {"language": ["Send language or languages, not both."]}
    assert not upstream.requests


def test_keywords_on_a_model_without_them(api: Client, preset: SessionPreset, upstream: Any) -> None:
    preset.session[TR]["model"] = "gpt-4o-transcribe"
    preset.overridable = ["keywords"]
    preset.save()
    response = post(api, {"keywords": ["Acme"]})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "keywords": [
            "gpt-4o-transcribe does not accept keywords: only gpt-live-transcribe, gpt-transcribe do."
        ]
    }
    assert not upstream.requests


def test_languages_and_keywords_must_be_allowed(api: Client, preset: SessionPreset, upstream: Any) -> None:
    response = post(api, {"keywords": ["Acme"], "languages": ["en"]})
    assert response.status_code == 400
    assert response.json()["code"] == "override_not_allowed"
    assert set(response.json()["errors"]) == {"keywords", "languages"}


# ------------------------------------------------------------- the GA shapes send it, the beta refuses


@pytest.mark.parametrize("name", ["openai", "azure"])
def test_the_live_preset_is_imported_and_issued_on_the_ga_shapes(
    api: Client, openai_standin: Any, settings: Any, tmp_path: Path, name: str
) -> None:
    base = openai_standin.azure_base_url if name == "azure" else openai_standin.base_url
    set_rt(settings, UPSTREAM=name, BASE_URL=base, API_KEY=openai_standin.api_key)
    file = tmp_path / "presets.json"
    file.write_text(
        json.dumps([{"name": "live", "default": True, "session": LIVE_SESSION}]), encoding="utf-8"
    )
    call_command("rt_sessions_presets", "import", str(file), stdout=io.StringIO())

    response = post(api, {})
    assert response.status_code == 201, response.content
    [request] = openai_standin.requests
    audio_input = request.json["session"]["audio"]["input"]
    assert audio_input == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "noise_reduction": {"type": "far_field", "strength": 0.6},
        "transcription": LIVE_SESSION[TR],
        "turn_detection": None,
    }
    body = response.json()
    for key in ("input_audio_noise_reduction", TR, "turn_detection", "include"):
        assert body[key] == LIVE_SESSION[key]  # the beta endpoint's nesting, GA-only fields included
    assert body["connect"]["transports"] == ["websocket", "webrtc"]  # the stand-in is on loopback
    # No server turn detection: the browser commits turns, with the defaults.
    assert body["connect"]["client_turns"] == {"silence_duration_ms": 600, "max_turn_ms": 15000}


GA_ONLY_ERRORS = {
    "session.input_audio_noise_reduction.strength": ["'strength'"],
    f"session.{TR}.languages": ["'languages'"],
    f"session.{TR}.keywords": ["'keywords'"],
    f"session.{TR}.delay": ["'delay'"],
}


def beta_message(what: str) -> str:
    return (
        f"The beta endpoint (RT_SESSIONS['UPSTREAM'] = 'openai-beta') cannot send {what}: it is a GA-only "
        "setting. Use UPSTREAM 'openai' or 'azure', or remove it."
    )


def test_the_beta_upstream_refuses_every_ga_only_field(settings: Any) -> None:
    set_rt(settings, UPSTREAM="openai-beta")
    with pytest.raises(PresetValidationError) as info:
        validate_session(LIVE_SESSION, upstream=get_upstream())
    assert info.value.errors == {path: [beta_message(what[0])] for path, what in GA_ONLY_ERRORS.items()}
    with pytest.raises(PresetValidationError) as info:
        validate_session(vad({"type": "semantic_vad", "eagerness": "high"}), upstream=get_upstream())
    assert info.value.errors["session.turn_detection.type"] == [beta_message("'semantic_vad'")]
    assert info.value.errors["session.turn_detection.eagerness"] == [beta_message("'eagerness'")]
    idle = vad({**SERVER_VAD, "idle_timeout_ms": 6000})
    with pytest.raises(PresetValidationError) as info:
        validate_session(idle, upstream=get_upstream())
    assert "session.turn_detection.idle_timeout_ms" in info.value.errors
    # What the beta endpoint had is fine.
    plain = {TR: {"model": "gpt-transcribe", "language": "fr"}, "turn_detection": SERVER_VAD}
    assert validate_session(plain, upstream=get_upstream()) == plain


def test_the_beta_upstream_refuses_them_in_the_admin_and_the_import(
    admin_client: Client, settings: Any, tmp_path: Path
) -> None:
    set_rt(settings, UPSTREAM="openai-beta", BASE_URL="http://127.0.0.1:9/v1")
    response = admin_client.post(PRESET_ADD, form_data(VAD_SESSION))
    errors = response.context["adminform"].form.errors
    assert errors["keywords"] == [beta_message("'keywords'")]
    assert errors["turn_detection"] == [beta_message("'semantic_vad'")]
    assert errors["noise_strength"] == [beta_message("'strength'")]
    file = tmp_path / "presets.json"
    file.write_text(json.dumps([{"name": "live", "session": LIVE_SESSION}]), encoding="utf-8")
    with pytest.raises(
        CommandError, match=r"Preset 'live', field 'session.input_audio_noise_reduction.strength'"
    ):
        call_command("rt_sessions_presets", "import", str(file), stdout=io.StringIO())
    assert not SessionPreset.objects.exists()


def test_a_stored_preset_the_upstream_cannot_serve_answers_503(
    api: Client, live_preset: SessionPreset, openai_standin: Any, settings: Any
) -> None:
    set_rt(settings, UPSTREAM="openai-beta", BASE_URL=openai_standin.base_url, API_KEY=openai_standin.api_key)
    response = post(api, {})
    assert response.status_code == 503
    assert response.json()["code"] == "upstream_unavailable"
    assert "ek_" not in response.content.decode()
    assert not openai_standin.requests  # nothing was sent
    row = TokenRequest.objects.get()
    assert (row.outcome, row.status_code, row.error_code) == (
        "upstream_unavailable",
        503,
        "unsupported_by_upstream",
    )
    assert "'keywords'" in row.error_message
    assert row.session_config is None
    # The database check names it.
    from django_rt_sessions.checks import check_presets

    [warning] = [m for m in check_presets(databases=["default"]) if m.id == "rt_sessions.W003"]
    assert warning.msg.startswith("Preset 'live' cannot be served by the openai-beta upstream: ")
    assert warning.level < 40  # a Warning, never an Error


class KeywordsOnlyUpstream(OpenAIUpstream):
    """A fourth upstream with capabilities of its own: it sends everything but delay."""

    name = "keywords-only"
    cannot_send = frozenset({f"{TR}.delay"})


def test_a_fourth_upstream_declares_its_own_capabilities(
    api: Client, live_preset: SessionPreset, openai_standin: Any, settings: Any
) -> None:
    set_rt(
        settings,
        UPSTREAM=f"{__name__}.KeywordsOnlyUpstream",
        BASE_URL=openai_standin.base_url,
        API_KEY=openai_standin.api_key,
    )
    with pytest.raises(PresetValidationError) as info:
        validate_session(LIVE_SESSION, upstream=get_upstream())
    assert list(info.value.errors) == [f"session.{TR}.delay"]
    assert post(api, {}).status_code == 503
    assert TokenRequest.objects.get().error_code == "unsupported_by_upstream"
    live_preset.session[TR].pop("delay")
    live_preset.save()
    assert post(api, {}).status_code == 201


# ------------------------------------------------------------------- the stand-in enforces OpenAI's rules


def standin_post(standin: Any, path: str, body: dict[str, Any]) -> Any:
    """A request straight to the stand-in, as OpenAI's own clients send it (not through the app)."""
    import requests

    return requests.post(
        f"{standin.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {standin.api_key}"},
        timeout=5,
    )


@pytest.mark.parametrize(
    ("transcription", "param"),
    [
        ({"model": "whisper-1", "keywords": ["Acme"]}, "session.audio.input.transcription.keywords"),
        ({"model": "gpt-4o-transcribe", "languages": ["en"]}, "session.audio.input.transcription.languages"),
        ({"model": "gpt-transcribe", "delay": "low"}, "session.audio.input.transcription.delay"),
        (
            {"model": "gpt-live-transcribe", "language": "en", "languages": ["fr"]},
            "session.audio.input.transcription.languages",
        ),
        (
            {"model": "gpt-live-transcribe", "keywords": ["<x>"]},
            "session.audio.input.transcription.keywords[0]",
        ),
        (
            {"model": "gpt-live-transcribe", "languages": ["EN"]},
            "session.audio.input.transcription.languages[0]",
        ),
    ],
)
def test_the_standin_refuses_what_openai_refuses(
    openai_standin: Any, transcription: dict[str, Any], param: str
) -> None:
    body = {"session": {"type": "transcription", "audio": {"input": {"transcription": transcription}}}}
    response = standin_post(openai_standin, "/realtime/client_secrets", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", param)


def test_the_standin_beta_endpoint_has_no_ga_only_fields(openai_standin: Any) -> None:
    body = {"input_audio_transcription": {"model": "gpt-live-transcribe", "keywords": ["Acme"]}}
    response = standin_post(openai_standin, "/realtime/transcription_sessions", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_parameter"
    assert response.json()["error"]["param"] == "input_audio_transcription.keywords"


def test_the_standin_accepts_noise_strength(openai_standin: Any) -> None:
    noise = {"type": "near_field", "strength": 0.3}
    body = {"session": {"type": "transcription", "audio": {"input": {"noise_reduction": noise}}}}
    response = standin_post(openai_standin, "/realtime/client_secrets", body)
    assert response.status_code == 200, response.text
    assert response.json()["session"]["audio"]["input"]["noise_reduction"] == noise


# ------------------------------------------------------------------------------ the 201 and the SDK


def test_the_201_validates_as_the_sdks_beta_transcription_session(
    api: Client, live_preset: SessionPreset, upstream: Any
) -> None:
    from openai.types.beta.realtime import TranscriptionSession
    from pydantic import ValidationError

    body = post(api, {}).json()
    # The beta type predates gpt-live-transcribe: its model Literal is the one thing it refuses.
    with pytest.raises(ValidationError) as info:
        TranscriptionSession.model_validate(body)
    assert [e["loc"] for e in info.value.errors()] == [("input_audio_transcription", "model")]
    # With a model the beta type knows, the whole body validates, the GA-only fields as extras.
    live_preset.session[TR] = {"model": "gpt-4o-transcribe", "language": "fr"}
    live_preset.session["turn_detection"] = {"type": "semantic_vad", "eagerness": "high"}
    live_preset.save()
    with time_machine.travel(dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)):  # before its shutdown
        strict = TranscriptionSession.model_validate(post(api, {}).json())
    assert strict.client_secret.value.startswith("ek_")
    assert strict.input_audio_transcription is not None
    assert strict.input_audio_transcription.model == "gpt-4o-transcribe"
    assert strict.turn_detection is not None and strict.turn_detection.type == "semantic_vad"
    assert strict.model_extra is not None and strict.model_extra["preset"] == "live"


# ---------------------------------------------------------------------------- the docs and the schema


@pytest.mark.parametrize("name", list(docs.GENERATED))
def test_the_docs_tables_are_the_descriptions(name: str) -> None:
    """docs/presets.md holds the tables generated from the fields and the known models (scripts/update-docs
    rewrites them)."""
    text = (ROOT / "docs" / "presets.md").read_text(encoding="utf-8")
    assert docs.table_in(text, name) == docs.generated(name), (
        "docs/presets.md is stale: run scripts/update-docs"
    )


NEW_FIELD = SessionField(
    "input_audio_transcription.temperature",
    "Temperature",
    "How adventurous the transcription is.",
    Rule("number", minimum=0.0, maximum=2.0),
    "Transcription",
    "temperature",
    ga_only=True,
)
NEW_CHOICE = SessionField(
    "input_audio_transcription.style",
    "Style",
    "Verbatim or clean.",
    Rule("choice", choices=(Choice("verbatim", "Verbatim"), Choice("clean", "Clean"))),
    "Transcription",
    "style",
    override="style",
)


def test_a_field_added_to_the_description_appears_everywhere() -> None:
    fields = (*FIELDS, NEW_FIELD, NEW_CHOICE)
    # The validator
    session = {TR: {"model": "m", "temperature": 0.5, "style": "clean"}}
    assert validate_session(session, fields=fields) == session
    with pytest.raises(PresetValidationError) as info:
        validate_session({TR: {"model": "m", "temperature": 3}}, fields=fields)
    assert info.value.errors == {f"session.{TR}.temperature": ["3 is not a number from 0.0 to 2.0."]}
    with pytest.raises(PresetValidationError):
        validate_session(session)  # unknown to the shipped description
    # The admin form
    form_class = session_form_class(fields)
    form = form_class()
    assert form.fields["temperature"].help_text == (
        "How adventurous the transcription is. Allowed: number from 0.0 to 2.0. GA upstreams only (not the "
        "beta endpoint)."
    )
    assert [c[0] for c in form.fields["style"].choices] == ["", "verbatim", "clean"]
    assert ("style", "Style") in form.fields["overridable"].choices
    assert "temperature" not in session_form_class()().fields
    # The schema
    schema = preset_session_schema(fields)
    transcription = schema["properties"][TR]["properties"]
    assert transcription["temperature"]["maximum"] == 2.0
    assert "GA upstreams only" in transcription["temperature"]["description"]
    assert request_schema(fields)["properties"]["style"]["enum"] == ["verbatim", "clean", None]
    # The docs' table and the beta upstream's capabilities
    assert "| `input_audio_transcription.temperature` |" in docs.markdown_table(fields)
    assert f"{TR}.temperature" in ga_only_tokens(fields)


def test_every_field_has_its_form_field_and_fieldset() -> None:
    from django_rt_sessions.admin.forms import session_fieldsets

    form = session_form_class()()
    in_fieldsets = [name for _label, options in session_fieldsets() for name in options["fields"]]
    for spec in FIELDS:
        assert spec.form_name in form.fields, spec.path
        assert spec.form_name in in_fieldsets or spec.rule.kind == "object"
    assert len(in_fieldsets) == len(set(in_fieldsets))


def test_the_description_is_consistent() -> None:
    paths = [spec.path for spec in FIELDS]
    assert len(paths) == len(set(paths))
    by_path = index().by_path
    for spec in FIELDS:
        assert spec.parent == "" or by_path[spec.parent].rule.kind == "object", spec.path
        assert not (spec.per_model and spec.parent != "input_audio_transcription"), spec.path
        if spec.replaces:
            assert by_path[f"{spec.parent}.{spec.replaces}".lstrip(".")].replaces == spec.name


def test_a_stored_preset_that_no_longer_validates_answers_503(
    api: Client, upstream: Any, settings: Any
) -> None:
    """Saved before a rule existed (here: before every preset had to name a model): the site's fault."""
    from django_rt_sessions.checks import check_presets

    SessionPreset.objects.create(name="legacy", default=True, session={"input_audio_format": "pcm16"})
    response = post(api, {})
    assert response.status_code == 503
    assert response.json()["code"] == "upstream_unavailable"
    assert not upstream.requests
    row = TokenRequest.objects.get()
    assert (row.error_code, row.error_message) == (
        "invalid_preset",
        "session.input_audio_transcription: Required.",
    )
    [warning] = [m for m in check_presets(databases=["default"]) if m.id == "rt_sessions.W004"]
    assert warning.msg == (
        "Preset 'legacy' is no longer valid (session.input_audio_transcription: Required.): requests for it "
        "answer 503."
    )


def test_the_database_check_ids_are_distinct(api: Client, upstream: Any, settings: Any) -> None:
    from django_rt_sessions.checks import check_presets

    SessionPreset.objects.create(name="a", session={"input_audio_transcription": {"model": "whisper-1"}})
    SessionPreset.objects.create(name="b", session=LIVE_SESSION)
    SessionPreset.objects.create(name="c", session={})
    set_rt(settings, UPSTREAM="openai-beta")
    found = {(m.id, m.obj.name) for m in check_presets(databases=["default"])}
    assert found == {("rt_sessions.W002", "a"), ("rt_sessions.W003", "b"), ("rt_sessions.W004", "c")}


@pytest.mark.parametrize("name", ["openai", "azure"])
def test_the_admin_preview_is_the_body_the_standin_receives(
    admin_client: Client,
    api: Client,
    live_preset: SessionPreset,
    openai_standin: Any,
    settings: Any,
    name: str,
) -> None:
    import html
    import re

    base = openai_standin.azure_base_url if name == "azure" else openai_standin.base_url
    set_rt(settings, UPSTREAM=name, BASE_URL=base, API_KEY=openai_standin.api_key)
    change = reverse("admin:django_rt_sessions_sessionpreset_change", args=[live_preset.pk])
    page = admin_client.get(change).content.decode()
    match = re.search(r'<pre id="rt-upstream-preview">(.*?)</pre>', page, re.S)
    assert match, page
    assert not openai_standin.requests
    assert post(api, {}).status_code == 201
    [request] = openai_standin.requests
    assert request.json == json.loads(html.unescape(match.group(1)))
