"""Benchmark: the audit admin on 1,000,000 rows in PostgreSQL (issue: staff experience).

    .venv/bin/python bench/admin_pages.py [--rows 1000000] [--repeat 15] [--keep]

Fills a database of its own (RT_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
rt_sessions_bench) with audit rows spread over 90 days, then prints, for each admin page, the median
render time over repeated requests through Django's full stack (in process, logged in as a superuser),
and the peak memory (max RSS) of `rt_sessions_audit export` and `rt_sessions_prune` run over the whole
table in their own processes. Targets: every page under 300 ms median; export and prune under 200 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

PAGE_TARGET_MS = 300
MEMORY_TARGET_MB = 200


def ensure_database() -> None:
    import psycopg
    from django.conf import settings

    cfg = settings.DATABASES["default"]
    with psycopg.connect(
        host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"], dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


FILL_SQL = """
INSERT INTO django_rt_sessions_tokenrequest (
    created_at, user_id, username, preset_id, preset_name, outcome, status_code, upstream, upstream_status,
    upstream_request_id, error_code, error_message, session_config, upstream_session_id, expires_at,
    secret_fingerprint, client_ip, user_agent, upstream_ms)
SELECT
    now() - (random() * interval '90 days'),
    NULL,
    'user' || (g %% 500),
    NULL,
    'preset-' || (g %% 5),
    o.outcome,
    o.status,
    'openai',
    CASE WHEN o.outcome = 'issued' THEN 200 ELSE NULL END,
    'req_' || md5(g::text),
    CASE WHEN o.outcome = 'issued' THEN '' ELSE o.outcome END,
    '',
    '{"session": {"type": "transcription"}}'::jsonb,
    CASE WHEN o.outcome = 'issued' THEN 'sess_' || md5('s' || g::text) ELSE '' END,
    CASE WHEN o.outcome = 'issued' THEN now() + interval '60 seconds' ELSE NULL END,
    CASE WHEN o.outcome = 'issued' THEN md5('a' || g::text) || md5('b' || g::text) ELSE '' END,
    ('10.' || (g %% 250) || '.' || (g %% 200) || '.' || (g %% 100))::inet,
    'Mozilla/5.0 bench',
    (random() * 400)::int
FROM generate_series(1, %s) AS g
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN g %% 20 < 16 THEN 'issued' WHEN g %% 20 = 16 THEN 'rate_limited' WHEN g %% 20 = 17 THEN 'invalid'
        WHEN g %% 20 = 18 THEN 'upstream_error' ELSE 'upstream_timeout' END AS outcome,
    CASE
        WHEN g %% 20 < 16 THEN 201 WHEN g %% 20 = 16 THEN 429 WHEN g %% 20 = 17 THEN 400
        WHEN g %% 20 = 18 THEN 502 ELSE 504 END AS status
) AS o
"""


def fill(rows: int) -> None:
    from django.db import connection

    from django_rt_sessions.models import TokenRequest

    have = TokenRequest.objects.count()
    if have == rows:
        print(f"  reusing {have} rows")
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_rt_sessions_tokenrequest")
        cursor.execute(FILL_SQL, [rows])
    with connection.cursor() as cursor:
        # What autovacuum does to a table in steady state (visibility map for index-only scans, statistics).
        cursor.execute("VACUUM ANALYZE django_rt_sessions_tokenrequest")
    print(f"  filled {rows} rows in {time.perf_counter() - started:.1f} s")


def median_ms(client, url: str, repeat: int, before=None) -> float:  # type: ignore[no-untyped-def]
    timings = []
    for attempt in range(repeat + 1):
        if before:
            before()
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (url, response.status_code)
        if attempt:  # the first request warms caches and connections
            timings.append(elapsed)
    return statistics.median(timings)


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run a management command in its own process; return (max RSS in MB, seconds)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "PYTHONPATH": str(ROOT)}
    script = (
        "import resource, sys, django; django.setup();"
        "from django.core.management import call_command;"
        f"call_command(*{args!r});"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    return int(done.stderr.strip().splitlines()[-1]) / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--keep", action="store_true", help="Skip the prune measurement (it deletes the rows)."
    )
    options = parser.parse_args()

    import django

    django.setup()
    ensure_database()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from django_rt_sessions.audit import report as audit_report
    from django_rt_sessions.models import SessionPreset, TokenRequest

    call_command("migrate", verbosity=0)
    print(f"Audit admin benchmark: {options.rows} rows, median of {options.repeat} requests per page")
    fill(options.rows)
    for i in range(5):
        SessionPreset.objects.get_or_create(name=f"preset-{i}")
    admin_user = get_user_model().objects.filter(username="bench-admin").first() or (
        get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "bench")
    )
    client = Client()
    client.force_login(admin_user)
    sample = TokenRequest.objects.filter(outcome="issued").order_by("-created_at").first()
    today = timezone.localtime(sample.created_at)
    tomorrow = today.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    week_ago = tomorrow - dt.timedelta(days=8)
    base = "/admin/django_rt_sessions/tokenrequest/"
    pages = {
        "changelist, first page": base,
        "changelist, page 50": f"{base}?p=50",
        "filter: outcome=rate_limited": f"{base}?outcome=rate_limited",
        "filter: preset + past 7 days": (
            f"{base}?preset={SessionPreset.objects.get(name='preset-1').pk}"
            f"&created_at__gte={quote(str(week_ago))}&created_at__lt={quote(str(tomorrow))}"
        ),
        "search: username": f"{base}?q=user42",
        "search: key fingerprint": f"{base}?q={sample.secret_fingerprint}",
        "search: upstream session id": f"{base}?q={sample.upstream_session_id}",
        "date drill-down: year": f"{base}?created_at__year={today.year}",
        "date drill-down: month": f"{base}?created_at__year={today.year}&created_at__month={today.month}",
        "date drill-down: day": (
            f"{base}?created_at__year={today.year}&created_at__month={today.month}&created_at__day={today.day}"
        ),
        "detail page": f"{base}{sample.pk}/change/",
    }
    results = []
    for name, url in pages.items():
        results.append((name, median_ms(client, url, options.repeat)))
    results.append(
        ("changelist with the chart uncached", median_ms(client, base, options.repeat, cache.clear))
    )

    def chart_only() -> None:
        audit_report.render_chart(audit_report.daily_outcomes())
        audit_report.top_requesters()

    timings = []
    for _ in range(options.repeat):
        started = time.perf_counter()
        chart_only()
        timings.append((time.perf_counter() - started) * 1000)
    results.append(("chart + top requesters (queries + SVG)", statistics.median(timings)))

    print(f"\n{'page':45} {'median ms':>10} {'/ target':>9}")
    for name, ms in results:
        print(f"{name:45} {ms:10.1f} {ms / PAGE_TARGET_MS:9.2f}")

    print(f"\n{'command over the whole table':45} {'peak MB':>10} {'/ target':>9} {'seconds':>8}")
    for label, args in [
        (
            "rt_sessions_audit export --format csv",
            ["rt_sessions_audit", "export", "--format", "csv", "--output", os.devnull],
        ),
        ("rt_sessions_audit export --format jsonl", ["rt_sessions_audit", "export", "--output", os.devnull]),
        ("rt_sessions_prune --dry-run", ["rt_sessions_prune", "--days", "0", "--dry-run"]),
    ] + ([] if options.keep else [("rt_sessions_prune --days 0", ["rt_sessions_prune", "--days", "0"])]):
        mb, seconds = peak_rss_mb(args)
        print(f"{label:45} {mb:10.1f} {mb / MEMORY_TARGET_MB:9.2f} {seconds:8.1f}")


if __name__ == "__main__":
    main()
