"""Relay tickets: what a relay preset hands the browser instead of an OpenAI key (docs/relay.md).

A ticket is `rts_` and 256 random bits, single-use, bound to the user, the preset and the planned session,
expiring after the preset's `expires_after_seconds`. Only its SHA-256 is stored (`RelayTicket.fingerprint`,
and the audit row's `secret_fingerprint`). Redeeming it is one conditional UPDATE: of any number of
connections presenting the same ticket at once, exactly one gets it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..conf import is_loopback, rt_settings
from ..models import RelayTicket, TokenRequest

REALTIME_PATH = "/realtime"  # under RELAY_URL, as OpenAI's socket is under its base URL
QUERY = "?intent=transcription"
PREFIX = "rts_"
TICKET_RE = re.compile(r"rts_[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters, 256 bits
RETURNED_KEYS = (
    "input_audio_format",
    "input_audio_transcription",
    "turn_detection",
    "input_audio_noise_reduction",
    "include",
)


def new_ticket() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def new_session_id() -> str:
    return "relay_" + secrets.token_hex(12)


@dataclass
class MintedTicket:
    secret: str  # the ticket itself: returned once, never stored
    session_id: str
    expires_at: dt.datetime


@sensitive_variables("secret")
def mint(
    *,
    token_request_fields: dict[str, Any],
    fingerprint: Any,
    user: Any,
    preset: Any,
    session: dict[str, Any],
    expires_after_seconds: int,
) -> tuple[MintedTicket, TokenRequest]:
    """A new ticket and its audit row, written together (no ticket without its row)."""
    secret = new_ticket()
    session_id = new_session_id()
    expires_at = timezone.now() + dt.timedelta(seconds=expires_after_seconds)
    digest = fingerprint(secret)
    with transaction.atomic():
        token_request = TokenRequest.objects.create(
            **token_request_fields,
            outcome=TokenRequest.Outcome.ISSUED,
            status_code=201,
            expires_at=expires_at,
            secret_fingerprint=digest,
        )
        RelayTicket.objects.create(
            fingerprint=digest,
            session_id=session_id,
            token_request=token_request,
            user=user,
            preset=preset,
            session=session,
            expires_at=expires_at,
            client_ip=token_request.client_ip,
            user_agent=token_request.user_agent,
        )
    return MintedTicket(secret, session_id, expires_at), token_request


def session_body(session: dict[str, Any]) -> dict[str, Any]:
    """The session half of the 201 (the beta endpoint's "Returns" shape) for a planned session."""
    body: dict[str, Any] = {"input_audio_format": session.get("input_audio_format", "pcm16")}
    for key in RETURNED_KEYS[1:]:
        body[key] = session.get(key)
    body["modalities"] = ["text"]
    return body


@sensitive_variables("presented")
def redeem(presented: str | None, fingerprint: Any) -> RelayTicket | str:
    """The ticket's row, marked redeemed; or why not: "invalid_api_key" (missing, malformed or unknown),
    "ticket_expired", "ticket_used"."""
    if not presented or not TICKET_RE.fullmatch(presented):
        return "invalid_api_key"
    digest = fingerprint(presented)
    now = timezone.now()
    # One statement: concurrent redemptions of the same ticket cannot both match `redeemed_at IS NULL`.
    taken = RelayTicket.objects.filter(
        fingerprint=digest, redeemed_at__isnull=True, expires_at__gt=now
    ).update(redeemed_at=now)
    if taken:
        return RelayTicket.objects.select_related("preset", "user", "token_request").get(fingerprint=digest)
    row = RelayTicket.objects.filter(fingerprint=digest).values("redeemed_at", "expires_at").first()
    if row is None:
        return "invalid_api_key"
    return "ticket_used" if row["redeemed_at"] is not None else "ticket_expired"


def relay_websocket_url(request: HttpRequest | None) -> str:
    """`connect.websocket_url` of a relay session: RELAY_URL's base, or the site's own relay URL as the
    request reached it (wss://, or ws:// on loopback), or (outside a request, without RELAY_URL) its path."""
    base = rt_settings.RELAY_URL
    if base:
        return f"{base}{REALTIME_PATH}{QUERY}"
    path = reverse("rt_sessions:relay")
    if request is None:
        return f"{path}{QUERY}"
    host = request.get_host()
    hostname = urlsplit(f"//{host}").hostname
    scheme = "ws" if not request.is_secure() and is_loopback(hostname) else "wss"
    return f"{scheme}://{host}{path}{QUERY}"
