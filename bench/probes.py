"""What bench/load.py reads besides wrk's answers: CPU from /proc, PostgreSQL's backends, Redis's process.

All of it on this machine (loopback services only): a server's CPU is its process tree's; PostgreSQL's is
that of the backends serving one server's connections, found by their `application_name`
(RT_BENCH_APP_NAME in bench/load_settings.py), so another server's or another program's queries are not
counted; Redis's is the whole redis-server process (one for every client it has).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, all its threads (0 if it is gone)."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and its descendants, including children it has reaped."""
    user = system = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        fields = _stat_fields(current)
        if fields is None:
            continue
        user += (int(fields[11]) + int(fields[13])) / TICK  # utime cutime
        system += (int(fields[12]) + int(fields[14])) / TICK  # stime cstime
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return user, system


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants, including children it has reaped."""
    return sum(tree_cpu_split(pid))


class CpuOf:
    """CPU seconds of a changing set of processes between start() and stop().

    `pids()` names the processes now; one that appears during the interval counts from 0 (it started
    then), one that ends during it loses what it used since start() (PostgreSQL backends of pooled or
    persistent connections live as long as the server, so this does not happen during a run).
    """

    def __init__(self, pids: Any) -> None:
        self._pids = pids
        self._before: dict[int, float] = {}

    def start(self) -> None:
        self._before = {pid: process_cpu_seconds(pid) for pid in self._pids()}

    def stop(self) -> float:
        after = {pid: process_cpu_seconds(pid) for pid in self._pids()}
        return sum(max(0.0, cpu - self._before.get(pid, 0.0)) for pid, cpu in after.items())


class Postgres:
    """One connection to the benchmark's PostgreSQL, for what load.py asks it between runs."""

    APP_NAME = "rt-bench-probe"

    def __init__(self, database_url: str) -> None:
        import psycopg  # the virtualenv's (pip install -e '.[bench]')

        parts = urlsplit(database_url)
        self.database = parts.path.lstrip("/")
        self._conn = psycopg.connect(
            host=parts.hostname,
            port=parts.port or 5432,
            user=parts.username or None,
            password=parts.password or None,
            dbname=self.database,
            autocommit=True,
            application_name=self.APP_NAME,
        )

    def close(self) -> None:
        self._conn.close()

    def backend_pids(self, application_name: str) -> list[int]:
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        ).fetchall()
        return [row[0] for row in rows]

    def free_connections(self) -> tuple[int, int]:
        """(connections a new client may still open, max_connections)."""
        limit = int(self._conn.execute("SHOW max_connections").fetchone()[0])
        reserved = 0
        for name in ("superuser_reserved_connections", "reserved_connections"):  # the latter: PG 16+
            row = self._conn.execute("SELECT setting FROM pg_settings WHERE name = %s", [name]).fetchone()
            reserved += int(row[0]) if row else 0
        in_use = self._conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()[0]
        return limit - reserved - in_use, limit

    def audit_outcomes(self) -> dict[str, int]:
        """The benchmark database's audit rows, counted by outcome."""
        rows = self._conn.execute(
            "SELECT outcome, count(*) FROM django_rt_sessions_tokenrequest GROUP BY outcome"
        ).fetchall()
        return {outcome: count for outcome, count in rows}


def redis_pid(redis_url: str) -> int:
    """The process id of the redis-server at redis_url (from INFO, over a plain socket)."""
    parts = urlsplit(redis_url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=5) as sock:
        sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        data = b""
        while b"process_id:" not in data or not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    raise RuntimeError(f"Redis at {redis_url} did not say its process id")
