"""The one validator for presets (SPEC §3): the admin form, the import command and the API all call it.

Errors are collected into `{"dotted.field.path": ["message", ...]}` so every caller can put each message
next to the field it concerns.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

AUDIO_FORMATS = ("pcm16", "g711_ulaw", "g711_alaw")
NOISE_REDUCTION_TYPES = ("near_field", "far_field")
TURN_DETECTION_TYPES = ("server_vad",)
INCLUDE_ITEMS = ("item.input_audio_transcription.logprobs",)
KNOWN_MODELS = (
    "whisper-1",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe",
    "gpt-4o-transcribe-diarize",
    "gpt-transcribe",
    "gpt-live-transcribe",
    "gpt-realtime-whisper",
)
# OpenAI serves gpt-transcribe in realtime only over WebSocket (committed turns); the others over both.
WEBSOCKET_ONLY_MODELS = ("gpt-transcribe",)
MODELS_WITHOUT_PROMPT = ("gpt-4o-transcribe-diarize", "gpt-realtime-whisper")
MODELS_WITHOUT_VAD = ("gpt-realtime-whisper",)
OVERRIDABLE_FIELDS = ("language", "prompt", "noise_reduction")
SESSION_KEYS = (
    "input_audio_format",
    "input_audio_noise_reduction",
    "input_audio_transcription",
    "turn_detection",
    "include",
)
TRANSCRIPTION_KEYS = ("model", "language", "prompt")
TURN_DETECTION_KEYS = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")
PRESET_KEYS = (
    "name",
    "title",
    "description",
    "active",
    "default",
    "session",
    "expires_after_seconds",
    "overridable",
    "rate",
    "daily_quota",
    "groups",
)
MAX_PROMPT_LENGTH = 4000
MIN_EXPIRES_AFTER, MAX_EXPIRES_AFTER = 10, 7200
MAX_VAD_MS = 10000
LANGUAGE_RE = re.compile(r"[a-z]{2}")
SLUG_RE = re.compile(r"[-a-zA-Z0-9_]{1,64}")
# django-ratelimit's syntax: count/[multiplier]period, period one of s, m, h, d. All used with fullmatch
# (a "$" would accept a trailing newline).
RATE_RE = re.compile(r"[1-9][0-9]*/([1-9][0-9]*)?[smhd]")


class PresetValidationError(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()))


class _Errors(dict):
    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unknown_keys(errors: _Errors, prefix: str, value: Mapping, allowed: tuple[str, ...]) -> None:
    for key in value:
        if key not in allowed:
            errors.add(f"{prefix}.{key}" if prefix else str(key), "Unknown field.")


def validate_session(session: Any, prefix: str = "session") -> dict[str, Any]:
    """Validate a preset's `session` (the seed's request fields); return a normalised deep copy.

    Raises PresetValidationError. Normalising means only: `turn_detection.type` defaults to `server_vad`,
    because the GA shape requires it.
    """
    errors = _Errors()
    if not isinstance(session, Mapping):
        raise PresetValidationError({prefix: ["Must be a JSON object."]})
    cleaned: dict[str, Any] = copy.deepcopy(dict(session))
    _unknown_keys(errors, prefix, cleaned, SESSION_KEYS)

    if "input_audio_format" in cleaned and cleaned["input_audio_format"] not in AUDIO_FORMATS:
        errors.add(f"{prefix}.input_audio_format", f"Must be one of {', '.join(AUDIO_FORMATS)}.")

    if "input_audio_noise_reduction" in cleaned:
        _validate_noise_reduction(
            errors, f"{prefix}.input_audio_noise_reduction", cleaned["input_audio_noise_reduction"]
        )

    model = None
    transcription = cleaned.get("input_audio_transcription")
    if "input_audio_transcription" in cleaned:
        field = f"{prefix}.input_audio_transcription"
        if not isinstance(transcription, Mapping):
            errors.add(field, "Must be an object with model, language and prompt.")
        else:
            _unknown_keys(errors, field, transcription, TRANSCRIPTION_KEYS)
            if "model" in transcription:
                model = transcription["model"]
                if not isinstance(model, str) or not model.strip():
                    errors.add(f"{field}.model", "Must be a non-empty string.")
                    model = None
            language = transcription.get("language")
            if language is not None and not (isinstance(language, str) and LANGUAGE_RE.fullmatch(language)):
                errors.add(
                    f"{field}.language", "Must be an ISO-639-1 code: two lowercase letters, like 'fr'."
                )
            if "prompt" in transcription:
                prompt = transcription["prompt"]
                if not isinstance(prompt, str):
                    errors.add(f"{field}.prompt", "Must be a string.")
                elif len(prompt) > MAX_PROMPT_LENGTH:
                    errors.add(f"{field}.prompt", f"At most {MAX_PROMPT_LENGTH} characters.")
                elif model in MODELS_WITHOUT_PROMPT:
                    errors.add(f"{field}.prompt", f"The model {model} does not accept a prompt.")

    if "turn_detection" in cleaned:
        field = f"{prefix}.turn_detection"
        turn_detection = cleaned["turn_detection"]
        if turn_detection is not None:
            if not isinstance(turn_detection, Mapping):
                errors.add(field, "Must be an object or null.")
            else:
                turn_detection = cleaned["turn_detection"] = {"type": "server_vad", **turn_detection}
                _unknown_keys(errors, field, turn_detection, TURN_DETECTION_KEYS)
                if turn_detection["type"] not in TURN_DETECTION_TYPES:
                    errors.add(f"{field}.type", "Must be server_vad.")
                if "threshold" in turn_detection and not (
                    _is_number(turn_detection["threshold"]) and 0.0 <= turn_detection["threshold"] <= 1.0
                ):
                    errors.add(f"{field}.threshold", "Must be a number from 0.0 to 1.0.")
                for key in ("prefix_padding_ms", "silence_duration_ms"):
                    if key in turn_detection and not (
                        _is_int(turn_detection[key]) and 0 <= turn_detection[key] <= MAX_VAD_MS
                    ):
                        errors.add(
                            f"{field}.{key}",
                            f"Must be a whole number of milliseconds from 0 to {MAX_VAD_MS}.",
                        )
    if model in MODELS_WITHOUT_VAD and cleaned.get("turn_detection", "absent") is not None:
        errors.add(
            f"{prefix}.turn_detection", f"Must be null: the model {model} does not support turn detection."
        )

    if "include" in cleaned:
        include = cleaned["include"]
        if not isinstance(include, list) or any(item not in INCLUDE_ITEMS for item in include):
            errors.add(f"{prefix}.include", f"Must be a list drawn from: {', '.join(INCLUDE_ITEMS)}.")

    if errors:
        raise PresetValidationError(dict(errors))
    return cleaned


def _validate_noise_reduction(errors: _Errors, field: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        errors.add(field, 'Must be an object like {"type": "far_field"} or null.')
        return
    _unknown_keys(errors, field, value, ("type",))
    if "type" in value and value["type"] not in NOISE_REDUCTION_TYPES:
        errors.add(f"{field}.type", f"Must be one of {', '.join(NOISE_REDUCTION_TYPES)}.")


def validate_preset(data: Any) -> dict[str, Any]:
    """Validate a whole preset in its JSON format (SPEC §3); return it normalised with defaults filled."""
    if not isinstance(data, Mapping):
        raise PresetValidationError({"preset": ["Must be a JSON object."]})
    errors = _Errors()
    _unknown_keys(errors, "", data, PRESET_KEYS)
    cleaned: dict[str, Any] = {
        "name": data.get("name"),
        "title": data.get("title", ""),
        "description": data.get("description", ""),
        "active": data.get("active", True),
        "default": data.get("default", False),
        "expires_after_seconds": data.get("expires_after_seconds", 60),
        "overridable": data.get("overridable", []),
        "rate": "" if data.get("rate") is None else data["rate"],
        "groups": [] if data.get("groups") is None else data["groups"],
        "daily_quota": data.get("daily_quota"),
    }
    if not isinstance(cleaned["name"], str) or not SLUG_RE.fullmatch(cleaned["name"]):
        errors.add("name", "Required: letters, digits, hyphens or underscores, at most 64.")
    for key in ("title", "description"):
        if not isinstance(cleaned[key], str):
            errors.add(key, "Must be a string.")
    if isinstance(cleaned["title"], str) and len(cleaned["title"]) > 200:
        errors.add("title", "At most 200 characters.")
    for key in ("active", "default"):
        if not isinstance(cleaned[key], bool):
            errors.add(key, "Must be true or false.")
    errors.update(
        _preset_option_errors(cleaned["expires_after_seconds"], cleaned["overridable"], cleaned["rate"])
    )
    quota = cleaned["daily_quota"]
    if quota is not None and not (_is_int(quota) and 1 <= quota <= 1_000_000):
        errors.add(
            "daily_quota", "Must be a whole number of sessions per day (1 or more), or null for no quota."
        )
    groups = cleaned["groups"]
    if not isinstance(groups, list) or not all(isinstance(g, str) and 0 < len(g) <= 150 for g in groups):
        errors.add("groups", "Must be a list of group names (at most 150 characters each).")
    try:
        cleaned["session"] = validate_session(data.get("session", {}))
    except PresetValidationError as exc:
        errors.update(exc.errors)
    if errors:
        raise PresetValidationError(dict(errors))
    return cleaned


def _preset_option_errors(expires_after_seconds: Any, overridable: Any, rate: Any) -> dict[str, list[str]]:
    errors = _Errors()
    if not (
        _is_int(expires_after_seconds) and MIN_EXPIRES_AFTER <= expires_after_seconds <= MAX_EXPIRES_AFTER
    ):
        errors.add(
            "expires_after_seconds",
            f"Must be a whole number of seconds from {MIN_EXPIRES_AFTER} to {MAX_EXPIRES_AFTER}.",
        )
    if not isinstance(overridable, list) or any(item not in OVERRIDABLE_FIELDS for item in overridable):
        errors.add("overridable", f"Must be a list drawn from: {', '.join(OVERRIDABLE_FIELDS)}.")
    elif len(set(overridable)) != len(overridable):
        errors.add("overridable", "Lists a field twice.")
    if rate != "" and (not isinstance(rate, str) or len(rate) > 32 or not RATE_RE.fullmatch(rate)):
        errors.add("rate", "Must look like 5/m (a count per s, m, h or d), or be empty.")
    return dict(errors)


def validate_preset_options(expires_after_seconds: Any, overridable: Any, rate: Any) -> None:
    """The non-session preset rules, for callers (the admin form) that hold fields separately."""
    errors = _preset_option_errors(expires_after_seconds, overridable, rate)
    if errors:
        raise PresetValidationError(errors)


def apply_overrides(session: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a preset's session with a user's allowed overrides merged in, re-validated.

    `overrides` holds only keys of OVERRIDABLE_FIELDS that the preset allows; the result goes through
    `validate_session` again so the model rules hold for the merged session too. Errors are keyed by
    the override's own name (what the user sent), not by the session path.
    """
    merged = copy.deepcopy(dict(session))
    if "language" in overrides or "prompt" in overrides:
        transcription = dict(merged.get("input_audio_transcription") or {})
        for key in ("language", "prompt"):
            if key in overrides:
                if overrides[key] is None:
                    transcription.pop(key, None)  # null means "auto-detect" / "no prompt"
                else:
                    transcription[key] = overrides[key]
        merged["input_audio_transcription"] = transcription
    if "noise_reduction" in overrides:
        value = overrides["noise_reduction"]
        merged["input_audio_noise_reduction"] = None if value is None else {"type": value}
    try:
        return validate_session(merged)
    except PresetValidationError as exc:
        raise PresetValidationError(_errors_by_override(exc.errors)) from None


_OVERRIDE_PATHS = {
    "session.input_audio_transcription.language": "language",
    "session.input_audio_transcription.prompt": "prompt",
    "session.input_audio_noise_reduction": "noise_reduction",
    "session.input_audio_noise_reduction.type": "noise_reduction",
}


def _errors_by_override(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    renamed: dict[str, list[str]] = {}
    for path, messages in errors.items():
        renamed.setdefault(_OVERRIDE_PATHS.get(path, path), []).extend(messages)
    return renamed


def transports_for(model: str | None) -> tuple[str, ...]:
    """The realtime transports a model supports, preferred first (the 201's `connect.transports`)."""
    return ("websocket",) if model in WEBSOCKET_ONLY_MODELS else ("webrtc", "websocket")
