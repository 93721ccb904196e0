"""Strict request validation for the OpenAI stand-in, driven by OpenAI's own OpenAPI description.

The live API rejects unknown keys at every depth, while the published schema leaves objects open. So the
document is "strictified" once: every object schema that declares ``properties`` gets
``additionalProperties: false`` unless it already says otherwise. A few fields the published schema types as
``object`` are accepted as ``null`` by the live API (the app sends ``null`` to switch them off, see
docs/presets.md); they are patched to be nullable. Errors are turned into OpenAI-style
``(message, param, code)`` triples.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "BETA_REQUEST",
    "DEFAULT_TURN_DETECTION",
    "GA_REQUEST",
    "NO_TURN_DETECTION_MODELS",
    "SCHEMA_PATH",
    "Problem",
    "default_turn_detection",
    "load_document",
    "schema_validator",
    "turn_detection_problem",
    "validate_request",
]

SCHEMA_PATH = Path(__file__).with_name("schema") / "openai-realtime-sessions.openapi.json"
_DOC_URI = "urn:django-rt-sessions:openai-realtime-sessions.openapi"

GA_REQUEST = "RealtimeCreateClientSecretRequest"
BETA_REQUEST = "RealtimeTranscriptionSessionCreateRequest"
_GA_TRANSCRIPTION = "RealtimeTranscriptionSessionCreateRequestGA"

# Transcription model rules the live API enforces beyond the schema (OpenAI's docs and openai-python
# 3.57.0 types/realtime/audio_transcription.py). Written here on their own, not imported from the app's
# description of the fields: the stand-in is the app's test oracle, so it must not share the app's mistakes.
_NO_PROMPT_MODELS = frozenset({"gpt-4o-transcribe-diarize", "gpt-realtime-whisper"})
# OpenAI's realtime VAD guide (updated after openai-python 3.57.0): "gpt-live-transcribe and
# gpt-realtime-whisper require turn detection to be omitted or set to null. Send input_audio_buffer.commit to
# finish each audio turn with these models." The one list of such models in the stand-in: the token
# endpoints, the defaults they fill in and session.update all read it.
NO_TURN_DETECTION_MODELS = frozenset({"gpt-live-transcribe", "gpt-realtime-whisper"})
# What a session gets when its request says nothing about turn detection, on the other models.
DEFAULT_TURN_DETECTION: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
_KEYWORD_AND_LANGUAGES_MODELS = frozenset({"gpt-transcribe", "gpt-live-transcribe"})
_DELAY_MODELS = frozenset({"gpt-realtime-whisper", "gpt-live-transcribe"})
_KNOWN_MODELS = frozenset(
    {
        "whisper-1",
        "gpt-transcribe",
        "gpt-live-transcribe",
        "gpt-4o-mini-transcribe",
        "gpt-4o-mini-transcribe-2025-12-15",
        "gpt-4o-transcribe",
        "gpt-4o-transcribe-diarize",
        "gpt-realtime-whisper",
    }
)
_MAX_LANGUAGES = 10
_MAX_KEYWORDS = 100
_MAX_KEYWORD_LENGTH = 100
_ISO_639_1 = re.compile(r"[a-z]{2}")
# Fields of AudioTranscription the beta endpoint never had (they came with the GA transcription models).
_GA_ONLY_TRANSCRIPTION = ("languages", "keywords", "delay")

UNKNOWN_PARAMETER = "unknown_parameter"
INVALID_VALUE = "invalid_value"
MISSING_REQUIRED_PARAMETER = "missing_required_parameter"


@dataclass(frozen=True)
class Problem:
    """Why a request body was rejected, in OpenAI's error vocabulary."""

    message: str
    param: str | None
    code: str


# --------------------------------------------------------------------------------------------- schema


@lru_cache(maxsize=1)
def _raw_document() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        return json.load(fh)


def load_document(*, strict: bool = False) -> dict[str, Any]:
    """A fresh copy of the OpenAPI document, optionally strictified like the live API."""
    doc = copy.deepcopy(_raw_document())
    if strict:
        for schema in doc["components"]["schemas"].values():
            _strictify(schema)
        _patch_nullables(doc["components"]["schemas"])
    return doc


_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_ONE = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
)


def _strictify(schema: Any) -> None:
    """Close every object schema that lists its properties (walks subschemas only, not property names)."""
    if not isinstance(schema, dict):
        return
    if (
        isinstance(schema.get("properties"), dict)
        and "additionalProperties" not in schema
        and "unevaluatedProperties" not in schema
    ):
        schema["additionalProperties"] = False
    for key in _SUBSCHEMA_MAPS:
        for sub in (schema.get(key) or {}).values():
            _strictify(sub)
    for key in _SUBSCHEMA_LISTS:
        for sub in schema.get(key) or ():
            _strictify(sub)
    for key in _SUBSCHEMA_ONE:
        _strictify(schema.get(key))


def _allow_null(schema: dict[str, Any]) -> None:
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"] if "null" not in types else types
    elif "$ref" in schema:
        schema["anyOf"] = [{"$ref": schema.pop("$ref")}, {"type": "null"}]
    else:  # pragma: no cover - guards against a reshaped reference document
        raise ValueError(f"cannot make schema nullable: {sorted(schema)}")


def _patch_nullables(schemas: dict[str, Any]) -> None:
    # The live API accepts null here (turns the feature off); the published schema says only "object".
    beta = schemas[BETA_REQUEST]["properties"]
    _allow_null(beta["turn_detection"])
    _allow_null(beta["input_audio_noise_reduction"])
    ga_input = schemas[_GA_TRANSCRIPTION]["properties"]["audio"]["properties"]["input"]["properties"]
    _allow_null(ga_input["noise_reduction"])
    _allow_null(ga_input["transcription"])
    _patch_newer_fields(schemas, beta, ga_input)


def _patch_newer_fields(schemas: dict[str, Any], beta: dict[str, Any], ga_input: dict[str, Any]) -> None:
    """Fields newer than the published description, as openai-python 3.57.0 describes them; and the beta
    endpoint's own, older transcription object (the document shares the GA one with it)."""
    # types/realtime/realtime_transcription_session_audio_input_param.py: NoiseReduction.strength.
    ga_input["noise_reduction"]["properties"]["strength"] = {"type": "number", "minimum": 0, "maximum": 1}
    shared = schemas["AudioTranscription"]
    beta_transcription = copy.deepcopy(shared)
    for key in _GA_ONLY_TRANSCRIPTION:
        beta_transcription["properties"].pop(key, None)
    schemas["BetaAudioTranscription"] = beta_transcription
    beta["input_audio_transcription"] = {"$ref": "#/components/schemas/BetaAudioTranscription"}


_validators_lock = threading.Lock()
_validators: dict[tuple[str, bool], Draft202012Validator] = {}


def schema_validator(name: str, *, strict: bool = True) -> Draft202012Validator:
    """A Draft 2020-12 validator for ``components.schemas[name]``, ``$ref``s resolved inside the document."""
    key = (name, strict)
    with _validators_lock:
        validator = _validators.get(key)
        if validator is None:
            doc = load_document(strict=strict)
            if name not in doc["components"]["schemas"]:
                raise KeyError(name)
            resource = Resource.from_contents(doc, default_specification=DRAFT202012)
            registry: Registry = Registry().with_resource(_DOC_URI, resource)
            validator = Draft202012Validator(
                {"$ref": f"{_DOC_URI}#/components/schemas/{name}"}, registry=registry
            )
            _validators[key] = validator
        return validator


# ------------------------------------------------------------------------------------------ requests


def validate_request(shape: str, body: Any) -> Problem | None:
    """Check a request body for ``shape`` ("openai", "azure" or "openai-beta"); None when acceptable."""
    if shape == "openai-beta":
        problem = _schema_problem(BETA_REQUEST, body)
        if problem is None:
            problem = _model_rules(
                body.get("input_audio_transcription"), "input_audio_transcription", body, "turn_detection"
            )
        return problem

    # GA shape (OpenAI and Azure): our broker only ever asks for transcription sessions.
    if not isinstance(body, dict) or "session" not in body:
        return Problem("Missing required parameter: 'session'.", "session", MISSING_REQUIRED_PARAMETER)
    session = body["session"]
    if isinstance(session, dict):
        if "type" not in session:
            return Problem(
                "Missing required parameter: 'session.type'.", "session.type", MISSING_REQUIRED_PARAMETER
            )
        if session["type"] != "transcription":
            return Problem(
                f"Invalid value for 'session.type': {_show(session['type'])}. This stand-in only issues "
                "transcription client secrets; supported values are: 'transcription'.",
                "session.type",
                INVALID_VALUE,
            )
    problem = _schema_problem(GA_REQUEST, body)
    if problem is None:
        audio_input = (session.get("audio") or {}).get("input") or {}
        problem = _model_rules(
            audio_input.get("transcription"),
            "session.audio.input.transcription",
            audio_input,
            "session.audio.input.turn_detection",
        )
    return problem


def _model_rules(
    transcription: Any, transcription_param: str, turn_holder: dict[str, Any], turn_param: str
) -> Problem | None:
    if not isinstance(transcription, dict):
        return None
    problem = _list_rules(transcription, transcription_param)
    if problem is not None:
        return problem
    model = transcription.get("model")
    if "language" in transcription and "languages" in transcription:
        return Problem(
            f"Invalid parameter '{transcription_param}.languages': 'language' and 'languages' cannot both "
            "be set.",
            f"{transcription_param}.languages",
            INVALID_VALUE,
        )
    if model in _KNOWN_MODELS:
        for key, models in (
            ("languages", _KEYWORD_AND_LANGUAGES_MODELS),
            ("keywords", _KEYWORD_AND_LANGUAGES_MODELS),
            ("delay", _DELAY_MODELS),
        ):
            if key in transcription and model not in models:
                return Problem(
                    f"Invalid parameter '{transcription_param}.{key}': {key} is not supported with model "
                    f"'{model}'.",
                    f"{transcription_param}.{key}",
                    INVALID_VALUE,
                )
    if model in _NO_PROMPT_MODELS and "prompt" in transcription:
        return Problem(
            f"Invalid parameter '{transcription_param}.prompt': "
            f"prompt is not supported with model '{model}'.",
            f"{transcription_param}.prompt",
            INVALID_VALUE,
        )
    return turn_detection_problem(model, turn_holder.get(turn_param.rsplit(".", 1)[-1]), turn_param)


def default_turn_detection(model: Any) -> dict[str, Any] | None:
    """The turn detection a session gets when it asks for none: server VAD, or none for the models that
    take no VAD."""
    return None if model in NO_TURN_DETECTION_MODELS else dict(DEFAULT_TURN_DETECTION)


def turn_detection_problem(model: Any, turn_detection: Any, param: str) -> Problem | None:
    """Why a session cannot have ``turn_detection`` with transcription ``model`` (absent counts as None:
    omitted means none for these models), named by ``param`` in the request's vocabulary; or None."""
    if model in NO_TURN_DETECTION_MODELS and turn_detection is not None:
        kind = turn_detection.get("type") if isinstance(turn_detection, dict) else turn_detection
        return Problem(
            f"Invalid value for '{param}': {_show(kind)} is not supported with model '{model}'. "
            f"{model} requires turn detection to be omitted or set to null: send "
            "input_audio_buffer.commit to finish each audio turn.",
            param,
            INVALID_VALUE,
        )
    return None


def _list_rules(transcription: dict[str, Any], param: str) -> Problem | None:
    """`languages` and `keywords`: what OpenAI refuses beyond their JSON types."""
    languages = transcription.get("languages")
    if isinstance(languages, list):
        where = f"{param}.languages"
        if len(languages) > _MAX_LANGUAGES:
            return Problem(
                f"Invalid '{where}': array too long. Expected an array with maximum length {_MAX_LANGUAGES}, "
                f"but got an array with length {len(languages)} instead.",
                where,
                INVALID_VALUE,
            )
        for index, code in enumerate(languages):
            if not (isinstance(code, str) and _ISO_639_1.fullmatch(code)):
                return Problem(
                    f"Invalid value for '{where}[{index}]': {_show(code)} is not an ISO-639-1 language code.",
                    f"{where}[{index}]",
                    INVALID_VALUE,
                )
        if len(set(languages)) != len(languages):
            return Problem(f"Invalid '{where}': duplicate languages.", where, INVALID_VALUE)
    keywords = transcription.get("keywords")
    if isinstance(keywords, list):
        where = f"{param}.keywords"
        if not 1 <= len(keywords) <= _MAX_KEYWORDS:
            return Problem(
                f"Invalid '{where}': expected 1 to {_MAX_KEYWORDS} keywords, but got {len(keywords)}.",
                where,
                INVALID_VALUE,
            )
        for index, keyword in enumerate(keywords):
            bad = (
                not isinstance(keyword, str)
                or not 1 <= len(keyword) <= _MAX_KEYWORD_LENGTH
                or any(c in keyword for c in "<>\r\n")
            )
            if bad:
                return Problem(
                    f"Invalid value for '{where}[{index}]': a keyword is one line of 1 to "
                    f"{_MAX_KEYWORD_LENGTH} characters without '<' or '>'.",
                    f"{where}[{index}]",
                    INVALID_VALUE,
                )
        if len(set(keywords)) != len(keywords):
            return Problem(f"Invalid '{where}': duplicate keywords.", where, INVALID_VALUE)
    return None


def _schema_problem(name: str, body: Any) -> Problem | None:
    errors = list(schema_validator(name).iter_errors(body))
    if not errors:
        return None
    leaves = [_most_specific(e) for e in errors]
    # Report unknown keys first (as the live API does), then missing ones, then bad values.
    leaf = min(enumerate(leaves), key=lambda item: (_CODE_RANK[_code(item[1])], item[0]))[1]
    return _to_problem(leaf)


_CODE_RANK = {UNKNOWN_PARAMETER: 0, MISSING_REQUIRED_PARAMETER: 1, INVALID_VALUE: 2}
_COMBINATORS = ("anyOf", "oneOf")


def _code(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        return UNKNOWN_PARAMETER
    if error.validator == "required":
        return MISSING_REQUIRED_PARAMETER
    return INVALID_VALUE


def _is_discriminator_miss(error: ValidationError, parent: ValidationError) -> bool:
    """A branch error saying the object's ``type`` is not this branch's type."""
    return (
        error.validator in ("enum", "const")
        and len(error.absolute_path) == len(parent.absolute_path) + 1
        and list(error.absolute_path)[-1] == "type"
    )


def _most_specific(error: ValidationError) -> ValidationError:
    """Descend through anyOf/oneOf failures to the error of the branch the body was aiming at.

    The branch is chosen by its ``type`` discriminator when there is one, then by how deep into the body
    its errors reach; a bad nested value therefore names its own path instead of the combinator's.
    """
    if error.validator not in _COMBINATORS or not error.context:
        return error
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    if not branches:
        return error
    aimed = {
        i: errs for i, errs in branches.items() if not any(_is_discriminator_miss(e, error) for e in errs)
    }
    if not aimed:
        # The discriminator matched no branch: say which values exist.
        allowed = _allowed_discriminators(branches.values(), error)
        bad = next(e for errs in branches.values() for e in errs if _is_discriminator_miss(e, error))
        return _with_message(bad, allowed)

    def score(item: tuple[int, list[ValidationError]]) -> tuple[int, int, int]:
        index, errs = item
        leaves = [_most_specific(e) for e in errs]
        depth = max(len(leaf.absolute_path) for leaf in leaves)
        only_type = all(leaf.validator == "type" for leaf in leaves)
        return (depth, 0 if only_type else 1, -index)

    _, errs = max(aimed.items(), key=score)
    leaves = [_most_specific(e) for e in errs]
    return max(enumerate(leaves), key=lambda item: (len(item[1].absolute_path), -item[0]))[1]


def _allowed_discriminators(branches: Iterable[list[ValidationError]], parent: ValidationError) -> list[Any]:
    allowed: list[Any] = []
    for errs in branches:
        for e in errs:
            if _is_discriminator_miss(e, parent):
                values = e.validator_value if e.validator == "enum" else [e.validator_value]
                allowed.extend(v for v in values if v not in allowed)
    return allowed


def _with_message(error: ValidationError, allowed: Sequence[Any]) -> ValidationError:
    # A synthetic enum error listing every branch's value, so the message is complete.
    return ValidationError(
        error.message,
        validator="enum",
        path=error.absolute_path,
        instance=error.instance,
        validator_value=list(allowed),
        schema={"enum": list(allowed)},
    )


def _param(path: Iterable[Any]) -> str | None:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _join(param: str | None, key: str) -> str:
    return f"{param}.{key}" if param else key


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)[:200]


def _values(values: Sequence[Any]) -> str:
    shown = [_show(v) for v in values]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + (", and " if len(shown) > 2 else " and ") + shown[-1]


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def _to_problem(error: ValidationError) -> Problem:
    param = _param(error.absolute_path)
    instance = error.instance
    code = _code(error)
    if code == UNKNOWN_PARAMETER:
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extras = [k for k in instance if k not in known] if isinstance(instance, dict) else []
        unknown = _join(param, extras[0] if extras else "?")
        return Problem(f"Unknown parameter: '{unknown}'.", unknown, code)
    if code == MISSING_REQUIRED_PARAMETER:
        missing = [k for k in error.validator_value if not (isinstance(instance, dict) and k in instance)]
        name = _join(param, missing[0] if missing else "?")
        return Problem(f"Missing required parameter: '{name}'.", name, code)
    where = param or "body"
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        message = f"Invalid value for '{where}': {_show(instance)}. Supported values are: {_values(allowed)}."
    elif error.validator == "type":
        expected = (
            error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        )
        got = _JSON_TYPES.get(type(instance), "a value")
        message = f"Invalid type for '{where}': expected {' or '.join(expected)}, but got {got} instead."
    elif error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        message = (
            f"Invalid value for '{where}': expected a value {op[str(error.validator)]} "
            f"{error.validator_value}, but got {_show(instance)} instead."
        )
    else:
        message = f"Invalid value for '{where}': {error.message[:300]}"
    return Problem(message, param, code)
