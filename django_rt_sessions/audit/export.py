"""Streaming exports of the audit log (CSV, JSON Lines), shared by the admin and `rt_sessions_audit`.

Rows are read with `QuerySet.iterator()` (a server-side cursor on PostgreSQL) and written one by one, so
memory stays bounded whatever the size of the table.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

EXPORT_FIELDS = (
    "id",
    "created_at",
    "user_id",
    "username",
    "preset_id",
    "preset_name",
    "outcome",
    "origin",
    "status_code",
    "upstream",
    "upstream_status",
    "upstream_request_id",
    "error_code",
    "error_message",
    "upstream_session_id",
    "expires_at",
    "secret_fingerprint",
    "client_ip",
    "user_agent",
    "upstream_ms",
    "session_config",
)
CHUNK_SIZE = 2000
# A spreadsheet treats a cell starting with one of these as a formula (CSV injection): user agents and
# usernames are user-controlled, so such cells are prefixed with a quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def iter_rows(queryset: QuerySet) -> Iterator[dict[str, Any]]:
    for row in queryset.values(*EXPORT_FIELDS).iterator(chunk_size=CHUNK_SIZE):
        yield {key: _plain(value) for key, value in row.items()}


class _Line:
    """A file-like object whose write() returns what it was given (the csv module's streaming idiom)."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_lines(queryset: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_FIELDS)
    for row in iter_rows(queryset):
        yield writer.writerow([_csv_cell(row[key]) for key in EXPORT_FIELDS])


def jsonl_lines(queryset: QuerySet) -> Iterator[str]:
    for row in iter_rows(queryset):
        yield json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n"
