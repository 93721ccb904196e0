"""`manage.py rt_sessions_relay_sweep`: close the relay sessions of relay processes that died (docs/relay.md).

Every relay process also sweeps every 10 seconds; this command covers the time when none runs. Schedule it
every minute (cron, a systemd timer, your platform's scheduler): see docs/deployment.md#the-relay.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ...relay.sessions import STALE_AFTER, sweep


class Command(BaseCommand):
    help = (
        "Close relay sessions whose relay process stopped saving them (relay_lost), with the audio counted "
        "up to their last save; delete relay tickets that can no longer be used."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        closed = sweep()
        stale = int(STALE_AFTER.total_seconds())
        self.stdout.write(f"Closed {closed} relay session(s) unsaved for over {stale} s (relay_lost).")
