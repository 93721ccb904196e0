"""The one validator for presets: the admin form, the import command and the API all call it.

It reads every rule from the description of the session fields (`session_fields.FIELDS`). Errors are
collected into `{"dotted.field.path": ["message", ...]}` so every caller can put each message next to the
field it concerns; each message names the bad value.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Protocol

from .session_fields import (
    FIELDS,
    KNOWN_MODELS,
    MODELS_BY_NAME,
    OVERRIDABLE_FIELDS,
    UNSTORABLE,
    FieldIndex,
    SessionField,
    index,
    model_of,
    show_value,
    transports_for,
    unstorable_reason,
)

__all__ = [
    "KNOWN_MODELS",
    "OVERRIDABLE_FIELDS",
    "PresetValidationError",
    "apply_overrides",
    "override_paths",
    "transports_for",
    "validate_preset",
    "validate_preset_options",
    "validate_session",
]

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
MIN_EXPIRES_AFTER, MAX_EXPIRES_AFTER = 10, 7200
SLUG_RE = re.compile(r"[-a-zA-Z0-9_]{1,64}")
# django-ratelimit's syntax: count/[multiplier]period, period one of s, m, h, d. All used with fullmatch
# (a "$" would accept a trailing newline).
RATE_RE = re.compile(r"[1-9][0-9]*/([1-9][0-9]*)?[smhd]")


class Capabilities(Protocol):
    """What the validator asks of an upstream adapter (`upstreams.base.Upstream`)."""

    @property
    def name(self) -> str: ...

    def unsupported(self, session: Mapping[str, Any]) -> list[str]: ...

    def unsupported_message(self, token: str) -> str: ...


class PresetValidationError(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()))


class _Errors(dict):
    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)


def _where(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def _key(key: Any) -> str:
    # A key is echoed in an error: make it printable and storable whatever it holds.
    return UNSTORABLE.sub("\ufffd", str(key))


def validate_session(
    session: Any,
    prefix: str = "session",
    *,
    upstream: Capabilities | None = None,
    fields: tuple[SessionField, ...] = FIELDS,
) -> dict[str, Any]:
    """Validate a preset's `session` (the beta endpoint's request fields); return a normalised deep copy.

    With `upstream`, also refuse what that upstream cannot send. Normalising means only filling the
    defaults the description names (`turn_detection.type`: the GA shape requires one). Raises
    PresetValidationError.
    """
    if not isinstance(session, Mapping):
        raise PresetValidationError({prefix: ["Must be a JSON object."]})
    fields_index = index(fields)
    errors = _Errors()
    cleaned = _check_object(errors, fields_index, prefix, "", session)
    _check_model_rules(errors, fields_index, prefix, cleaned)
    if upstream is not None and not errors:
        for token in upstream.unsupported(cleaned):
            errors.add(_where(prefix, token.partition("=")[0]), upstream.unsupported_message(token))
    if errors:
        raise PresetValidationError(dict(errors))
    return cleaned


def _check_object(
    errors: _Errors, fields_index: FieldIndex, prefix: str, path: str, obj: Mapping[str, Any]
) -> dict[str, Any]:
    children = {spec.name: spec for spec in fields_index.children.get(path, [])}
    cleaned: dict[str, Any] = {}
    for key, value in obj.items():
        spec = children.get(key) if isinstance(key, str) else None
        if spec is None:
            allowed = ", ".join(children)
            errors.add(
                _where(prefix, _where(path, _key(key))), f"Unknown field; the fields here are: {allowed}."
            )
            continue
        cleaned[key] = _check_value(errors, fields_index, prefix, spec, value)
    for name, spec in children.items():
        if name in obj:
            continue
        if spec.default is not None:
            cleaned[name] = spec.default
        elif spec.required:
            errors.add(_where(prefix, spec.path), "Required.")
    order = list(children)
    for name, value in cleaned.items():
        spec = children[name]
        if spec.when is not None and value is not None:
            sibling, values = spec.when
            actual = cleaned.get(sibling)
            if actual not in values:
                errors.add(
                    _where(prefix, spec.path),
                    f"Only used with {sibling} {' or '.join(values)}, not {show_value(actual)}.",
                )
        if spec.replaces in cleaned and order.index(name) > order.index(spec.replaces or ""):
            errors.add(_where(prefix, spec.path), f"Give {spec.replaces} or {name}, not both.")
    return cleaned


def _check_value(
    errors: _Errors, fields_index: FieldIndex, prefix: str, spec: SessionField, value: Any
) -> Any:
    where = _where(prefix, spec.path)
    if value is None and spec.nullable:
        return None
    if spec.rule.kind == "object":
        if not isinstance(value, Mapping):
            errors.add(where, f"{show_value(value)} is not an object{' or null' if spec.nullable else ''}.")
            return value
        return _check_object(errors, fields_index, prefix, spec.path, value)
    problem = spec.rule.problem(value)
    if problem:
        errors.add(where, problem)
    return copy.deepcopy(value)


def _lookup(obj: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = obj
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return False, None
        value = value[key]
    return True, value


def _check_model_rules(
    errors: _Errors, fields_index: FieldIndex, prefix: str, session: Mapping[str, Any]
) -> None:
    model = model_of(session)
    if model not in MODELS_BY_NAME:
        return  # a model the app does not know gets the generic rules only
    for spec in fields_index.fields:
        present, value = _lookup(session, spec.path)
        where = _where(prefix, spec.path)
        if model in spec.null_for_models and (not present or value is not None):
            what = str(spec.label).lower()
            errors.add(where, f"Must be null: {model} does not support {what} (absent means on).")
        if not present or value is None:
            continue
        if spec.only_models and model not in spec.only_models:
            errors.add(where, f"{model} does not accept {spec.name}: only {', '.join(spec.only_models)} do.")
        if model in spec.excluded_models:
            errors.add(where, f"{model} does not accept {spec.name}.")


def override_paths(fields: tuple[SessionField, ...] = FIELDS) -> dict[str, str]:
    """Validator path -> the request field (override) whose value lands there."""
    paths: dict[str, str] = {}
    for name, spec in index(fields).by_override.items():
        paths[f"session.{spec.path}"] = name
        if spec.override_null_off:
            paths[f"session.{spec.parent}"] = name
    return paths


def apply_overrides(
    session: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *,
    fields: tuple[SessionField, ...] = FIELDS,
) -> dict[str, Any]:
    """Return a copy of a preset's session with a user's allowed overrides merged in, re-validated.

    `overrides` holds only request fields of OVERRIDABLE_FIELDS. A value sets its field; null removes it
    (or, for noise reduction, turns the feature off); a field that `replaces` another drops it, so a
    `language` on a preset with `languages` never sends both. The result goes through `validate_session`
    again so the model rules hold for the merged session too; errors are keyed by the override's own name
    where the override caused them.
    """
    by_override = index(fields).by_override
    merged: dict[str, Any] = copy.deepcopy(dict(session))
    for name, value in overrides.items():
        spec = by_override[name]
        parent = merged
        for key in spec.parent.split(".") if spec.parent else ():
            if value is None and not isinstance(parent.get(key), Mapping):
                parent = {}  # nothing there to remove
                break
            if not isinstance(parent.get(key), Mapping):
                parent[key] = {}
            parent = parent[key]
        if value is None:
            if spec.override_null_off:
                _set(merged, spec.parent, None)
            else:
                parent.pop(spec.name, None)
        else:
            parent[spec.name] = value
            if spec.replaces:
                parent.pop(spec.replaces, None)
    try:
        return validate_session(merged, fields=fields)
    except PresetValidationError as exc:
        paths = override_paths(fields)
        renamed: dict[str, list[str]] = {}
        for path, messages in exc.errors.items():
            renamed.setdefault(paths.get(path, path), []).extend(messages)
        raise PresetValidationError(renamed) from None


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        obj = obj.setdefault(key, {})
    obj[leaf] = value


def validate_preset(data: Any, *, upstream: Capabilities | None = None) -> dict[str, Any]:
    """Validate a whole preset in its JSON format; return it normalised with defaults filled.

    With `upstream` (the configured one, when saving or importing), the session must be one it can send.
    """
    if not isinstance(data, Mapping):
        raise PresetValidationError({"preset": ["Must be a JSON object."]})
    errors = _Errors()
    for key in data:
        if key not in PRESET_KEYS:
            errors.add(_key(key), f"Unknown field; the fields of a preset are: {', '.join(PRESET_KEYS)}.")
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
        errors.add(
            "name",
            f"{show_value(cleaned['name'])} is not a preset name: letters, digits, hyphens or underscores, "
            "at most 64.",
        )
    for key in ("title", "description"):
        value = cleaned[key]
        if not isinstance(value, str):
            errors.add(key, f"{show_value(value)} is not a string.")
        elif unstorable_reason(value):
            errors.add(key, f"The text {unstorable_reason(value)}.")
    if isinstance(cleaned["title"], str) and len(cleaned["title"]) > 200:
        errors.add("title", f"Has {len(cleaned['title'])} characters; at most 200 are allowed.")
    for key in ("active", "default"):
        if not isinstance(cleaned[key], bool):
            errors.add(key, f"{show_value(cleaned[key])} is not true or false.")
    errors.update(
        _preset_option_errors(cleaned["expires_after_seconds"], cleaned["overridable"], cleaned["rate"])
    )
    quota = cleaned["daily_quota"]
    if quota is not None and not (_is_int(quota) and 1 <= quota <= 1_000_000):
        errors.add(
            "daily_quota",
            f"{show_value(quota)} is not a whole number of sessions per day (1 or more), or null for no "
            "quota.",
        )
    groups = cleaned["groups"]
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and 0 < len(g) <= 150 and not unstorable_reason(g) for g in groups
    ):
        errors.add("groups", "Must be a list of group names (at most 150 characters each).")
    try:
        cleaned["session"] = validate_session(data.get("session", {}), upstream=upstream)
    except PresetValidationError as exc:
        errors.update(exc.errors)
    if errors:
        raise PresetValidationError(dict(errors))
    return cleaned


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _preset_option_errors(expires_after_seconds: Any, overridable: Any, rate: Any) -> dict[str, list[str]]:
    errors = _Errors()
    if not (
        _is_int(expires_after_seconds) and MIN_EXPIRES_AFTER <= expires_after_seconds <= MAX_EXPIRES_AFTER
    ):
        errors.add(
            "expires_after_seconds",
            f"{show_value(expires_after_seconds)} is not a whole number of seconds from {MIN_EXPIRES_AFTER} "
            f"to {MAX_EXPIRES_AFTER}.",
        )
    if not isinstance(overridable, list):
        errors.add("overridable", f"{show_value(overridable)} is not a list.")
    else:
        unknown = [item for item in overridable if item not in OVERRIDABLE_FIELDS]
        if unknown:
            errors.add(
                "overridable",
                f"{show_value(unknown[0])} is not one of {', '.join(OVERRIDABLE_FIELDS)}.",
            )
        elif len(set(overridable)) != len(overridable):
            errors.add("overridable", "Lists a field twice.")
    if rate != "" and (not isinstance(rate, str) or len(rate) > 32 or not RATE_RE.fullmatch(rate)):
        errors.add(
            "rate", f"{show_value(rate)} does not look like 5/m (a count per s, m, h or d), nor is it empty."
        )
    return dict(errors)


def validate_preset_options(expires_after_seconds: Any, overridable: Any, rate: Any) -> None:
    """The non-session preset rules, for callers (the admin form) that hold fields separately."""
    errors = _preset_option_errors(expires_after_seconds, overridable, rate)
    if errors:
        raise PresetValidationError(errors)
