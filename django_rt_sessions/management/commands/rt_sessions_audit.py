from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ...audit.export import csv_lines, jsonl_lines
from ...models import TokenRequest

FIRST_MOMENT = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
LAST_MOMENT = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def _moment(value: str, option: str, *, end: bool) -> dt.datetime:
    """A date (whole day, in the site's time zone) or an ISO 8601 date-time, in UTC.

    A moment beyond what a datetime can hold (the end of 9999-12-31, 0001-01-01 in a zone ahead of UTC)
    is clamped to the first or last moment there is: it is a bound like any other.
    """
    # A bare date first: Python 3.11's fromisoformat would read it as midnight, losing "the whole day".
    parsed: dt.date | None
    try:
        parsed = parse_date(value) if len(value) == 10 else parse_datetime(value)
    except ValueError:  # well-formed but impossible, like 2026-02-30
        parsed = None
    if parsed is None:
        raise CommandError(f"{option} {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time.")
    try:
        if isinstance(parsed, dt.datetime):
            moment = parsed
        else:  # --until DAY includes that whole day.
            moment = dt.datetime.combine(parsed + dt.timedelta(days=1) if end else parsed, dt.time.min)
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        return moment.astimezone(dt.timezone.utc)
    except OverflowError:
        return LAST_MOMENT if parsed.year > dt.MAXYEAR // 2 else FIRST_MOMENT


class Command(BaseCommand):
    help = "Stream audit rows (TokenRequest) as JSON Lines or CSV, oldest first, for a SIEM or an auditor."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="Write audit rows to standard output (or --output FILE).")
        export.add_argument("--since", help="From this date (inclusive) or date-time.")
        export.add_argument("--until", help="Up to this date (inclusive) or date-time (exclusive).")
        export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="Default: jsonl.")
        export.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = TokenRequest.objects.order_by("created_at", "id")
        if options["since"]:
            rows = rows.filter(created_at__gte=_moment(options["since"], "--since", end=False))
        if options["until"]:
            rows = rows.filter(created_at__lt=_moment(options["until"], "--until", end=True))
        lines = csv_lines(rows) if options["format"] == "csv" else jsonl_lines(rows)
        if not options["output"]:
            for line in lines:
                self.stdout.write(line, ending="")
            return
        try:
            with open(options["output"], "w", encoding="utf-8", newline="") as handle:
                count = sum(handle.write(line) > 0 for line in lines)
        except OSError as exc:
            raise CommandError(f"Cannot write {options['output']}: {exc.strerror}.") from None
        rows_written = count - 1 if options["format"] == "csv" else count
        self.stderr.write(f"Wrote {rows_written} audit rows to {options['output']}.")
