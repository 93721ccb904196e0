"""Rate limits: the only module that talks to django-ratelimit.

django-ratelimit's decorator raises `Ratelimited`, a `PermissionDenied` that DRF answers 403 with no
Retry-After, so the limits are checked here with `get_usage(increment=True)` and refused as 429 with
the real seconds left in the window. Group names are fixed strings so refactoring a view never resets
counters; keys are the user's pk or the client IP, never a credential.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string
from django_ratelimit.core import get_usage

from ..conf import rt_settings
from ..errors import IssueError

logger = logging.getLogger("django_rt_sessions.throttling")

IP_GROUP = "rt_sessions.ip"
USER_GROUP = "rt_sessions.user"
PRESET_USER_GROUP = "rt_sessions.preset-user.{preset_pk}"


def client_ip(request: HttpRequest | None) -> str | None:
    """The client IP as django-ratelimit sees it: `RATELIMIT_IP_META_KEY` if set, else REMOTE_ADDR."""
    if request is None:
        return None
    ip_meta = getattr(settings, "RATELIMIT_IP_META_KEY", None)
    if not ip_meta:
        ip = request.META.get("REMOTE_ADDR")
    elif callable(ip_meta):
        ip = ip_meta(request)
    elif isinstance(ip_meta, str) and "." in ip_meta:
        ip = import_string(ip_meta)(request)
    else:
        ip = request.META.get(ip_meta)
    if not ip:
        return None
    # A proxy header may carry a list ("client, proxy1"); the first entry is the client. Anything that is
    # not an address (a forged or "unknown" header) counts as no address: the IP limit then fails closed.
    try:
        return str(ipaddress.ip_address(str(ip).split(",")[0].strip()))
    except ValueError:
        return None


def _ip_key(group: str, request: HttpRequest) -> str:
    """The client IP masked like django-ratelimit's own "ip" key (an IPv6 /64 counts as one client)."""
    ip = client_ip(request)
    if ip is None:
        return "unknown"  # requests without a usable address share one counter
    if ":" in ip:
        mask = getattr(settings, "RATELIMIT_IPV6_MASK", 64)
    else:
        mask = getattr(settings, "RATELIMIT_IPV4_MASK", 32)
    return str(ipaddress.ip_network(f"{ip}/{mask}", strict=False).network_address)


def _check(request: Any, group: str, key: Any, rate: str) -> None:
    try:
        usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    except (
        Exception
    ) as exc:  # e.g. django-redis' ConnectionInterrupted: RATELIMIT_FAIL_OPEN does not cover it
        _cache_failed(group, type(exc).__name__)
        return
    if usage is None or not usage["should_limit"]:
        return
    if usage["time_left"] < 0:
        # get_usage's way of saying the cache did not count the request (it answered None).
        _cache_failed(group, "no count")
        return
    raise IssueError("rate_limited", retry_after=max(1, int(usage["time_left"])))


def _cache_failed(group: str, why: str) -> None:
    """A rate-limit cache outage: refuse (the default, protecting the budget) or, if set, let through."""
    if rt_settings.RATE_LIMIT_FAIL_OPEN:
        logger.error("Rate limit %s could not be checked (%s); letting the request through.", group, why)
        return
    logger.error("Rate limit %s could not be checked (%s); refusing the request.", group, why)
    raise IssueError("rate_limit_unavailable")


def check_limits(
    user: Any, preset: Any, request: HttpRequest | None, user_rate: str | None, ip_rate: str | None
) -> None:
    """Count this request against the IP limit, then the user's (or the preset's own) limit.

    Raises IssueError("rate_limited", retry_after=…) when one is exceeded. Without an HTTP request
    (management commands) only the user limit applies.
    """
    if request is not None and ip_rate:
        _check(request, IP_GROUP, _ip_key, ip_rate)
    user_key = str(user.pk)

    def by_user(group: str, _request: Any) -> str:
        return user_key

    if preset.rate:
        _check(request, PRESET_USER_GROUP.format(preset_pk=preset.pk), by_user, preset.rate)
    elif user_rate:
        _check(request, USER_GROUP, by_user, user_rate)
