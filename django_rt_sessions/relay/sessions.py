"""The relayed sessions' rows: opening one (the concurrency and minutes checks), saving counters, ending
it, staff's end requests and the sweep (docs/relay.md#metering). Plain synchronous ORM code: the consumer
calls it through `database_sync_to_async`, the admin and `rt_sessions_relay_sweep` directly. No Channels.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from .. import signals
from ..issuing import quotas
from ..models import RelaySession, RelayTicket

logger = logging.getLogger("django_rt_sessions.relay")

# A row unsaved for this long belongs to a dead process (its relay saves every SAVE_EVERY seconds).
SAVE_EVERY = 5.0
STALE_AFTER = dt.timedelta(seconds=15)
# Tickets are deleted this long after they expired: until then a reused one is refused as used.
TICKETS_KEPT = dt.timedelta(hours=1)


@dataclass
class Opened:
    row: RelaySession
    audio_seconds_left: float | None  # the day's minutes left (None: no daily limit)


def open_session(
    ticket: RelayTicket, *, client_ip: str | None, user_agent: str, relay_process: str, channel_name: str
) -> Opened | str:
    """Write the session's row, taking one of the user's `max_concurrent_sessions` slots on the preset;
    or say why not: "session_limit_reached", "quota_exceeded".

    Exact across hosts: a slot is a unique (user, preset, slot) among open rows, so of any number of
    connections racing for the last slot exactly one INSERT succeeds.
    """
    preset = ticket.preset
    left = quotas.audio_seconds_left(ticket.user_id, preset)
    if left is not None and left <= 0:
        return "quota_exceeded"
    taken = set(
        RelaySession.objects.filter(user_id=ticket.user_id, preset=preset, slot__isnull=False).values_list(
            "slot", flat=True
        )
    )
    for slot in range(preset.max_concurrent_sessions):
        if slot in taken:
            continue
        now = timezone.now()
        try:
            with transaction.atomic():
                row = RelaySession.objects.create(
                    id=ticket.session_id,
                    token_request_id=ticket.token_request_id,
                    user_id=ticket.user_id,
                    username=ticket.user.get_username()[:150],
                    preset=preset,
                    preset_name=preset.name,
                    started_at=now,
                    last_seen_at=now,
                    client_ip=client_ip,
                    user_agent=user_agent[:512],
                    relay_process=relay_process[:200],
                    channel_name=channel_name[:200],
                    slot=slot,
                )
        except IntegrityError:
            continue  # another connection took this slot a moment ago: try the next
        send(signals.relay_session_started, relay_session=row)
        return Opened(row, left)
    return "session_limit_reached"


def save_counters(rows: Sequence[tuple[float, float, int, int, str]]) -> None:
    """The counters of a process's open sessions, and that they are alive: one executemany of plain UPDATEs
    (Django's bulk_update builds one CASE per column in Python, stalling the event loop's process for tens
    of milliseconds at a few hundred sessions: bench/relay_pieces.py)."""
    if not rows:
        return
    now = timezone.now()
    table = RelaySession._meta.db_table  # the model's own table name, not input
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET audio_seconds = %s, upstream_audio_seconds = %s, upstream_tokens = %s, "  # noqa: S608
            "turns = %s, last_seen_at = %s WHERE id = %s AND ended_at IS NULL",
            [
                (audio, upstream_audio, tokens, turns, now, pk)
                for audio, upstream_audio, tokens, turns, pk in rows
            ],
        )


def finish(pk: str, reason: str, counters: tuple[float, float, int, int]) -> None:
    """Close the row with its final counters and free its slot; `relay_session_ended` once it is closed."""
    audio, upstream_audio, tokens, turns = counters
    now = timezone.now()
    closed = RelaySession.objects.filter(pk=pk, ended_at__isnull=True).update(
        ended_at=now,
        end_reason=reason,
        slot=None,
        audio_seconds=audio,
        upstream_audio_seconds=upstream_audio,
        upstream_tokens=tokens,
        turns=turns,
        last_seen_at=now,
    )
    if closed:
        row = RelaySession.objects.filter(pk=pk).first()
        if row is not None:
            send(signals.relay_session_ended, relay_session=row)


def ended_elsewhere(pks: Iterable[str], since: dt.datetime) -> list[str]:
    """Of `pks`, the sessions staff asked to end since `since` (found by every relay process each second,
    whether or not the channel layer reached it)."""
    return list(
        RelaySession.objects.filter(pk__in=list(pks), end_requested_at__gte=since).values_list(
            "pk", flat=True
        )
    )


def audio_seconds_left(user_id: Any, preset_id: Any, exclude: str) -> float | None:
    """The minutes a session's user has left today (its own audio excluded: the session counts that)."""
    from ..models import SessionPreset

    preset = SessionPreset.objects.filter(pk=preset_id).first()
    if preset is None:
        return None
    return quotas.audio_seconds_left(user_id, preset, exclude=exclude)


def request_end(pks: Iterable[str]) -> list[RelaySession]:
    """Mark open sessions as asked to end by staff; returns them (the caller tells their processes)."""
    rows = list(RelaySession.objects.filter(pk__in=list(pks), ended_at__isnull=True))
    RelaySession.objects.filter(pk__in=[row.pk for row in rows]).update(end_requested_at=timezone.now())
    return rows


def sweep(now: dt.datetime | None = None) -> int:
    """Close the rows of relay processes that died (unsaved for STALE_AFTER) as `relay_lost`, with the
    audio counted up to their last save; delete tickets that can no longer be used. Returns the rows
    closed."""
    now = now or timezone.now()
    stale = list(
        RelaySession.objects.filter(ended_at__isnull=True, last_seen_at__lt=now - STALE_AFTER).values_list(
            "pk", flat=True
        )
    )
    closed = 0
    for pk in stale:
        # One row at a time, still conditional: a process that comes back and saves wins over the sweep.
        closed += RelaySession.objects.filter(
            pk=pk, ended_at__isnull=True, last_seen_at__lt=now - STALE_AFTER
        ).update(ended_at=F("last_seen_at"), end_reason=RelaySession.EndReason.RELAY_LOST, slot=None)
        row = RelaySession.objects.filter(pk=pk, end_reason=RelaySession.EndReason.RELAY_LOST).first()
        if row is not None and row.ended_at is not None:
            send(signals.relay_session_ended, relay_session=row)
    if closed:
        logger.warning(
            "Closed %d relay session(s) of relay processes that stopped saving: relay_lost.", closed
        )
    RelayTicket.objects.filter(expires_at__lt=now - TICKETS_KEPT).delete()
    return closed


def send(signal: Signal, **kwargs: Any) -> None:
    """A relay signal; a failing receiver is logged, never breaks the session."""
    for receiver, response in signal.send_robust(sender=RelaySession, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of a django-rt-sessions relay signal failed: %r",
                receiver,
                exc_info=(type(response), response, response.__traceback__),
            )
