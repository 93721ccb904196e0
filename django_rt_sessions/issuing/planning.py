"""One planning step: (user, preset, overrides, POLICY) → the exact body sent upstream.

The issuing service, `rt_sessions_issue --dry-run` and the admin's upstream preview all call
`plan_session`, so a preview can never differ from what is sent. Planning sends, counts and records
nothing; it raises IssueError for every refusal it finds.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from ..errors import IssueError
from ..models import SessionPreset
from ..policy import PolicyContext, get_policy
from ..presets.validation import validate_preset_options
from ..sessions import catalog
from ..sessions.fields import model_of
from ..sessions.validation import PresetValidationError, apply_overrides, client_turns_for, validate_session
from ..upstreams import Upstream, get_upstream


@dataclass
class Plan:
    preset: SessionPreset
    upstream: Upstream
    session: dict[str, Any]  # the merged, validated session (the beta endpoint's vocabulary)
    expires_after_seconds: int
    body: dict[str, Any]  # what is sent upstream
    # How the browser ends turns when the upstream detects none (the 201's connect.client_turns), or None.
    client_turns: dict[str, Any] | None = None


def plan_session(
    user: Any,
    preset: SessionPreset,
    overrides: Mapping[str, Any],
    *,
    request: HttpRequest | None = None,
    upstream: Upstream | None = None,
) -> Plan:
    """The upstream body for `user` asking `preset` with `overrides` (request fields, already parsed).

    Refusals: 400 override_not_allowed / invalid (the user's overrides); 503 upstream_unavailable when the
    preset itself cannot be served (invalid_preset, model_retired, unsupported_by_upstream, the last two
    named in the audit's error_code); a site POLICY's own Deny.
    """
    upstream = upstream or get_upstream()
    refused = [name for name in overrides if name not in preset.overridable]
    if refused:
        raise IssueError(
            "override_not_allowed",
            f"The preset {preset.name!r} does not let you change: {', '.join(refused)}.",
            errors={name: ["This preset does not allow changing this field."] for name in refused},
        )
    session = _merge(preset, overrides)
    session, expires_after_seconds = _apply_policy(user, preset, session, overrides, request)

    retiring = catalog.retiring(model_of(session))
    if retiring is not None and retiring.is_shut_down():
        raise IssueError(
            "upstream_unavailable",
            "This preset's transcription model has been shut down; the site's staff need to update it.",
            error_code="model_retired",
            error_message=retiring.retirement_notice(preset.name),
        )
    unsupported = upstream.unsupported(session)
    if unsupported:
        raise IssueError(
            "upstream_unavailable",
            "This preset cannot be served by the site's transcription service; its staff need to update it.",
            error_code="unsupported_by_upstream",
            error_message=" ".join(upstream.unsupported_message(token) for token in unsupported),
        )
    body = upstream.build_body(session, expires_after_seconds)
    return Plan(preset, upstream, session, expires_after_seconds, body, _client_turns(preset, session))


def _merge(preset: SessionPreset, overrides: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return apply_overrides(preset.session, overrides)
    except PresetValidationError as exc:
        user_errors = exc.errors
    # Whose mistake? A stored preset that no longer validates (saved before a rule existed) is the site's.
    try:
        validate_session(preset.session)
    except PresetValidationError as exc:
        raise _misconfigured(exc) from None
    raise IssueError("invalid", "Some values are invalid.", errors=user_errors)


def _client_turns(preset: SessionPreset, session: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return client_turns_for(session, preset.client_turns)
    except PresetValidationError as exc:  # stored before a rule existed, or written around the validator
        raise _misconfigured(exc) from None


def _misconfigured(exc: PresetValidationError) -> IssueError:
    """A stored preset that no longer validates is the site's mistake: 503, named for staff in the audit."""
    return IssueError(
        "upstream_unavailable",
        "This preset is misconfigured; the site's staff need to fix it.",
        error_code="invalid_preset",
        error_message=str(exc),
    )


def _apply_policy(
    user: Any,
    preset: SessionPreset,
    session: dict[str, Any],
    overrides: Mapping[str, Any],
    request: HttpRequest | None,
) -> tuple[dict[str, Any], int]:
    """Run the site's POLICY (if any): it may raise policy.Deny, or adjust the session and the TTL."""
    policy = get_policy()
    if policy is None:
        return session, preset.expires_after_seconds
    policy_context = PolicyContext(
        user=user,
        preset=preset,
        session=copy.deepcopy(session),
        expires_after_seconds=preset.expires_after_seconds,
        overrides=dict(overrides),
        request=request,
    )
    policy(policy_context)
    try:
        adjusted = validate_session(policy_context.session)
        validate_preset_options(policy_context.expires_after_seconds, [], "")
    except PresetValidationError as exc:
        raise ImproperlyConfigured(f"RT_SESSIONS['POLICY'] produced an invalid session: {exc}") from None
    return adjusted, policy_context.expires_after_seconds
