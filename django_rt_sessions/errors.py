"""Stable error codes (docs/http-api.md#errors), the audit outcome each is recorded as, and the exception
the issuing service raises for each.

`Outcome` is the one list of audit outcomes (`TokenRequest.Outcome`); `ERRORS` maps every code the app
answers to its status, outcome and message. Everything else (the OpenAPI description, the audit chart's
colours, the admin's filters) derives from these two.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import InterfaceError, OperationalError, models
from django.utils.translation import gettext_lazy as _


class Outcome(models.TextChoices):
    """What happened to a token request, as its audit row records it."""

    ISSUED = "issued", _("issued")
    INVALID = "invalid", _("invalid")
    FORBIDDEN = "forbidden", _("forbidden")
    NOT_FOUND = "not_found", _("not found")
    RATE_LIMITED = "rate_limited", _("rate limited")
    RATE_LIMIT_UNAVAILABLE = "rate_limit_unavailable", _("rate limits unavailable")
    SERVICE_UNAVAILABLE = "service_unavailable", _("service unavailable")
    UPSTREAM_ERROR = "upstream_error", _("upstream error")
    UPSTREAM_UNAVAILABLE = "upstream_unavailable", _("upstream unavailable")
    UPSTREAM_TIMEOUT = "upstream_timeout", _("upstream timeout")
    MISCONFIGURED = "misconfigured", _("site misconfigured")


# Seconds a client is asked to wait while something the app needs (the database, the rate-limit cache)
# is down: long enough for a restart or a failover, short enough not to lose the user.
OUTAGE_RETRY_AFTER = 5

# The database is down or restarting: connection failures only (IntegrityError & co. are bugs, 500s).
DATABASE_DOWN_ERRORS = (OperationalError, InterfaceError)


class ErrorSpec(NamedTuple):
    status: int
    outcome: Outcome
    detail: str  # shown to the requesting user
    retry_after: int | None = None  # the Retry-After sent when the raiser names none


ERRORS: dict[str, ErrorSpec] = {
    "invalid": ErrorSpec(400, Outcome.INVALID, "The request is invalid."),
    "override_not_allowed": ErrorSpec(
        400, Outcome.INVALID, "This preset does not let you change that setting."
    ),
    "preset_forbidden": ErrorSpec(403, Outcome.FORBIDDEN, "You are not allowed to use this preset."),
    "quota_exceeded": ErrorSpec(429, Outcome.RATE_LIMITED, "You have used today's quota for this preset."),
    "preset_not_found": ErrorSpec(404, Outcome.NOT_FOUND, "No such preset."),
    "rate_limited": ErrorSpec(429, Outcome.RATE_LIMITED, "Too many token requests; try again later."),
    "rate_limit_unavailable": ErrorSpec(
        503,
        Outcome.RATE_LIMIT_UNAVAILABLE,
        "Rate limits cannot be checked right now; try again shortly.",
        OUTAGE_RETRY_AFTER,
    ),
    "service_unavailable": ErrorSpec(
        503,
        Outcome.SERVICE_UNAVAILABLE,
        "The service is temporarily unavailable; try again shortly.",
        OUTAGE_RETRY_AFTER,
    ),
    "upstream_error": ErrorSpec(
        502, Outcome.UPSTREAM_ERROR, "The transcription service could not create a session."
    ),
    "upstream_unavailable": ErrorSpec(
        503, Outcome.UPSTREAM_UNAVAILABLE, "The transcription service is unavailable; try again later."
    ),
    "upstream_timeout": ErrorSpec(
        504, Outcome.UPSTREAM_TIMEOUT, "The transcription service did not answer in time."
    ),
    # The site's settings are wrong (what `manage.py check` reports as an Error): staff must fix them.
    "misconfigured": ErrorSpec(
        503,
        Outcome.MISCONFIGURED,
        "The service is not configured correctly; the site's staff need to fix it.",
    ),
}
# A site POLICY's own codes: a refusal (403 unless the policy says otherwise).
POLICY_REFUSAL = ErrorSpec(403, Outcome.FORBIDDEN, "Request denied.")


class IssueError(Exception):
    """A refusal with a stable code; `detail` is safe to show to the requesting user."""

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        retry_after: int | None = None,
        status: int | None = None,
        error_code: str = "",
        error_message: str = "",
    ) -> None:
        spec = ERRORS.get(code, POLICY_REFUSAL)
        self.code = code
        self.status = status or spec.status
        self.outcome = spec.outcome
        self.detail = detail or spec.detail
        self.errors = errors
        self.retry_after = retry_after if retry_after is not None else spec.retry_after
        # For the audit row only (staff read it; the user sees `code` and `detail`): a finer code and text.
        self.error_code = error_code
        self.error_message = error_message
        self.token_request: Any = None  # the audit row, once the issuing service has recorded it
        super().__init__(f"{code}: {self.detail}")

    def as_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


# ------------------------------------------------------------------------------------------------- the relay
# The relay speaks OpenAI's realtime protocol: a refused upgrade is an HTTP 4xx with OpenAI's error body
# (where the ASGI server lets the app answer one), and everything after is an `error` event, before the close
# when the session ends (docs/relay.md#errors).


class RelayRefusal(NamedTuple):
    status: int  # 401/403 where the ASGI server lets the app choose (daphne answers every refusal 403)
    message: str


RELAY_REFUSALS: dict[str, RelayRefusal] = {
    "invalid_api_key": RelayRefusal(
        401,
        "No valid relay ticket: give the ticket from the session's client_secret.value as "
        "'Authorization: Bearer rts_…' or, in a browser, as the subprotocol 'openai-insecure-api-key.rts_…'.",
    ),
    "ticket_expired": RelayRefusal(401, "The relay ticket has expired: ask the site for a new session."),
    "ticket_used": RelayRefusal(401, "The relay ticket has already opened a session: ask for a new one."),
    "origin_not_allowed": RelayRefusal(
        403, "This page's origin may not open the relay (RT_SESSIONS['RELAY_ALLOWED_ORIGINS'])."
    ),
    "relay_unavailable": RelayRefusal(503, "The relay cannot check tickets right now; try again shortly."),
}


class RelayEvent(NamedTuple):
    type: str  # the `error` event's error.type, as OpenAI's
    message: str


# code -> the `error` event the client gets. Each end's close code and end_reason are in docs/relay.md.
RELAY_EVENTS: dict[str, RelayEvent] = {
    "event_not_allowed": RelayEvent(
        "invalid_request_error", "The relay does not forward this event; the session goes on."
    ),
    "invalid": RelayEvent("invalid_request_error", "The session update has an invalid value."),
    "session_limit_reached": RelayEvent("invalid_request_error", "The session limit is reached."),
    "quota_exceeded": RelayEvent(
        "invalid_request_error", "Today's audio minutes for this preset are used up."
    ),
    "idle_timeout": RelayEvent("invalid_request_error", "No audio arrived for too long: the session ended."),
    "session_ended": RelayEvent("invalid_request_error", "The site's staff ended this session."),
    "upstream_error": RelayEvent("server_error", "The transcription service ended the session."),
}
