"""The relay in production shape: two "hosts", each gunicorn with uvicorn (ASGI) workers serving the
example project's asgi.py, one PostgreSQL database and one Redis (rate limits, the channel layer) between
them, the OpenAI stand-in as upstream (docs/deployment.md#the-relay).

- a user capped at one open session connects 20 times at once across both hosts: exactly one is accepted;
- staff end a session relayed by host B from host A's admin: it ends within 2 s;
- a relay host killed with SIGKILL: its session's row closes as `relay_lost` within 30 s, by the other
  host's sweep, with the audio counted up to its last save.

`scripts/test` runs this module in its PostgreSQL + Redis pass.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from django_rt_sessions.testing.audio import base64_frames, silence

from .production_support import (
    Gunicorn,
    Login,
    app_env,
    browser_login,
    drop_database,
    manage,
    recreate_database,
    tail,
    transcribe,
    wait_for,
)
from .relay_support import (
    CREATE_USERS,
    RELAY_PATH,
    end_from_admin,
    errors,
    events_until_closed,
    opened,
    relay_preset,
)
from .relay_support import send as send_event
from .test_production import _flush_redis, services, standin  # noqa: F401  (the module's fixtures)

pytestmark = pytest.mark.production

HIGH_RATE = "100000/m"
USERS = ["racer", "watcher", "anchor", "victim", "staff"]
PRESETS = [
    relay_preset("relay-one", max_concurrent_sessions=1, rate="1000/m"),
    relay_preset("relay-long", idle_timeout_seconds=120, rate="1000/m"),
]


class AsgiHost(Gunicorn):
    """One host: gunicorn with two uvicorn workers (uvicorn-worker) serving example_project.asgi."""

    APP = "example_project.asgi:application"
    WORKERS = 2

    def worker_options(self) -> list[str]:
        return ["--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(self.WORKERS)]

    def wait_ready(self, timeout: float = 60) -> AsgiHost:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn {self.name} exited:\n{tail(self.log_path)}")
            response = requests.get(f"{self.url}/accounts/login/", timeout=5)
            return response.status_code == 200 and len(self.worker_pids()) == self.WORKERS

        wait_for(ready, timeout, interval=0.2, what=f"gunicorn {self.name} (ASGI) to answer")
        return self

    @property
    def relay_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{RELAY_PATH}"

    def kill(self) -> None:
        """SIGKILL to the master and its workers: the host is gone without a word to anyone."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


@dataclass
class RelayHosts:
    a: AsgiHost
    b: AsgiHost
    database_url: str

    def mint(self, host: AsgiHost, login: Login, preset: str) -> dict[str, Any]:
        with requests.Session() as http:
            result = transcribe(http, host.url, login, body={"preset": preset})
        assert result.status == 201, result.describe()
        return dict(result.body)

    def row(self, session_id: str) -> dict[str, Any]:
        from .production_support import pg_connect

        with pg_connect(self.database_url) as db:
            found = db.execute(
                "SELECT end_reason, audio_seconds, ended_at, last_seen_at "
                "FROM django_rt_sessions_relaysession WHERE id = %s",
                (session_id,),
            ).fetchone()
        assert found is not None, session_id
        return dict(zip(("end_reason", "audio_seconds", "ended_at", "last_seen_at"), found, strict=True))

    def count(self, username: str) -> int:
        from .production_support import pg_connect

        with pg_connect(self.database_url) as db:
            (count,) = db.execute(  # type: ignore[misc]
                "SELECT count(*) FROM django_rt_sessions_relaysession WHERE username = %s", (username,)
            ).fetchone()
        return int(count)


@pytest.fixture(scope="module")
def hosts(services: Any, standin: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayHosts]:  # noqa: F811
    name = (urlsplit(services.database_url).path.lstrip("/") or "rt_sessions") + "_relay"
    database_url = recreate_database(services.database_url, name)
    redis_url = services.redis_url  # the suite's own Redis db: it flushes it anyway
    _flush_redis(redis_url)
    env = {**app_env(database_url, redis_url, standin), "RT_USER_RATE": HIGH_RATE, "RT_IP_RATE": HIGH_RATE}
    log_dir = tmp_path_factory.mktemp("production-relay")
    manage(env, "migrate", "--noinput")
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(PRESETS, handle)
    try:
        manage(env, "rt_sessions_presets", "import", handle.name)
    finally:
        os.unlink(handle.name)
    manage({**env, "RT_RELAY_USERS": json.dumps({u: f"pw-{u}" for u in USERS})}, "shell", "-c", CREATE_USERS)
    a, b = AsgiHost(env, log_dir, "relay-a"), AsgiHost(env, log_dir, "relay-b")
    try:
        for host in (a, b):
            host.start()
        for host in (a, b):
            host.wait_ready()
        yield RelayHosts(a, b, database_url)
    finally:
        for host in (a, b):
            if host.process is not None:
                host.stop()
        _flush_redis(redis_url)
        drop_database(services.database_url, name)


def open_ws(url: str, ticket: str) -> Any:
    return connect(url, additional_headers={"Authorization": f"Bearer {ticket}"}, open_timeout=30)


def test_one_session_per_user_across_two_hosts(hosts: RelayHosts) -> None:
    login = browser_login(hosts.a.url, "racer", "pw-racer")
    tickets = [
        hosts.mint(hosts.a if n % 2 else hosts.b, login, "relay-one")["client_secret"]["value"]
        for n in range(20)
    ]
    barrier = threading.Barrier(20, timeout=30)
    release = threading.Event()

    def race(n: int) -> str:
        url = (hosts.a if n % 2 else hosts.b).relay_url
        barrier.wait()
        try:
            ws = open_ws(url, tickets[n])
        except InvalidStatus as refused:
            return f"refused {refused.response.status_code}"
        with ws:
            first = json.loads(ws.recv(timeout=30))
            if first["type"] == "session.created":
                release.wait(60)  # hold the one session open until every other connection is answered
                return "accepted"
            _events, code = events_until_closed(ws)
            return f"{first['error']['code'] if first['type'] == 'error' else first['type']} {code}"

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(race, n) for n in range(20)]
        wait_for(lambda: sum(f.done() for f in futures) >= 19, 60, what="19 refusals")
        release.set()
        outcomes = [f.result() for f in futures]
    assert sorted(outcomes) == ["accepted"] + ["session_limit_reached 1008"] * 19, outcomes
    assert hosts.count("racer") == 1


def test_staff_end_a_session_on_host_b_from_host_a(hosts: RelayHosts) -> None:
    body = hosts.mint(hosts.b, browser_login(hosts.b.url, "watcher", "pw-watcher"), "relay-long")
    with open_ws(hosts.b.relay_url, body["client_secret"]["value"]) as ws:
        opened(ws)
        for frame in base64_frames(silence(2000)):
            send_event(ws, {"type": "input_audio_buffer.append", "audio": frame})
        assert "Asked 1 session to end" in end_from_admin(hosts.a.url, [body["id"]])
        asked = time.monotonic()
        events, code = events_until_closed(ws, timeout=2)  # "within 2 s, wherever it runs"
        assert time.monotonic() - asked <= 2
    assert ("session_ended" in errors(events), code) == (True, 1000)
    assert wait_for(lambda: hosts.row(body["id"])["end_reason"] == "ended_by_staff", 10)


def test_a_killed_relay_host_leaves_a_relay_lost_row_with_its_saved_audio(hosts: RelayHosts) -> None:
    # A session on host A keeps a relay process there (its clock, and so its sweep) running.
    anchor = hosts.mint(hosts.a, browser_login(hosts.a.url, "anchor", "pw-anchor"), "relay-long")
    victim = hosts.mint(hosts.b, browser_login(hosts.b.url, "victim", "pw-victim"), "relay-long")
    with open_ws(hosts.a.relay_url, anchor["client_secret"]["value"]) as kept:
        opened(kept)
        send_event(kept, {"type": "input_audio_buffer.append", "audio": base64_frames(silence(100))[0]})
        with open_ws(hosts.b.relay_url, victim["client_secret"]["value"]) as ws:
            opened(ws)
            for frame in base64_frames(silence(8000)):
                send_event(ws, {"type": "input_audio_buffer.append", "audio": frame})
            # The relay saves its counters every 5 s: wait for the save that holds all 8 s.
            wait_for(
                lambda: hosts.row(victim["id"])["audio_seconds"] == pytest.approx(8.0), 15, what="a save"
            )
            hosts.b.kill()
            killed = time.monotonic()

            def lost() -> dict[str, Any] | None:
                found = hosts.row(victim["id"])
                return found if found["end_reason"] == "relay_lost" else None

            row = wait_for(lost, 40, interval=0.5, what="the sweep")
            assert time.monotonic() - killed <= 30
            ws.close_socket()
    assert row["audio_seconds"] == pytest.approx(8.0)  # counted up to the last save
    assert row["ended_at"] == row["last_seen_at"]
    # Host A ends the anchor's row once it has seen the close, a moment after the client's close returns.
    assert wait_for(
        lambda: hosts.row(anchor["id"])["end_reason"] == "client_closed", 10, what="the anchor's end"
    )
