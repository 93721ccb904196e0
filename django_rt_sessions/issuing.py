"""The issuing service: preset → access → overrides → rate limits → upstream → audit row.

Callable without HTTP (the API view and `rt_sessions_issue` both use it). Every call that is not a dry
run records exactly one `TokenRequest`, whatever the outcome, before it returns or raises.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError, connections
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables

from . import preset_cache, quotas, signals, throttling
from .conf import rt_settings
from .errors import IssueError
from .models import SessionPreset, TokenRequest
from .policy import PolicyContext, get_policy
from .preset_cache import ResolvedPreset
from .presets import (
    OVERRIDABLE_FIELDS,
    PresetValidationError,
    apply_overrides,
    validate_preset_options,
    validate_session,
)
from .upstreams import UpstreamFailure, get_config, get_upstream

logger = logging.getLogger("django_rt_sessions.issuing")

REQUEST_FIELDS = ("preset", *OVERRIDABLE_FIELDS)
NOISE_REDUCTION_CHOICES = ("near_field", "far_field")
DATABASE_DOWN_ERRORS = (OperationalError, InterfaceError)


@dataclass
class IssueContext:
    """Who asks and from where; `request` is None outside HTTP."""

    user: Any
    request: HttpRequest | None = None
    client_ip: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, user: Any) -> IssueContext:
        return cls(
            user=user,
            request=request,
            client_ip=throttling.client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
        )


@dataclass
class IssuedSession:
    # The 201 body: the seed's "Returns" shape plus `preset` and `connect`. Holds the ephemeral key.
    body: dict[str, Any] = field(repr=False)
    token_request: TokenRequest | None
    upstream_body: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Attempt:
    """What is known so far, for the audit row."""

    preset: SessionPreset | None = None
    preset_name: str = ""
    upstream_name: str = ""
    upstream_body: dict[str, Any] | None = None


@sensitive_variables("issued")
def issue_session(context: IssueContext, payload: Any, *, dry_run: bool = False) -> IssuedSession:
    """Issue one ephemeral transcription key for `context.user` as `payload` asks (SPEC §4 body).

    Raises IssueError (with a SPEC code) on refusal. With dry_run, nothing is sent, counted or audited.
    """
    attempt = _Attempt()
    if not dry_run:
        _send(signals.token_requested, user=context.user, payload=payload, request=context.request)
    try:
        issued = _issue(context, payload, attempt, dry_run)
    except IssueError as error:
        if not dry_run:
            error.token_request = _record_failure(context, attempt, error)
            _send(
                signals.token_denied,
                token_request=error.token_request,
                user=context.user,
                code=error.code,
                status=error.status,
                request=context.request,
            )
        raise
    except Exception as exc:
        if not dry_run:
            down = isinstance(exc, DATABASE_DOWN_ERRORS)
            try:
                # What the client sees: 503 service_unavailable for a database outage, else a 500.
                seen = (
                    IssueError("service_unavailable")
                    if down
                    else IssueError("upstream_error", "Internal error.")
                )
                _record_failure(context, attempt, seen, status_code=None if down else 500)
            except DATABASE_DOWN_ERRORS:
                # Nothing can be audited, so nothing is handed out either: the view answers 503.
                logger.error("The audit row of a failed token request could not be written: database down.")
        raise
    if not dry_run:
        _send(
            signals.token_issued,
            token_request=issued.token_request,
            user=context.user,
            preset=attempt.preset,
            request=context.request,
        )
    return issued


def _send(signal: Signal, **kwargs: Any) -> None:
    """Send a signal; a failing receiver is logged, never turned into an error for the user."""
    for receiver, response in signal.send_robust(sender=TokenRequest, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of a django-rt-sessions signal failed: %r",
                receiver,
                exc_info=(type(response), response, response.__traceback__),
            )


def record_refusal(context: IssueContext, error: IssueError) -> TokenRequest:
    """Audit a request refused before the service could read it (malformed body, too large)."""
    return _record_failure(context, _Attempt(), error)


@sensitive_variables("config", "result", "body", "issued")
def _issue(context: IssueContext, payload: Any, attempt: _Attempt, dry_run: bool) -> IssuedSession:
    overrides = _parse_payload(payload)
    preset_name = payload.get("preset")
    attempt.preset_name = preset_name or ""
    resolved = _resolve_preset(preset_name)
    preset = resolved.preset
    attempt.preset, attempt.preset_name = preset, preset.name
    _check_access(context.user, resolved)
    refused = [name for name in overrides if name not in preset.overridable]
    if refused:
        raise IssueError(
            "override_not_allowed",
            f"The preset {preset.name!r} does not let you change: {', '.join(refused)}.",
            errors={name: ["This preset does not allow changing this field."] for name in refused},
        )
    try:
        session = apply_overrides(preset.session, overrides)
    except PresetValidationError as exc:
        raise IssueError("invalid", "Some values are invalid.", errors=exc.errors) from None
    session, expires_after_seconds = _apply_policy(context, preset, session, overrides)

    upstream = get_upstream()
    attempt.upstream_name = upstream.name
    upstream_body = attempt.upstream_body = upstream.build_body(session, expires_after_seconds)
    if dry_run:
        return IssuedSession(body={}, token_request=None, upstream_body=upstream_body)

    throttling.check_limits(
        context.user, preset, context.request, user_rate=rt_settings.USER_RATE, ip_rate=rt_settings.IP_RATE
    )
    quota = quotas.reserve(context.user, preset)
    config = get_config()
    _release_pooled_connections()
    try:
        result = upstream.create_session(
            upstream_body, session, config, safety_identifier=_safety_identifier(context.user)
        )
    except IssueError:
        quotas.refund(quota)  # no key was issued: the unit goes back
        raise
    body = {**result.body, "preset": preset.name, "connect": upstream.connect_info(config.base_url, session)}
    token_request = TokenRequest.objects.create(
        **_audit_fields(context, attempt),
        outcome=TokenRequest.Outcome.ISSUED,
        status_code=201,
        upstream_status=result.status,
        upstream_request_id=result.request_id,
        upstream_session_id=result.session_id,
        expires_at=dt.datetime.fromtimestamp(result.expires_at, tz=dt.timezone.utc),
        secret_fingerprint=fingerprint(result.secret),
        upstream_ms=result.elapsed_ms,
    )
    return IssuedSession(body=body, token_request=token_request, upstream_body=upstream_body)


def _apply_policy(
    context: IssueContext, preset: SessionPreset, session: dict[str, Any], overrides: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """Run the site's POLICY (if any): it may raise policy.Deny, or adjust the session and the TTL."""
    policy = get_policy()
    if policy is None:
        return session, preset.expires_after_seconds
    policy_context = PolicyContext(
        user=context.user,
        preset=preset,
        session=copy.deepcopy(session),
        expires_after_seconds=preset.expires_after_seconds,
        overrides=dict(overrides),
        request=context.request,
    )
    policy(policy_context)
    try:
        adjusted = validate_session(policy_context.session)
        validate_preset_options(policy_context.expires_after_seconds, [], "")
    except PresetValidationError as exc:
        raise ImproperlyConfigured(f"RT_SESSIONS['POLICY'] produced an invalid session: {exc}") from None
    return adjusted, policy_context.expires_after_seconds


def _release_pooled_connections() -> None:
    """Give pooled database connections back while the upstream answers (hundreds of milliseconds).

    With Django's connection pool (Django 5.1+, `OPTIONS["pool"]`) a request otherwise keeps its
    connection until it ends, so the pool, not the server, caps the requests in flight. The audit row
    borrows a connection again afterwards. Never inside a transaction (the caller's atomic block keeps
    its connection), never for unpooled connections (closing those would only cost a reconnect).
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is None or connection.in_atomic_block:
            continue
        if getattr(connection, "pool", None) is not None:
            connection.close()


def _parse_payload(payload: Any) -> dict[str, Any]:
    """Check the request body's shape and types; return the overrides it asks for."""
    if not isinstance(payload, Mapping):
        raise IssueError("invalid", "The body must be a JSON object.")
    errors: dict[str, list[str]] = {}
    for key in payload:
        if key not in REQUEST_FIELDS:
            errors[str(key)] = ["Unknown field."]
    preset = payload.get("preset")
    if preset is not None and not isinstance(preset, str):
        errors["preset"] = ["Must be a preset name."]
    for key in ("language", "prompt"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            errors[key] = ["Must be a string or null."]
    if (
        payload.get("noise_reduction") is not None
        and payload["noise_reduction"] not in NOISE_REDUCTION_CHOICES
    ):
        errors["noise_reduction"] = [f"Must be one of {', '.join(NOISE_REDUCTION_CHOICES)}, or null."]
    if errors:
        raise IssueError("invalid", "Some fields are invalid.", errors=errors)
    return {key: payload[key] for key in OVERRIDABLE_FIELDS if key in payload}


def _resolve_preset(name: str | None) -> ResolvedPreset:
    resolved = preset_cache.resolve(name)
    if resolved is None:
        detail = f"No active preset named {name!r}." if name else "No default preset is configured."
        raise IssueError("preset_not_found", detail)
    return resolved


def _check_access(user: Any, resolved: ResolvedPreset) -> None:
    # The user's groups are read every time: removing someone from a group takes effect at once.
    if resolved.group_ids and not user.groups.filter(pk__in=resolved.group_ids).exists():
        raise IssueError("preset_forbidden")


def _safety_identifier(user: Any) -> str | None:
    """A stable, non-reversible id for the user (OpenAI's abuse tooling asks for one)."""
    if not rt_settings.SAFETY_IDENTIFIER:
        return None
    return salted_hmac("django_rt_sessions.safety_identifier", str(user.pk), algorithm="sha256").hexdigest()


def fingerprint(secret: str) -> str:
    """SHA-256 hex of an ephemeral key: what the audit keeps instead of the key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _audit_fields(context: IssueContext, attempt: _Attempt) -> dict[str, Any]:
    user = context.user
    return {
        "user": user if getattr(user, "pk", None) else None,
        "username": (user.get_username() if hasattr(user, "get_username") else "")[:150],
        "preset": attempt.preset,
        "preset_name": attempt.preset_name[:64],
        "upstream": attempt.upstream_name,
        "session_config": attempt.upstream_body,
        "client_ip": context.client_ip,
        "user_agent": context.user_agent,
    }


def _record_failure(
    context: IssueContext, attempt: _Attempt, error: IssueError, status_code: int | None = None
) -> TokenRequest:
    fields = _audit_fields(context, attempt)
    if isinstance(error, UpstreamFailure):
        fields.update(
            upstream_status=error.upstream_status,
            upstream_request_id=error.request_id,
            error_code=error.error_code or error.code,
            error_message=error.error_message,
            upstream_ms=error.elapsed_ms,
        )
    else:
        message = error.detail
        if error.errors:
            message += " " + "; ".join(f"{k}: {' '.join(v)}" for k, v in error.errors.items())
        fields.update(error_code=error.code, error_message=message[:2000])
    return TokenRequest.objects.create(
        **fields, outcome=error.outcome, status_code=status_code or error.status
    )


__all__ = ["IssueContext", "IssueError", "IssuedSession", "fingerprint", "issue_session", "record_refusal"]
