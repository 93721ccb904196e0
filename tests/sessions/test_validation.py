"""The one preset validator (docs/presets.md): `validate_session`, `validate_preset`,
`validate_preset_options`, `apply_overrides`. Every refusal is checked for the dotted field path it is
reported under."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django_ratelimit.core import _split_rate

from django_rt_sessions.presets.validation import validate_preset, validate_preset_options
from django_rt_sessions.sessions.catalog import known_models
from django_rt_sessions.sessions.validation import PresetValidationError, apply_overrides, validate_session

from ..conftest import DROP, MINIMAL_SESSION, SESSION, changed_copy

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

TD = "session.turn_detection"
TR = "session.input_audio_transcription"


def session_with(**changes: Any) -> dict[str, Any]:
    """SESSION with dotted-path changes, e.g. `turn_detection__threshold=1.5`; a value of DROP deletes."""
    return changed_copy(SESSION, **changes)


def preset_data(**changes: Any) -> dict[str, Any]:
    data = {
        "name": "meetings-fr",
        "title": "Meetings (French)",
        "description": "",
        "active": True,
        "default": False,
        "session": copy.deepcopy(SESSION),
        "expires_after_seconds": 60,
        "overridable": ["language", "prompt", "noise_reduction"],
        "rate": "5/m",
        "groups": ["transcribers"],
    }
    for key, value in changes.items():
        if value is DROP:
            data.pop(key)
        else:
            data[key] = value
    return data


def minimal(**keys: Any) -> dict[str, Any]:
    """MINIMAL_SESSION (a model) plus top-level keys."""
    return {**copy.deepcopy(MINIMAL_SESSION), **keys}


def session_errors(session: Any) -> dict[str, list[str]]:
    with pytest.raises(PresetValidationError) as info:
        validate_session(session)
    return info.value.errors


def preset_errors(data: Any) -> dict[str, list[str]]:
    with pytest.raises(PresetValidationError) as info:
        validate_preset(data)
    return info.value.errors


# ----------------------------------------------------------------------------------- validate_session


def test_the_spec_example_session_is_valid_and_returned_unchanged() -> None:
    original = copy.deepcopy(SESSION)
    cleaned = validate_session(SESSION)
    assert cleaned == SESSION
    assert cleaned is not SESSION
    assert original == SESSION


def test_cleaned_session_is_a_deep_copy() -> None:
    session = copy.deepcopy(SESSION)
    cleaned = validate_session(session)
    cleaned["input_audio_transcription"]["language"] = "de"
    cleaned["include"].append("x")
    assert session == SESSION


def test_a_model_is_all_a_session_needs() -> None:
    assert validate_session(MINIMAL_SESSION) == MINIMAL_SESSION


@pytest.mark.parametrize(
    ("session", "field"),
    [({}, TR), ({"input_audio_transcription": {"language": "fr"}}, f"{TR}.model")],
)
def test_a_session_must_name_a_model(session: dict[str, Any], field: str) -> None:
    assert session_errors(session) == {field: ["Required."]}


def test_turn_detection_type_defaults_to_server_vad() -> None:
    cleaned = validate_session(
        {"input_audio_transcription": {"model": "gpt-transcribe"}, "turn_detection": {"threshold": 0.3}}
    )
    assert cleaned["turn_detection"] == {"type": "server_vad", "threshold": 0.3}


def test_null_features_are_kept_as_null() -> None:
    session = minimal(input_audio_noise_reduction=None, turn_detection=None)
    assert validate_session(session) == session


@pytest.mark.parametrize("value", [None, [], "pcm16", 3])
def test_session_must_be_an_object(value: Any) -> None:
    assert session_errors(value) == {"session": ["Must be a JSON object."]}


def test_session_prefix_is_used_in_paths() -> None:
    with pytest.raises(PresetValidationError) as info:
        validate_session(minimal(input_audio_format="mp3"), prefix="preset.session")
    assert list(info.value.errors) == ["preset.session.input_audio_format"]


@pytest.mark.parametrize("value", ["pcm16", "g711_ulaw", "g711_alaw"])
def test_audio_formats_accepted(value: str) -> None:
    assert validate_session(minimal(input_audio_format=value))["input_audio_format"] == value


@pytest.mark.parametrize("value", ["mp3", "PCM16", "", None, 16])
def test_audio_format_refused(value: Any) -> None:
    assert list(session_errors(session_with(input_audio_format=value))) == ["session.input_audio_format"]


@pytest.mark.parametrize("value", [{"type": "near_field"}, {"type": "far_field"}, None])
def test_noise_reduction_accepted(value: Any) -> None:
    cleaned = validate_session(minimal(input_audio_noise_reduction=value))
    assert cleaned["input_audio_noise_reduction"] == value


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"type": "studio"}, "session.input_audio_noise_reduction.type"),
        ({"type": None}, "session.input_audio_noise_reduction.type"),
        ("far_field", "session.input_audio_noise_reduction"),
        ([], "session.input_audio_noise_reduction"),
        ({"type": "far_field", "level": 3}, "session.input_audio_noise_reduction.level"),
        ({"type": "far_field", "strength": 1.5}, "session.input_audio_noise_reduction.strength"),
    ],
)
def test_noise_reduction_refused(value: Any, field: str) -> None:
    assert list(session_errors(session_with(input_audio_noise_reduction=value))) == [field]


@pytest.mark.parametrize("model", [*known_models(), "some-future-model"])
def test_any_non_empty_model_accepted(model: str) -> None:
    session = {"input_audio_transcription": {"model": model}}
    if model == "gpt-realtime-whisper":
        session["turn_detection"] = None
    assert validate_session(session)["input_audio_transcription"]["model"] == model


@pytest.mark.parametrize("model", ["", "   ", None, 4, ["whisper-1"]])
def test_empty_or_non_string_model_refused(model: Any) -> None:
    errors = session_errors(session_with(input_audio_transcription__model=model))
    assert list(errors) == [f"{TR}.model"]


@pytest.mark.parametrize("language", ["fr", "en", "zh"])
def test_language_accepted(language: str) -> None:
    cleaned = validate_session(session_with(input_audio_transcription__language=language))
    assert cleaned["input_audio_transcription"]["language"] == language


def test_language_may_be_absent_not_null() -> None:
    validate_session(session_with(input_audio_transcription__language=DROP))
    # OpenAI's schema types it as a string: absent, not null, means "detect the language".
    errors = session_errors(session_with(input_audio_transcription__language=None))
    assert errors == {f"{TR}.language": ["null is not a string."]}


@pytest.mark.parametrize("language", ["FR", "fra", "f", "fr-FR", "", "f1", 12, "fr\n", " fr"])
def test_language_refused(language: Any) -> None:
    errors = session_errors(session_with(input_audio_transcription__language=language))
    assert list(errors) == [f"{TR}.language"]


@pytest.mark.parametrize("length", [0, 1, 4000])
def test_prompt_up_to_4000_characters_accepted(length: int) -> None:
    cleaned = validate_session(session_with(input_audio_transcription__prompt="p" * length))
    assert len(cleaned["input_audio_transcription"]["prompt"]) == length


@pytest.mark.parametrize("prompt", ["p" * 4001, 5, ["a"]])
def test_prompt_refused(prompt: Any) -> None:
    errors = session_errors(session_with(input_audio_transcription__prompt=prompt))
    assert list(errors) == [f"{TR}.prompt"]


@pytest.mark.parametrize("value", ["gpt-4o-transcribe", [], None])
def test_transcription_must_be_an_object(value: Any) -> None:
    assert list(session_errors(session_with(input_audio_transcription=value))) == [TR]


@pytest.mark.parametrize("threshold", [0.0, 1.0, 0.5, 0, 1])
def test_threshold_bounds_accepted(threshold: float) -> None:
    cleaned = validate_session(session_with(turn_detection__threshold=threshold))
    assert cleaned["turn_detection"]["threshold"] == threshold


@pytest.mark.parametrize("threshold", [-0.01, 1.01, 2, True, False, "0.5", None, float("nan"), float("inf")])
def test_threshold_refused(threshold: Any) -> None:
    assert list(session_errors(session_with(turn_detection__threshold=threshold))) == [f"{TD}.threshold"]


@pytest.mark.parametrize("key", ["prefix_padding_ms", "silence_duration_ms"])
@pytest.mark.parametrize("value", [0, 1, 10000])
def test_vad_milliseconds_bounds_accepted(key: str, value: int) -> None:
    assert validate_session(session_with(**{f"turn_detection__{key}": value}))["turn_detection"][key] == value


@pytest.mark.parametrize("key", ["prefix_padding_ms", "silence_duration_ms"])
@pytest.mark.parametrize("value", [-1, 10001, 300.0, 300.5, True, False, "300", None])
def test_vad_milliseconds_refused(key: str, value: Any) -> None:
    assert list(session_errors(session_with(**{f"turn_detection__{key}": value}))) == [f"{TD}.{key}"]


@pytest.mark.parametrize("value", ["semantic", "", None])
def test_turn_detection_type_refused(value: Any) -> None:
    session = session_with(turn_detection={"type": value})
    assert list(session_errors(session)) == [f"{TD}.type"]


@pytest.mark.parametrize("value", ["server_vad", [], 1])
def test_turn_detection_must_be_object_or_null(value: Any) -> None:
    assert list(session_errors(session_with(turn_detection=value))) == [TD]


@pytest.mark.parametrize(
    "value",
    [[], ["item.input_audio_transcription.logprobs"], ["item.input_audio_transcription.logprobs"] * 2],
)
def test_include_accepted(value: list[str]) -> None:
    assert validate_session(minimal(include=value))["include"] == value


@pytest.mark.parametrize(
    "value", ["item.input_audio_transcription.logprobs", ["logprobs"], [None], None, {"a": 1}]
)
def test_include_refused(value: Any) -> None:
    assert list(session_errors(session_with(include=value))) == ["session.include"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"modalities": ["text"]}, "session.modalities"),
        ({"input_audio_transcription__temperature": 0}, f"{TR}.temperature"),
        ({"turn_detection__create_response": True}, f"{TD}.create_response"),
        ({"input_audio_noise_reduction__level": 1}, "session.input_audio_noise_reduction.level"),
    ],
)
def test_unknown_keys_refused_at_each_depth(changes: dict[str, Any], field: str) -> None:
    errors = session_errors(session_with(**changes))
    assert list(errors) == [field]
    assert errors[field][0].startswith("Unknown field; the fields here are: ")


@pytest.mark.parametrize("model", ["gpt-4o-transcribe-diarize", "gpt-realtime-whisper"])
@pytest.mark.parametrize("prompt", ["", "Names: Zoë"])
def test_models_without_prompt_refuse_a_prompt(model: str, prompt: str) -> None:
    session = {"input_audio_transcription": {"model": model, "prompt": prompt}, "turn_detection": None}
    errors = session_errors(session)
    assert list(errors) == [f"{TR}.prompt"]
    assert model in errors[f"{TR}.prompt"][0]


@pytest.mark.parametrize("model", ["gpt-4o-transcribe-diarize", "gpt-realtime-whisper"])
def test_models_without_prompt_accept_no_prompt(model: str) -> None:
    session = {"input_audio_transcription": {"model": model, "language": "en"}, "turn_detection": None}
    assert validate_session(session) == session


def test_prompt_is_fine_for_other_models() -> None:
    session = {"input_audio_transcription": {"model": "gpt-live-transcribe", "prompt": "x"}}
    assert validate_session(session) == session


@pytest.mark.parametrize("model", ["gpt-realtime-whisper", "gpt-live-transcribe"])
@pytest.mark.parametrize(
    "turn_detection",
    [{"type": "server_vad"}, {"threshold": 0.5}, {"type": "semantic_vad"}],
    ids=["server", "partial", "semantic"],
)
def test_models_without_server_vad_refuse_turn_detection(model: str, turn_detection: Any) -> None:
    session = {"input_audio_transcription": {"model": model}, "turn_detection": turn_detection}
    assert session_errors(session) == {
        TD: [
            f"{model} takes no server turn detection: set it to null (off); the browser client then "
            "commits each turn itself (client_turns)."
        ]
    }


@pytest.mark.parametrize("model", ["gpt-realtime-whisper", "gpt-live-transcribe"])
def test_models_without_server_vad_take_turn_detection_null_or_absent(model: str) -> None:
    for session in (
        {"input_audio_transcription": {"model": model}, "turn_detection": None},
        {"input_audio_transcription": {"model": model}},
    ):
        assert validate_session(session) == session


def test_turn_detection_is_fine_for_diarize() -> None:
    session = {"input_audio_transcription": {"model": "gpt-4o-transcribe-diarize"}, "turn_detection": None}
    validate_session(session)
    session["turn_detection"] = {"type": "server_vad"}
    validate_session(session)


def test_all_errors_are_collected_at_once() -> None:
    session = {
        "input_audio_format": "mp3",
        "input_audio_transcription": {"model": "", "language": "French"},
        "turn_detection": {"threshold": 3, "silence_duration_ms": -5},
        "include": ["nope"],
        "extra": 1,
    }
    assert set(session_errors(session)) == {
        "session.input_audio_format",
        f"{TR}.model",
        f"{TR}.language",
        f"{TD}.threshold",
        f"{TD}.silence_duration_ms",
        "session.include",
        "session.extra",
    }


def test_error_message_names_fields() -> None:
    with pytest.raises(PresetValidationError) as info:
        validate_session({"input_audio_format": "mp3"})
    assert "session.input_audio_format" in str(info.value)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------------------------ validate_preset


def test_the_spec_example_preset_is_valid() -> None:
    data = preset_data()
    cleaned = validate_preset(data)
    # The optional keys the example leaves out.
    assert cleaned == {**data, "daily_quota": None, "client_turns": None, **NOT_RELAYED}
    assert data == preset_data()


def test_preset_defaults_filled() -> None:
    cleaned = validate_preset({"name": "minimal", "session": MINIMAL_SESSION})
    assert cleaned == {
        "name": "minimal",
        "title": "",
        "description": "",
        "active": True,
        "default": False,
        "session": MINIMAL_SESSION,
        "client_turns": None,
        "expires_after_seconds": 60,
        "overridable": [],
        "rate": "",
        "groups": [],
        "daily_quota": None,
        **NOT_RELAYED,
    }


# A preset without `relay`: the relay options' defaults, which it may not change.
NOT_RELAYED = {
    "relay": False,
    "max_session_seconds": 900,
    "max_concurrent_sessions": 1,
    "daily_audio_minutes": None,
    "idle_timeout_seconds": 60,
}


def test_a_relay_preset_takes_its_limits_with_defaults_filled() -> None:
    cleaned = validate_preset(
        {"name": "relayed", "session": MINIMAL_SESSION, "relay": True, "daily_audio_minutes": 2.5}
    )
    assert {key: cleaned[key] for key in NOT_RELAYED} == {
        **NOT_RELAYED,
        "relay": True,
        "daily_audio_minutes": 2.5,
    }


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"max_session_seconds": 600}, "max_session_seconds", "Only a relay preset enforces"),
        ({"relay": False, "idle_timeout_seconds": 30}, "idle_timeout_seconds", "set relay to true"),
        ({"relay": True, "max_session_seconds": 5}, "max_session_seconds", "5 is not a whole number"),
        ({"relay": True, "max_concurrent_sessions": 101}, "max_concurrent_sessions", "from 1 to 100"),
        ({"relay": True, "daily_audio_minutes": 0}, "daily_audio_minutes", "0 is not a number"),
        ({"relay": True, "idle_timeout_seconds": "60"}, "idle_timeout_seconds", "'60' is not a whole"),
        ({"relay": "yes"}, "relay", "'yes' is not true or false"),
    ],
)
def test_relay_limits_are_refused_on_presets_without_relay_and_checked_on_relay_ones(
    options: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(PresetValidationError) as info:
        validate_preset({"name": "p", "session": MINIMAL_SESSION, **options})
    assert list(info.value.errors) == [field]
    assert message in " ".join(info.value.errors[field])


@pytest.mark.parametrize(
    ("client_turns", "cleaned"),
    [
        (None, None),
        ({}, {"silence_duration_ms": 600, "max_turn_ms": 15000}),
        ({"silence_duration_ms": 100}, {"silence_duration_ms": 100, "max_turn_ms": 15000}),
        (
            {"silence_duration_ms": 10000, "max_turn_ms": 120000},
            {"silence_duration_ms": 10000, "max_turn_ms": 120000},
        ),
    ],
)
def test_client_turns_defaults_are_filled(client_turns: Any, cleaned: Any) -> None:
    preset = {"name": "p", "session": MINIMAL_SESSION, "client_turns": client_turns}
    assert validate_preset(preset)["client_turns"] == cleaned


@pytest.mark.parametrize(
    ("client_turns", "errors"),
    [
        (
            {"silence_duration_ms": 99},
            {"client_turns.silence_duration_ms": ["99 is not a whole number from 100 to 10000."]},
        ),
        (
            {"max_turn_ms": 120001},
            {"client_turns.max_turn_ms": ["120001 is not a whole number from 1000 to 120000."]},
        ),
        (
            {"max_turn_ms": "15s"},
            {"client_turns.max_turn_ms": ["'15s' is not a whole number from 1000 to 120000."]},
        ),
        (
            {"silence": 500},
            {
                "client_turns.silence": [
                    "Unknown field; the fields here are: silence_duration_ms, max_turn_ms."
                ]
            },
        ),
        ([600], {"client_turns": ["Must be a JSON object."]}),
    ],
)
def test_client_turns_refused_naming_the_value(client_turns: Any, errors: dict[str, list[str]]) -> None:
    assert preset_errors({"name": "p", "session": MINIMAL_SESSION, "client_turns": client_turns}) == errors


@pytest.mark.parametrize("quota", [0, -1, 1.5, "10", True])
def test_daily_quota_refused(quota: Any) -> None:
    assert list(preset_errors(preset_data(daily_quota=quota))) == ["daily_quota"]


@pytest.mark.parametrize("quota", [1, 500, None])
def test_daily_quota_accepted(quota: Any) -> None:
    assert validate_preset(preset_data(daily_quota=quota))["daily_quota"] == quota


@pytest.mark.parametrize("value", [None, [], "meetings-fr"])
def test_preset_must_be_an_object(value: Any) -> None:
    assert list(preset_errors(value)) == ["preset"]


def test_unknown_top_level_key_refused() -> None:
    errors = preset_errors(preset_data(colour="blue"))
    assert list(errors) == ["colour"]
    assert errors["colour"][0].startswith("Unknown field; the fields of a preset are: name, title,")


def test_session_errors_are_reported_under_session() -> None:
    errors = preset_errors(preset_data(session=session_with(turn_detection__silence_duration_ms=10001)))
    assert list(errors) == [f"{TD}.silence_duration_ms"]


@pytest.mark.parametrize("session", [None, "x", []])
def test_preset_session_must_be_an_object(session: Any) -> None:
    assert list(preset_errors(preset_data(session=session))) == ["session"]


@pytest.mark.parametrize("name", ["a", "meetings_fr-2", "A" * 64])
def test_name_accepted(name: str) -> None:
    assert validate_preset(preset_data(name=name))["name"] == name


@pytest.mark.parametrize("name", [DROP, None, "", "has space", "é", "a/b", "A" * 65, 5, "name\n"])
def test_name_refused(name: Any) -> None:
    assert list(preset_errors(preset_data(name=name))) == ["name"]


@pytest.mark.parametrize(("key", "value"), [("title", 3), ("title", "t" * 201), ("description", None)])
def test_title_and_description_refused(key: str, value: Any) -> None:
    assert list(preset_errors(preset_data(**{key: value}))) == [key]


@pytest.mark.parametrize("key", ["active", "default"])
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_flags_must_be_booleans(key: str, value: Any) -> None:
    assert list(preset_errors(preset_data(**{key: value}))) == [key]


@pytest.mark.parametrize("seconds", [10, 11, 60, 7199, 7200])
def test_expires_after_seconds_bounds_accepted(seconds: int) -> None:
    assert validate_preset(preset_data(expires_after_seconds=seconds))["expires_after_seconds"] == seconds


@pytest.mark.parametrize("seconds", [9, 0, -1, 7201, 60.0, True, "60", None])
def test_expires_after_seconds_refused(seconds: Any) -> None:
    assert list(preset_errors(preset_data(expires_after_seconds=seconds))) == ["expires_after_seconds"]


@pytest.mark.parametrize(
    "overridable",
    [[], ["language"], ["prompt"], ["noise_reduction"], ["noise_reduction", "language"]],
)
def test_overridable_any_subset_accepted(overridable: list[str]) -> None:
    assert validate_preset(preset_data(overridable=overridable))["overridable"] == overridable


@pytest.mark.parametrize(
    "overridable", [["model"], ["language", "language"], "language", None, [None], {"language": True}]
)
def test_overridable_refused(overridable: Any) -> None:
    assert list(preset_errors(preset_data(overridable=overridable))) == ["overridable"]


@pytest.mark.parametrize("rate", ["5/m", "1/s", "100/h", "3/d", "10/5m", "", None, DROP])
def test_rate_accepted(rate: Any) -> None:
    cleaned = validate_preset(preset_data(rate=rate))
    assert cleaned["rate"] == ("" if rate is DROP or not rate else rate)
    if cleaned["rate"]:
        # Whatever the validator accepts, django-ratelimit must be able to use.
        count, seconds = _split_rate(cleaned["rate"])
        assert count > 0
        assert seconds > 0


@pytest.mark.parametrize(
    "rate",
    [
        "5",
        "5/",
        "0/m",
        "-1/m",
        "5/min",
        "5/x",
        "five/m",
        "5 /m",
        "m/5",
        5,
        ["5/m"],
        # a zero multiplier makes django-ratelimit divide by zero when it counts a request
        "5/0m",
    ],
)
def test_rate_refused(rate: Any) -> None:
    assert list(preset_errors(preset_data(rate=rate))) == ["rate"]


@pytest.mark.parametrize("groups", [[], ["transcribers"], ["a", "b"], None])
def test_groups_accepted(groups: Any) -> None:
    assert validate_preset(preset_data(groups=groups))["groups"] == (groups or [])


@pytest.mark.parametrize("groups", ["transcribers", [""], [1], [None], {"a": 1}])
def test_groups_refused(groups: Any) -> None:
    assert list(preset_errors(preset_data(groups=groups))) == ["groups"]


def test_preset_errors_collected_across_levels() -> None:
    data = preset_data(
        name="",
        expires_after_seconds=5,
        overridable=["model"],
        rate="fast",
        session=minimal(input_audio_format="mp3"),
        extra=True,
    )
    assert set(preset_errors(data)) == {
        "name",
        "expires_after_seconds",
        "overridable",
        "rate",
        "session.input_audio_format",
        "extra",
    }


# ---------------------------------------------------------------------------- validate_preset_options


def test_preset_options_valid() -> None:
    assert validate_preset_options(60, ["language"], "5/m") is None
    assert validate_preset_options(10, [], "") is None
    assert validate_preset_options(7200, ["prompt"], "1/10s") is None


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        ((9, [], ""), ["expires_after_seconds"]),
        ((7201, [], ""), ["expires_after_seconds"]),
        ((None, [], ""), ["expires_after_seconds"]),
        ((60, ["model"], ""), ["overridable"]),
        ((60, None, ""), ["overridable"]),
        ((60, [], "often"), ["rate"]),
        ((5, ["x"], "often"), ["expires_after_seconds", "overridable", "rate"]),
    ],
)
def test_preset_options_refused(args: tuple[Any, Any, Any], fields: list[str]) -> None:
    with pytest.raises(PresetValidationError) as info:
        validate_preset_options(*args)
    assert sorted(info.value.errors) == fields


# ------------------------------------------------------------------------------------ apply_overrides


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, SESSION),
        (
            {"language": "de"},
            session_with(input_audio_transcription__language="de"),
        ),
        (
            {"prompt": "Acme, Zoë"},
            session_with(input_audio_transcription__prompt="Acme, Zoë"),
        ),
        (
            {"noise_reduction": "near_field"},
            session_with(input_audio_noise_reduction={"type": "near_field"}),
        ),
        (
            {"language": "es", "prompt": "x", "noise_reduction": "far_field"},
            session_with(input_audio_transcription__language="es", input_audio_transcription__prompt="x"),
        ),
    ],
)
def test_overrides_merged(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    assert apply_overrides(SESSION, overrides) == expected


def test_null_language_means_auto_detect() -> None:
    merged = apply_overrides(SESSION, {"language": None})
    assert "language" not in merged["input_audio_transcription"]
    assert merged["input_audio_transcription"]["model"] == "gpt-transcribe"


def test_null_prompt_removes_the_prompt() -> None:
    merged = apply_overrides(SESSION, {"prompt": None})
    assert merged["input_audio_transcription"] == {"model": "gpt-transcribe", "language": "fr"}


def test_null_noise_reduction_turns_it_off() -> None:
    merged = apply_overrides(SESSION, {"noise_reduction": None})
    assert "input_audio_noise_reduction" in merged
    assert merged["input_audio_noise_reduction"] is None


def test_language_override_on_a_preset_without_a_language() -> None:
    merged = apply_overrides(minimal(input_audio_format="pcm16"), {"language": "it"})
    assert merged == {
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "it"},
    }


def test_overrides_do_not_mutate_inputs() -> None:
    session = copy.deepcopy(SESSION)
    overrides = {"language": None, "prompt": "x", "noise_reduction": None}
    merged = apply_overrides(session, overrides)
    assert session == SESSION
    assert overrides == {"language": None, "prompt": "x", "noise_reduction": None}
    merged["input_audio_transcription"]["model"] = "changed"
    merged["turn_detection"]["threshold"] = 0.9
    assert session == SESSION


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"language": "French"}, "language"),
        ({"language": "FR"}, "language"),
        ({"prompt": "p" * 4001}, "prompt"),
        ({"noise_reduction": "studio"}, "noise_reduction"),
    ],
)
def test_override_errors_keyed_by_override_name(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(PresetValidationError) as info:
        apply_overrides(SESSION, overrides)
    assert list(info.value.errors) == [field]


def test_prompt_override_of_4000_characters_accepted() -> None:
    merged = apply_overrides(SESSION, {"prompt": "p" * 4000})
    assert len(merged["input_audio_transcription"]["prompt"]) == 4000


@pytest.mark.parametrize("model", ["gpt-4o-transcribe-diarize", "gpt-realtime-whisper"])
def test_model_rules_reapplied_to_the_merged_session(model: str) -> None:
    session = {"input_audio_transcription": {"model": model, "language": "en"}, "turn_detection": None}
    with pytest.raises(PresetValidationError) as info:
        apply_overrides(session, {"prompt": "Acme"})
    assert list(info.value.errors) == ["prompt"]
    assert model in info.value.errors["prompt"][0]
    # Other overrides still work, and a null prompt is no prompt at all.
    assert apply_overrides(session, {"language": "de", "prompt": None})["input_audio_transcription"] == {
        "model": model,
        "language": "de",
    }
