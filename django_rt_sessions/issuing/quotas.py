"""Per-user daily quotas per preset (`SessionPreset.daily_quota`), counted exactly in the database.

A request reserves one unit with a single conditional UPDATE (`count = count + 1 WHERE count < quota`),
atomic on every database, so concurrent requests can never exceed the quota; a request that then fails
upstream gives its unit back. Days are the site's local days (TIME_ZONE).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F
from django.utils import timezone

from ..errors import IssueError
from ..models import QuotaUsage


def seconds_until_midnight(now: dt.datetime | None = None) -> int:
    now = timezone.localtime(now)
    midnight = timezone.make_aware(
        dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time.min), now.tzinfo
    )
    return max(1, int((midnight - now).total_seconds() + 0.999))


def reserve(user: Any, preset: Any) -> QuotaUsage | None:
    """Take one unit of today's quota or raise IssueError("quota_exceeded"); None when there is no quota."""
    if not preset.daily_quota:
        return None
    day = timezone.localdate()
    usage, _ = QuotaUsage.objects.get_or_create(user=user, preset=preset, day=day)
    taken = QuotaUsage.objects.filter(pk=usage.pk, count__lt=preset.daily_quota).update(count=F("count") + 1)
    if not taken:
        raise IssueError(
            "quota_exceeded",
            f"You have used today's {preset.daily_quota} sessions of this preset.",
            retry_after=seconds_until_midnight(),
        )
    return usage


def refund(usage: QuotaUsage | None) -> None:
    """Give back a unit taken by `reserve` for a request that did not get a key."""
    if usage is not None:
        QuotaUsage.objects.filter(pk=usage.pk, count__gt=0).update(count=F("count") - 1)
