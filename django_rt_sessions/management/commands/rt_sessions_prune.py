from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ...conf import rt_settings
from ...models import TokenRequest

BATCH_SIZE = 5000


class Command(BaseCommand):
    help = "Delete audit rows (TokenRequest) older than N days, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="Keep this many days (default: AUDIT_RETENTION_DAYS).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help=f"Rows per DELETE (default {BATCH_SIZE})."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] if options["days"] is not None else rt_settings.AUDIT_RETENTION_DAYS
        if days < 0:
            raise CommandError("--days must be 0 or more.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be 1 or more.")
        try:
            cutoff = timezone.now() - dt.timedelta(days=days)
        except OverflowError:
            raise CommandError(f"--days {days} reaches before the year 1.") from None
        old = TokenRequest.objects.filter(created_at__lt=cutoff)
        if options["dry_run"]:
            self.stdout.write(f"Would delete {old.count()} audit rows older than {days} days.")
            return
        deleted = 0
        while True:
            # Delete by primary key in bounded batches: short transactions, bounded memory.
            batch = list(old.order_by("pk").values_list("pk", flat=True)[: options["batch_size"]])
            if not batch:
                break
            deleted += TokenRequest.objects.filter(pk__in=batch).delete()[0]
        self.stdout.write(f"Deleted {deleted} audit rows older than {days} days.")
