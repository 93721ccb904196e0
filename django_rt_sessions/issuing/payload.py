"""The token request's body: read from the HTTP request (bounded, never raising), then decoded and checked
into (preset name, overrides), refusing what cannot be used.

DRF parses the body while SessionAuthentication checks CSRF (Django's check reads `request.POST`), that
is before the user is known. A JSON syntax error raised there would escape the audit log and DRF's
`parse_error` code. So `RawBodyParser` only captures at most MAX_BODY_BYTES; the issuing service decodes
the JSON once the user is authenticated (`decode_body`), so every refusal is audited with the `invalid`
code.

Everything here raises IssueError("invalid") with a message that names the bad field or value, and never
anything else. Strings that could not be stored in the audit row or sent upstream (NUL, unpaired
surrogates) are refused before anything else reads them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rest_framework.parsers import BaseParser

from ..errors import IssueError
from ..redaction import unstorable_reason
from ..sessions.fields import FIELDS, SessionField, index
from ..sessions.rules import show_value

MAX_BODY_BYTES = 8 * 1024


class RawBody(dict):
    """Empty mapping (so Django's CSRF check can call `.get()` on it) carrying the raw bytes."""

    def __init__(self, raw: bytes = b"", *, too_large: bool = False, media_type: str = "") -> None:
        super().__init__()
        self.raw = raw
        self.too_large = too_large
        self.media_type = media_type


class RawBodyParser(BaseParser):
    media_type = "*/*"

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> RawBody:
        request = (parser_context or {}).get("request")
        meta = getattr(request, "META", {}) or {}
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = MAX_BODY_BYTES + 1
        if declared > MAX_BODY_BYTES:
            return RawBody(too_large=True, media_type=media_type or "")
        raw = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        return RawBody(raw, too_large=len(raw) > MAX_BODY_BYTES, media_type=media_type or "")


# The body is JSON, said so or left unsaid (curl -d without -H, some fetch wrappers): docs/http-api.md.
JSON_CONTENT_TYPES = ("application/json", "")
# The body is a flat object (its lists hold strings), so anything deeper is malformed; the bound also
# keeps json.loads far from the interpreter's recursion limit.
MAX_DEPTH = 8


def decode_body(body: RawBody) -> Any:
    """The body as JSON, at most MAX_BODY_BYTES, every string storable."""
    if body.too_large:
        raise IssueError("invalid", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    media_type = body.media_type.split(";")[0].strip().lower()
    if media_type not in JSON_CONTENT_TYPES:
        raise IssueError(
            "invalid",
            f"Content-Type {show_value(media_type)} is not JSON: send a JSON object with Content-Type: "
            "application/json.",
        )
    if not body.raw.strip():
        return {}
    if _nesting(body.raw) > MAX_DEPTH:
        raise IssueError("invalid", f"The body is nested more than {MAX_DEPTH} levels deep.")
    try:
        data = json.loads(body.raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise IssueError("invalid", "The body is not valid JSON.") from None
    _check_strings(data)
    return data


def _nesting(raw: bytes) -> int:
    """The deepest bracket nesting of a JSON text, counted outside strings (an upper bound is enough)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _check_strings(data: Any) -> None:
    """Refuse NUL characters and unpaired surrogates in any key or value (iteratively: no recursion)."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            _refuse_text(where, value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                _refuse_text(where, key, is_key=True)
                pending.append((f"{where}.{key}" if where else key, item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{i}]", item) for i, item in enumerate(value))


def _refuse_text(where: str, text: str, *, is_key: bool = False) -> None:
    reason = unstorable_reason(text)
    if reason is None:
        return
    # The field name may itself be the bad text: name only the part of the path that is clean.
    clean_where = where if unstorable_reason(where) is None else ""
    if is_key:
        place = f"A field name in {clean_where!r}" if clean_where else "A field name"
    else:
        place = f"The value of {clean_where!r}" if clean_where else "A value"
    raise IssueError(
        "invalid",
        f"{place} {reason}, which cannot be stored or sent.",
        errors={clean_where or "body": [f"The text {reason}."]},
    )


def parse_overrides(
    payload: Any, *, fields: tuple[SessionField, ...] = FIELDS
) -> tuple[str | None, dict[str, Any]]:
    """Check the decoded body's shape and each value; return (preset name or None, overrides)."""
    if not isinstance(payload, Mapping):
        raise IssueError("invalid", "The body must be a JSON object.")
    by_override = index(fields).by_override
    errors: dict[str, list[str]] = {}
    known = ("preset", *by_override)
    for key in payload:
        if key not in known:
            errors[str(key)] = [f"Unknown field; the fields are: {', '.join(known)}."]
    preset = payload.get("preset")
    if preset is not None and not isinstance(preset, str):
        errors["preset"] = [f"{show_value(preset)} is not a preset name."]
    overrides = {name: payload[name] for name in by_override if name in payload}
    for name, value in overrides.items():
        problem = None if value is None else by_override[name].rule.problem(value)
        if problem:
            errors[name] = [problem]
    for name, value in overrides.items():
        other = by_override[name].replaces
        if value is not None and other in overrides and overrides[other] is not None and other not in errors:
            errors.setdefault(name, []).append(f"Send {name} or {other}, not both.")
            break
    if errors:
        raise IssueError("invalid", "Some fields are invalid.", errors=errors)
    return preset, overrides
