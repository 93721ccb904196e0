"""The issuing service: body → preset → access → plan → rate limits → upstream → audit row.

Callable without HTTP (`issue_session`: the admin's test token, `rt_sessions_issue`); the API view hands
over the raw body (`issue_from_body`), so decoding it is audited like every other refusal. This module
owns the one-audit-row rule: every call records exactly one `TokenRequest`, whatever the outcome, before
it returns or raises, and no key is returned without its row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables

from .. import checks, signals
from ..conf import rt_settings
from ..errors import DATABASE_DOWN_ERRORS, IssueError
from ..models import SessionPreset, TokenRequest
from ..presets import cache as preset_cache
from ..presets.access import check_access
from ..presets.cache import ResolvedPreset
from ..redaction import storable
from ..upstreams import UpstreamFailure, get_config, get_upstream
from . import quotas, throttling, tickets
from .payload import RawBody, decode_body, parse_overrides
from .planning import Plan, plan_session

logger = logging.getLogger("django_rt_sessions.issuing")


@dataclass
class IssueContext:
    """Who asks and from where; `request` is None outside HTTP."""

    user: Any
    request: HttpRequest | None = None
    client_ip: str | None = None
    user_agent: str = ""
    origin: str = TokenRequest.Origin.CODE  # recorded in the audit row

    @classmethod
    def from_request(
        cls, request: HttpRequest, user: Any, origin: str = TokenRequest.Origin.API
    ) -> IssueContext:
        return cls(
            user=user,
            request=request,
            client_ip=throttling.client_ip(request),
            user_agent=TokenRequest.fit("user_agent", request.META.get("HTTP_USER_AGENT", "")),
            origin=origin,
        )


@dataclass
class IssuedSession:
    # The 201 body: the beta endpoint's "Returns" shape plus `preset` and `connect`. Holds the ephemeral key.
    body: dict[str, Any] = field(repr=False)
    token_request: TokenRequest
    plan: Plan


@dataclass
class _Attempt:
    """What is known so far, for the audit row."""

    preset: SessionPreset | None = None
    preset_name: str = ""
    upstream_name: str = ""
    upstream_body: dict[str, Any] | None = None  # set once planned: what is (or would have been) sent


def issue_from_body(context: IssueContext, body: RawBody) -> IssuedSession:
    """Issue a key for an HTTP request's raw body (the API's entry point). Raises IssueError."""
    return _run(context, lambda: decode_body(body))


def issue_session(context: IssueContext, payload: Any) -> IssuedSession:
    """Issue one ephemeral transcription key for `context.user` as `payload` (the decoded body) asks.

    Raises IssueError (with a stable code, and its audit row as `token_request`) on refusal.
    """
    return _run(context, lambda: payload)


def prepare(context: IssueContext, payload: Any, attempt: _Attempt | None = None) -> Plan:
    """Parse, resolve the preset, check access and plan the upstream body; send, count and record nothing.

    `rt_sessions_issue --dry-run` prints what this returns; the issuance sends it.
    """
    attempt = attempt or _Attempt()
    _require_configured()
    preset_name, overrides = parse_overrides(payload)
    attempt.preset_name = storable(preset_name or "")
    resolved = _resolve_preset(preset_name)
    attempt.preset, attempt.preset_name = resolved.preset, resolved.preset.name
    check_access(context.user, resolved)
    upstream = get_upstream()
    attempt.upstream_name = upstream.name
    return plan_session(context.user, resolved.preset, overrides, request=context.request, upstream=upstream)


@sensitive_variables("issued")
def _run(context: IssueContext, read_payload: Callable[[], Any]) -> IssuedSession:
    attempt = _Attempt()
    unreadable: IssueError | None = None
    payload: Any = None
    try:
        payload = read_payload()
    except IssueError as error:
        unreadable = error
    _send(signals.token_requested, user=context.user, payload=payload, request=context.request)
    try:
        if unreadable is not None:
            raise unreadable
        issued = _issue(context, payload, attempt)
    except IssueError as error:
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
        # What the client sees: 503 service_unavailable for a database outage, 503 misconfigured for the
        # site's settings, else a 500 (a bug).
        seen = _seen_as(exc)
        try:
            seen.token_request = _record_failure(context, attempt, seen, status_code=seen.status)
        except DATABASE_DOWN_ERRORS:
            # Nothing can be audited, so nothing is handed out either.
            logger.error("The audit row of a failed token request could not be written: database down.")
        if isinstance(exc, (*DATABASE_DOWN_ERRORS, ImproperlyConfigured)):
            raise seen from exc  # answered as what it is, wherever the service is called from
        raise  # a bug: Django's 500 and its report
    _send(
        signals.token_issued,
        token_request=issued.token_request,
        user=context.user,
        preset=attempt.preset,
        request=context.request,
    )
    return issued


def _seen_as(exc: Exception) -> IssueError:
    """The refusal an unexpected exception is answered with (and audited as)."""
    if isinstance(exc, DATABASE_DOWN_ERRORS):
        return IssueError("service_unavailable")
    if isinstance(exc, ImproperlyConfigured):
        _log_once(str(exc))
        return IssueError("misconfigured", error_code="misconfigured", error_message=str(exc))
    error = IssueError("upstream_error", "Internal error.")
    error.status = 500
    return error


_logged_once: set[str] = set()


def _log_once(message: str) -> None:
    """A misconfiguration is logged at ERROR once per process, not once per request."""
    if message not in _logged_once:
        _logged_once.add(message)
        logger.error("django-rt-sessions is misconfigured; token requests answer 503: %s", message)


def _require_configured() -> None:
    """Refuse to issue while the settings have an Error that `manage.py check` would report."""
    errors = checks.configuration_errors()
    if errors:
        raise ImproperlyConfigured(
            " ".join(
                f"{error.id}: {error.msg}" + (f" Hint: {error.hint}" if error.hint else "")
                for error in errors
            )
        )


def _send(signal: Signal, **kwargs: Any) -> None:
    """Send a signal; a failing receiver is logged, never turned into an error for the user."""
    for receiver, response in signal.send_robust(sender=TokenRequest, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of a django-rt-sessions signal failed: %r",
                receiver,
                exc_info=(type(response), response, response.__traceback__),
            )


@sensitive_variables("config", "result", "body")
def _issue(context: IssueContext, payload: Any, attempt: _Attempt) -> IssuedSession:
    plan = prepare(context, payload, attempt)
    attempt.upstream_body = plan.body
    preset = plan.preset
    throttling.check_limits(
        context.user, preset, context.request, user_rate=rt_settings.USER_RATE, ip_rate=rt_settings.IP_RATE
    )
    if preset.relay:
        quotas.check_audio_minutes(context.user, preset)
    quota = quotas.reserve(context.user, preset)
    if preset.relay:
        return _mint_relay_ticket(context, attempt, plan)
    config = get_config()
    _release_pooled_connections()
    try:
        result = plan.upstream.create_session(
            plan.body, plan.session, config, safety_identifier=safety_identifier(context.user)
        )
    except IssueError:
        quotas.refund(quota)  # no key was issued: the unit goes back
        raise
    body = {
        **result.body,
        "preset": preset.name,
        "connect": {
            **plan.upstream.connect_info(config.base_url, plan.session),
            "client_turns": plan.client_turns,
        },
    }
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
    return IssuedSession(body=body, token_request=token_request, plan=plan)


@sensitive_variables("minted", "body")
def _mint_relay_ticket(context: IssueContext, attempt: _Attempt, plan: Plan) -> IssuedSession:
    """A relay preset's 201: a relay ticket for the planned session, no upstream call (the relay opens the
    upstream session when the ticket is redeemed; docs/relay.md)."""
    minted, token_request = tickets.mint(
        token_request_fields=_audit_fields(context, attempt),
        fingerprint=fingerprint,
        user=context.user,
        preset=plan.preset,
        session=plan.session,
        expires_after_seconds=plan.expires_after_seconds,
    )
    body = {
        "client_secret": {"value": minted.secret, "expires_at": int(minted.expires_at.timestamp())},
        **tickets.session_body(plan.session),
        "id": minted.session_id,
        "preset": plan.preset.name,
        "connect": {
            "api": "relay",
            "webrtc_url": None,  # the relay speaks WebSocket only
            "websocket_url": tickets.relay_websocket_url(context.request),
            "transports": ["websocket"],
            "client_turns": plan.client_turns,
        },
    }
    return IssuedSession(body=body, token_request=token_request, plan=plan)


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


def _resolve_preset(name: str | None) -> ResolvedPreset:
    resolved = preset_cache.resolve(name)
    if resolved is None:
        detail = f"No active preset named {name!r}." if name else "No default preset is configured."
        raise IssueError("preset_not_found", storable(detail))
    return resolved


def safety_identifier(user: Any) -> str | None:
    """A stable, non-reversible id for the user (OpenAI's abuse tooling asks for one); the relay sends it
    too."""
    if not rt_settings.SAFETY_IDENTIFIER:
        return None
    return salted_hmac("django_rt_sessions.safety_identifier", str(user.pk), algorithm="sha256").hexdigest()


def fingerprint(secret: str) -> str:
    """SHA-256 hex of an ephemeral key or a relay ticket: what the audit keeps instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _audit_fields(context: IssueContext, attempt: _Attempt) -> dict[str, Any]:
    user = context.user
    return {
        "user": user if getattr(user, "pk", None) else None,
        "username": TokenRequest.fit(
            "username", user.get_username() if hasattr(user, "get_username") else ""
        ),
        "preset": attempt.preset,
        "preset_name": TokenRequest.fit("preset_name", attempt.preset_name),
        "upstream": attempt.upstream_name,
        "session_config": attempt.upstream_body,
        "client_ip": context.client_ip,
        "user_agent": TokenRequest.fit("user_agent", context.user_agent),
        "origin": context.origin,
    }


def _record_failure(
    context: IssueContext, attempt: _Attempt, error: IssueError, status_code: int | None = None
) -> TokenRequest:
    fields = _audit_fields(context, attempt)
    message = error.error_message
    if not message and not isinstance(error, UpstreamFailure):
        message = error.detail
        if error.errors:
            message += " " + "; ".join(f"{k}: {' '.join(v)}" for k, v in error.errors.items())
    fields.update(
        error_code=TokenRequest.fit("error_code", error.error_code or error.code),
        error_message=TokenRequest.fit("error_message", message),
    )
    if isinstance(error, UpstreamFailure):
        fields.update(
            upstream_status=error.upstream_status,
            upstream_request_id=error.request_id,
            upstream_ms=error.elapsed_ms,
        )
    return TokenRequest.objects.create(
        **fields, outcome=error.outcome, status_code=status_code or error.status
    )
