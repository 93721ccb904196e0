"""The one validator of a whole preset in its JSON format (docs/presets.md): the import command and the
admin form call it; the session inside goes to `sessions.validation`.

Lengths come from the model's own fields, so the validator, the database and the OpenAPI schema agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import Group

from ..models import SessionPreset, max_length
from ..redaction import storable, unstorable_reason
from ..sessions.fields import OVERRIDABLE_FIELDS, RELAY_FIELDS
from ..sessions.rules import is_int, show_value
from ..sessions.validation import (
    Capabilities,
    FieldErrors,
    PresetValidationError,
    validate_client_turns,
    validate_relay_options,
    validate_session,
)

__all__ = [
    "MAX_EXPIRES_AFTER",
    "MIN_EXPIRES_AFTER",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "PRESET_KEYS",
    "RATE_RE",
    "TITLE_MAX_LENGTH",
    "validate_preset",
    "validate_preset_options",
]

PRESET_KEYS = (
    "name",
    "title",
    "description",
    "active",
    "default",
    "session",
    "client_turns",
    "expires_after_seconds",
    "overridable",
    "rate",
    "daily_quota",
    "groups",
    *(spec.name for spec in RELAY_FIELDS),
)
MIN_EXPIRES_AFTER, MAX_EXPIRES_AFTER = 10, 7200
MAX_DAILY_QUOTA = 1_000_000


NAME_MAX_LENGTH = max_length(SessionPreset, "name")
TITLE_MAX_LENGTH = max_length(SessionPreset, "title")
RATE_MAX_LENGTH = max_length(SessionPreset, "rate")
GROUP_NAME_MAX_LENGTH = max_length(Group, "name")
# A slug, as the model's SlugField accepts it (used with fullmatch: a "$" would accept a trailing newline).
NAME_PATTERN = f"[-a-zA-Z0-9_]{{1,{NAME_MAX_LENGTH}}}"
NAME_RE = re.compile(NAME_PATTERN)
# django-ratelimit's syntax: count/[multiplier]period, period one of s, m, h, d (fullmatch).
RATE_RE = re.compile(r"[1-9][0-9]*/([1-9][0-9]*)?[smhd]")


def validate_preset(data: Any, *, upstream: Capabilities | None = None) -> dict[str, Any]:
    """Validate a whole preset in its JSON format; return it normalised with defaults filled.

    With `upstream` (the configured one, when saving or importing), the session must be one it can send.
    """
    if not isinstance(data, Mapping):
        raise PresetValidationError({"preset": ["Must be a JSON object."]})
    errors = FieldErrors()
    for key in data:
        if key not in PRESET_KEYS:
            errors.add(
                storable(str(key)), f"Unknown field; the fields of a preset are: {', '.join(PRESET_KEYS)}."
            )
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
    if not isinstance(cleaned["name"], str) or not NAME_RE.fullmatch(cleaned["name"]):
        errors.add(
            "name",
            f"{show_value(cleaned['name'])} is not a preset name: letters, digits, hyphens or underscores, "
            f"at most {NAME_MAX_LENGTH}.",
        )
    for key in ("title", "description"):
        value = cleaned[key]
        if not isinstance(value, str):
            errors.add(key, f"{show_value(value)} is not a string.")
        elif unstorable_reason(value):
            errors.add(key, f"The text {unstorable_reason(value)}.")
    if isinstance(cleaned["title"], str) and len(cleaned["title"]) > TITLE_MAX_LENGTH:
        errors.add(
            "title", f"Has {len(cleaned['title'])} characters; at most {TITLE_MAX_LENGTH} are allowed."
        )
    for key in ("active", "default"):
        if not isinstance(cleaned[key], bool):
            errors.add(key, f"{show_value(cleaned[key])} is not true or false.")
    errors.update(
        _preset_option_errors(cleaned["expires_after_seconds"], cleaned["overridable"], cleaned["rate"])
    )
    quota = cleaned["daily_quota"]
    if quota is not None and not (is_int(quota) and 1 <= quota <= MAX_DAILY_QUOTA):
        errors.add(
            "daily_quota",
            f"{show_value(quota)} is not a whole number of sessions per day (1 or more), or null for no "
            "quota.",
        )
    groups = cleaned["groups"]
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and 0 < len(g) <= GROUP_NAME_MAX_LENGTH and not unstorable_reason(g)
        for g in groups
    ):
        errors.add(
            "groups", f"Must be a list of group names (at most {GROUP_NAME_MAX_LENGTH} characters each)."
        )
    try:
        cleaned["session"] = validate_session(data.get("session", {}), upstream=upstream)
    except PresetValidationError as exc:
        errors.update(exc.errors)
    try:
        cleaned["client_turns"] = validate_client_turns(data.get("client_turns"))
    except PresetValidationError as exc:
        errors.update(exc.errors)
    try:
        cleaned.update(validate_relay_options(data))
    except PresetValidationError as exc:
        errors.update(exc.errors)
    if errors:
        raise PresetValidationError(dict(errors))
    return cleaned


def _preset_option_errors(expires_after_seconds: Any, overridable: Any, rate: Any) -> dict[str, list[str]]:
    errors = FieldErrors()
    if not (
        is_int(expires_after_seconds) and MIN_EXPIRES_AFTER <= expires_after_seconds <= MAX_EXPIRES_AFTER
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
    if rate != "" and (
        not isinstance(rate, str) or len(rate) > RATE_MAX_LENGTH or not RATE_RE.fullmatch(rate)
    ):
        errors.add(
            "rate", f"{show_value(rate)} does not look like 5/m (a count per s, m, h or d), nor is it empty."
        )
    return dict(errors)


def validate_preset_options(expires_after_seconds: Any, overridable: Any, rate: Any) -> None:
    """The non-session preset rules, for callers (the admin form) that hold fields separately."""
    errors = _preset_option_errors(expires_after_seconds, overridable, rate)
    if errors:
        raise PresetValidationError(errors)
