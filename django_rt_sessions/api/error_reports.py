"""Django's error reports for requests the app serves hold no ephemeral key and no API key, DEBUG or not.

With `DEBUG = True` Django switches its exception reporter filter off (`sensitive_variables` hides nothing)
and the debug page shows every local variable of every frame. Rendering that page also logs, at DEBUG on
the `django.template` logger, the repr of its template context, frames and variables included: a key in
hand when something fails would be in the log of any site that logs `django.template` at DEBUG.

`protect(request)` (called by the app's views: the token endpoint and the admin's test-token view) gives
that request a filter that stays on whatever DEBUG says, and a reporter that removes anything shaped like
a key or a relay ticket, and the configured API key, from every string it shows, before the page (or the mail
to ADMINS) is rendered. Both subclass the site's own DEFAULT_EXCEPTION_REPORTER(_FILTER).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string
from django.views.debug import get_default_exception_reporter_filter

from ..redaction import redact


class _Shown:
    """Stands for a value whose representation held a secret: shows that representation, redacted."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(item) for item in value)
    try:
        shown = repr(value)
    except Exception:  # a broken __repr__: Django's reporter copes with those itself
        return value
    cleaned = redact(shown)
    return value if cleaned == shown else _Shown(cleaned)


class _AlwaysOnFilter:
    """Mixed into the site's exception reporter filter."""

    def is_active(self, request: HttpRequest | None) -> bool:
        return True  # sensitive_variables and sensitive_post_parameters apply under DEBUG too

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)  # type: ignore[misc]
        return [(name, _redact_value(value)) for name, value in variables]


class _RedactingReporter:
    """Mixed into the site's exception reporter class."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()  # type: ignore[misc]
        return {key: _redact_value(value) for key, value in data.items()}


_subclasses: dict[tuple[type, type], type] = {}


def _subclass(mixin: type, base: type) -> type:
    key = (mixin, base)
    if key not in _subclasses:
        _subclasses[key] = type(f"RtSessions{base.__name__}", (mixin, base), {"__module__": __name__})
    return _subclasses[key]


def protect(request: HttpRequest) -> None:
    """Make Django's error report of this request (debug page, ADMINS mail) free of secrets."""
    site_filter = type(get_default_exception_reporter_filter())
    site_reporter = import_string(settings.DEFAULT_EXCEPTION_REPORTER)
    request.exception_reporter_filter = _subclass(_AlwaysOnFilter, site_filter)()
    request.exception_reporter_class = _subclass(_RedactingReporter, site_reporter)
