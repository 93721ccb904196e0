"""Which pages may open the relay (the Origin check), and the checks of RELAY_URL and RELAY_ALLOWED_ORIGINS.

The address handed to browsers with a ticket (`connect.websocket_url`) is issuing/tickets.py's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..conf import is_loopback, rt_settings


def relay_url_problem(value: Any) -> str | None:
    """What is wrong with a RELAY_URL value, or None."""
    if not isinstance(value, str):
        return "not a string"
    parts = urlsplit(value)
    if parts.scheme not in ("wss", "ws") or not parts.hostname:
        return "not an absolute wss:// URL"
    if parts.scheme == "ws" and not is_loopback(parts.hostname):
        return "ws:// (unencrypted) is only for loopback; use wss://"
    if parts.query or parts.fragment:
        return "it must not have a query or a fragment (the relay adds ?intent=transcription)"
    return None


def origin_problem(value: Any) -> str | None:
    """What is wrong with one RELAY_ALLOWED_ORIGINS entry, or None."""
    if not isinstance(value, str):
        return "not a string"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an origin like https://app.example.com"
    if parts.path or parts.query or parts.fragment or parts.username:
        return "an origin has a scheme, a host and a port only"
    return None


def _origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the default port filled in; None for "null" or garbage."""
    parts = urlsplit(value.strip().lower())
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """Whether a browser page at `origin` may open the relay reached at `host` (the Host header).

    No Origin header: not a browser (an SDK, a server), which the ticket alone authenticates. Otherwise the
    site's own host (either scheme: TLS may end at a proxy; the port too when the Host header names one),
    or one of RELAY_ALLOWED_ORIGINS.
    """
    if origin is None:
        return True
    page = _origin(origin)
    if page is None:
        return False
    if host:
        try:
            site = urlsplit(f"//{host.lower()}")
            site_port = site.port
        except ValueError:
            site, site_port = None, None
        if site is not None and site.hostname == page[1] and site_port in (None, page[2]):
            return True
    return page in {_origin(allowed) for allowed in rt_settings.RELAY_ALLOWED_ORIGINS}
