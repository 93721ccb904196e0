"""Per-user daily quotas per preset, counted in the database: sessions (`SessionPreset.daily_quota`) and, for
relay presets, metered audio minutes (`daily_audio_minutes`).

A request reserves one unit with a single conditional UPDATE (`count = count + 1 WHERE count < quota`),
atomic on every database, so concurrent requests can never exceed the quota; a request that then fails
upstream gives its unit back. Days are the site's local days (TIME_ZONE).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F, Sum
from django.utils import timezone

from ..errors import IssueError
from ..models import QuotaUsage, RelaySession


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


# ------------------------------------------------------------------------------ relay presets: audio minutes
# Counted per UTC day (the day a session started) from the relayed sessions' metered audio, open ones
# included: their counters are saved every few seconds by whichever host relays them.


def utc_day_start(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def seconds_until_utc_midnight(now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    return max(1, int((utc_day_start(now) + dt.timedelta(days=1) - now).total_seconds() + 0.999))


def audio_seconds_today(user_id: Any, preset_id: Any, *, exclude: str | None = None) -> float:
    """Metered audio of the user's sessions on the preset started today (UTC), `exclude` left out."""
    rows = RelaySession.objects.filter(user_id=user_id, preset_id=preset_id, started_at__gte=utc_day_start())
    if exclude is not None:
        rows = rows.exclude(pk=exclude)
    return float(rows.aggregate(total=Sum("audio_seconds"))["total"] or 0.0)


def audio_seconds_left(user_id: Any, preset: Any, *, exclude: str | None = None) -> float | None:
    """Seconds of audio the user may still stream today on a relay preset; None without a daily limit."""
    if preset.daily_audio_minutes is None:
        return None
    used = audio_seconds_today(user_id, preset.pk, exclude=exclude)
    return max(0.0, preset.daily_audio_minutes * 60 - used)


def check_audio_minutes(user: Any, preset: Any) -> None:
    """Refuse a relay ticket (429 quota_exceeded) when the user's audio minutes for today are used up."""
    left = audio_seconds_left(user.pk, preset)
    if left is not None and left <= 0:
        raise IssueError(
            "quota_exceeded",
            f"You have used today's {preset.daily_audio_minutes:g} minutes of audio on this preset.",
            retry_after=seconds_until_utc_midnight(),
        )
