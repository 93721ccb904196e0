"""A DRF parser that only reads the body, boundedly, and never raises.

DRF parses the body while SessionAuthentication checks CSRF (Django's check reads `request.POST`), that
is before the user is known. A JSON syntax error raised there would escape the audit log and DRF's
`parse_error` code. This parser just captures at most MAX_BODY_BYTES; the issuing service decodes the JSON
once the user is authenticated (payload.py), so every refusal is audited with the `invalid` code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.parsers import BaseParser

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
