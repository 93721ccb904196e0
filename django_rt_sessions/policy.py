"""The POLICY hook: a site's own rules, run for every token request after the preset's.

`RT_SESSIONS["POLICY"]` names a callable (dotted path) that receives a `PolicyContext`. It may refuse
the request by raising `Deny`, or adjust the session in place (`context.session`, in the beta endpoint's
vocabulary, and `context.expires_after_seconds`); the adjusted session goes through the preset validator
again.

    def my_policy(context):
        profile = context.user.profile
        if profile.suspended:
            raise Deny("account_suspended", "Your account is suspended.")
        if profile.language:
            context.session.setdefault("input_audio_transcription", {})["language"] = profile.language
        if profile.plan == "free":
            context.expires_after_seconds = min(context.expires_after_seconds, 30)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.module_loading import import_string

from .conf import rt_settings
from .errors import IssueError

CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass
class PolicyContext:
    user: Any
    preset: Any  # the SessionPreset
    session: dict[str, Any]  # a copy the policy may change
    expires_after_seconds: int
    overrides: dict[str, Any]  # what the user asked to change (already allowed and merged)
    request: HttpRequest | None


class Deny(IssueError):
    """Refuse a request with the site's own stable code and message (shown to the user)."""

    def __init__(self, code: str, detail: str, *, status: int = 403) -> None:
        if not CODE_RE.fullmatch(code):
            raise ValueError(f"A policy code must be a lowercase identifier, not {code!r}.")
        if not 400 <= status <= 499:
            raise ValueError("A policy refusal is a 4xx status.")
        super().__init__(code, detail, status=status)


def get_policy() -> Callable[[PolicyContext], Any] | None:
    path = rt_settings.POLICY
    if not path:
        return None
    if callable(path):
        return path
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"RT_SESSIONS['POLICY'] {path!r} cannot be imported: {exc}") from exc
