"""The one validator of a preset's session, used by the admin form, the import command, the API's merged
overrides and the re-validation of what a site's POLICY changed.

It reads every rule from the description of the session fields (`sessions.fields.FIELDS`) and the known
models (`sessions.catalog`). Errors are collected into `{"dotted.field.path": ["message", ...]}` so every
caller can put each message next to the field it concerns; each message names the bad value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from ..redaction import storable
from . import catalog
from .fields import (
    CLIENT_TURNS_FIELDS,
    FIELDS,
    RELAY_FIELDS,
    FieldIndex,
    SessionField,
    index,
    lookup,
    model_of,
    set_path,
)
from .rules import show_value

__all__ = [
    "Capabilities",
    "FieldErrors",
    "PresetValidationError",
    "apply_overrides",
    "client_turns_for",
    "field_path",
    "override_paths",
    "validate_client_turns",
    "validate_relay_options",
    "validate_session",
]


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


class FieldErrors(dict):
    """Messages by dotted field path, as PresetValidationError carries them."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)


def field_path(prefix: str, path: str) -> str:
    """The dotted path of `path` below `prefix` ("session" for a preset's session)."""
    return f"{prefix}.{path}" if prefix and path else prefix or path


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
    errors = FieldErrors()
    cleaned = _check_object(errors, fields_index, prefix, "", session)
    _check_model_rules(errors, fields_index, prefix, cleaned)
    if upstream is not None and not errors:
        for token in upstream.unsupported(cleaned):
            errors.add(field_path(prefix, token.partition("=")[0]), upstream.unsupported_message(token))
    if errors:
        raise PresetValidationError(dict(errors))
    return cleaned


def _check_object(
    errors: FieldErrors, fields_index: FieldIndex, prefix: str, path: str, obj: Mapping[str, Any]
) -> dict[str, Any]:
    children = {spec.name: spec for spec in fields_index.children.get(path, [])}
    cleaned: dict[str, Any] = {}
    for key, value in obj.items():
        spec = children.get(key) if isinstance(key, str) else None
        if spec is None:
            allowed = ", ".join(children)
            errors.add(
                field_path(prefix, field_path(path, storable(str(key)))),
                f"Unknown field; the fields here are: {allowed}.",
            )
            continue
        cleaned[key] = _check_value(errors, fields_index, prefix, spec, value)
    for name, spec in children.items():
        if name in obj:
            continue
        if spec.default is not None:
            cleaned[name] = spec.default
        elif spec.required:
            errors.add(field_path(prefix, spec.path), "Required.")
    order = list(children)
    for name, value in cleaned.items():
        spec = children[name]
        if spec.when is not None and value is not None:
            sibling, values = spec.when
            actual = cleaned.get(sibling)
            if actual not in values:
                errors.add(
                    field_path(prefix, spec.path),
                    f"Only used with {sibling} {' or '.join(values)}, not {show_value(actual)}.",
                )
        if spec.replaces in cleaned and order.index(name) > order.index(spec.replaces or ""):
            errors.add(field_path(prefix, spec.path), f"Give {spec.replaces} or {name}, not both.")
    return cleaned


def _check_value(
    errors: FieldErrors, fields_index: FieldIndex, prefix: str, spec: SessionField, value: Any
) -> Any:
    where = field_path(prefix, spec.path)
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


def _check_model_rules(
    errors: FieldErrors, fields_index: FieldIndex, prefix: str, session: Mapping[str, Any]
) -> None:
    """The known model's rules (sessions/catalog.py); a model the app does not know gets none of them."""
    name = model_of(session)
    known = catalog.model(name)
    if known is None:
        return
    for spec in fields_index.fields:
        present, value = lookup(session, spec.path)
        if not present or value is None:
            continue
        where = field_path(prefix, spec.path)
        if spec.server_turns and not known.server_vad:
            errors.add(
                where,
                f"{known.name} takes no server turn detection: set it to null (off); the browser client "
                "then commits each turn itself (client_turns).",
            )
        if spec.per_model and not known.takes(spec.name):
            errors.add(where, catalog.refusal(known.name, spec.name))


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
                set_path(merged, spec.parent, None)
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


def validate_client_turns(value: Any, prefix: str = "client_turns") -> dict[str, Any] | None:
    """A preset's `client_turns` (null, or an object of CLIENT_TURNS_FIELDS), with its defaults filled."""
    if value is None:
        return None
    return validate_session(value, prefix, fields=CLIENT_TURNS_FIELDS)


def client_turns_for(session: Mapping[str, Any], configured: Any) -> dict[str, Any] | None:
    """How the browser ends turns for a (valid) session: None when the upstream detects turns (server or
    semantic VAD, or turn_detection absent for a model that takes server VAD), else the preset's
    `client_turns` with the defaults filled in (the 201's `connect.client_turns`)."""
    if "turn_detection" in session:
        upstream_detects = session["turn_detection"] is not None
    else:
        upstream_detects = catalog.takes_server_vad(model_of(session))
    if upstream_detects:
        return None
    return validate_client_turns(configured or {})


def validate_relay_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """A preset's relay options (RELAY_FIELDS) as given (a JSON preset's keys, or the admin form's filled
    fields): all of them returned, defaults filled. A limit given (not null) on a preset that is not a relay
    preset is refused with a field error: it would enforce nothing."""
    options = {spec.name: given[spec.name] for spec in RELAY_FIELDS if spec.name in given}
    cleaned = validate_session(options, "", fields=RELAY_FIELDS)
    if cleaned.get("relay") is not True:
        errors = FieldErrors()
        for spec in RELAY_FIELDS:
            if spec.relay_only and options.get(spec.name) is not None:
                errors.add(
                    spec.name,
                    f"Only a relay preset enforces {spec.name}: set relay to true, or leave it out.",
                )
        if errors:
            raise PresetValidationError(dict(errors))
    return {spec.name: cleaned.get(spec.name, spec.default) for spec in RELAY_FIELDS}
