"""The relay's tests run the example project's ASGI application (example_project/asgi.py: the site and the
relay from one process) under a real ASGI server in a subprocess, uvicorn or daphne, with its own database
(a SQLite file, or PostgreSQL in the production tests) and the test's OpenAI stand-in as upstream. Tests
mint tickets through the HTTP API like a browser, connect with real WebSocket clients (websockets, the
official openai SDK), and read the relay's rows from the site's database with SQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from websockets.sync.client import ClientConnection, connect

from django_rt_sessions.testing.audio import base64_frames

from .example_env import clean_environ
from .production_support import (
    LOGIN_PATH,
    ROOT,
    Login,
    browser_login,
    free_port,
    import_presets,
    manage,
    pg_connect,
    tail,
    transcribe,
    wait_for,
)
from .realtime_support import receive, send

RELAY_PATH = "/rt/relay/realtime?intent=transcription"
RELAY_TABLE = "django_rt_sessions_relaysession"
# Every column a test looks at, in this order.
ROW_COLUMNS = (
    "id",
    "username",
    "preset_name",
    "end_reason",
    "ended_at",
    "audio_seconds",
    "upstream_audio_seconds",
    "upstream_tokens",
    "turns",
    "token_request_id",
    "last_seen_at",
)

CREATE_USERS = """
import json, os
from django.contrib.auth import get_user_model
User = get_user_model()
for name, password in json.loads(os.environ["RT_RELAY_USERS"]).items():
    if name.startswith("staff"):
        User.objects.create_superuser(name, password=password)
    else:
        User.objects.create_user(name, password=password)
"""


def relay_preset(name: str, **options: Any) -> dict[str, Any]:
    """A relay preset in the JSON format: gpt-live-transcribe, English, the client commits turns."""
    session = options.pop("session", None) or {
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "en"},
        "turn_detection": None,
    }
    return {
        "name": name,
        "title": name,
        "session": session,
        "expires_after_seconds": 60,
        "overridable": ["language"],
        "relay": True,
        **options,
    }


def measured(module: str) -> list[str]:
    """`python -m module`, under coverage when this pytest process measures it (scripts/test's SQLite pass).

    The relay runs only in these server processes, so without this its modules would read as untested. The
    process writes a parallel data file beside the pytest process's, which pytest-cov combines at the end;
    a graceful stop (SIGTERM) saves it, a SIGKILL loses that process's share.
    """
    try:
        import coverage
    except ImportError:
        return [sys.executable, "-m", module]
    if coverage.Coverage.current() is None:
        return [sys.executable, "-m", module]
    return [
        sys.executable,
        "-m",
        "coverage",
        "run",
        "--parallel-mode",
        f"--rcfile={ROOT / 'pyproject.toml'}",
        f"--data-file={ROOT / '.coverage'}",
        "-m",
        module,
    ]


class RelaySite:
    """The example project under `server` ("uvicorn" or "daphne") on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        standin: Any,
        *,
        server: str = "uvicorn",
        database_url: str | None = None,
        redis_url: str | None = None,
        upstream: str = "openai",
        name: str = "site",
        **env: str,
    ) -> None:
        self.workdir = workdir
        self.standin = standin
        self.server = server
        self.name = name
        self.port = free_port()
        self.database_path = workdir / "relay.sqlite3"
        self.database_url = database_url or f"sqlite:///{self.database_path}"
        base_url = standin.azure_base_url if upstream == "azure" else standin.base_url
        self.env = clean_environ(
            DATABASE_URL=self.database_url,
            OPENAI_API_KEY=standin.api_key,
            OPENAI_BASE_URL=base_url,
            RT_UPSTREAM=upstream,
            # DEBUG: without Redis, the rate-limit cache is per process (fine for one process).
            DJANGO_DEBUG="false" if redis_url else "true",
            DJANGO_SECRET_KEY="relay-tests-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
            **({"REDIS_URL": redis_url} if redis_url else {}),
            **env,
        )
        self.log_path = workdir / f"{server}-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    # ---------------------------------------------------------------- set-up

    def prepare(self, presets: list[dict[str, Any]], users: list[str], *, migrate: bool = True) -> RelaySite:
        if migrate:
            manage(self.env, "migrate", "--noinput")
        if presets:
            import_presets(self.env, presets)
        if users:
            passwords = {name: f"pw-{name}" for name in users}
            manage({**self.env, "RT_RELAY_USERS": json.dumps(passwords)}, "shell", "-c", CREATE_USERS)
        return self

    def command(self) -> list[str]:
        app = "example_project.asgi:application"
        if self.server == "daphne":
            return [*measured("daphne"), "-b", "127.0.0.1", "-p", str(self.port), "-v", "1", app]
        return [
            *measured("uvicorn"),
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    def start(self) -> RelaySite:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603  (our interpreter and server)
                self.command(),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.server} exited:\n{tail(self.log_path)}")
            return requests.get(f"{self.url}{LOGIN_PATH}", timeout=5).status_code == 200

        try:
            wait_for(ready, 60, interval=0.2, what=f"{self.server} to serve the example project")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{tail(self.log_path)}") from None
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: the process is gone at once, without a word to its clients or its database."""
        assert self.process is not None
        os.killpg(self.process.pid, 9)
        self.process.wait(timeout=10)
        self.process = None

    def log(self) -> str:
        return tail(self.log_path, 80)

    # ---------------------------------------------------------------- clients

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def relay_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{RELAY_PATH}"

    def login(self, username: str) -> Login:
        return browser_login(self.url, username, f"pw-{username}")

    def mint(self, login: Login, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A relay session from the API (the 201's body); fails the test on any other answer."""
        with requests.Session() as http:
            result = transcribe(http, self.url, login, body=body)
        assert result.status == 201, (result.describe(), result.body)
        assert result.body["connect"]["api"] == "relay"
        return dict(result.body)

    def open(self, ticket: str, *, browser_style: bool = False, **options: Any) -> ClientConnection:
        """A relay connection with the ticket as an SDK gives a key (Bearer) or as a browser does."""
        if browser_style:
            return connect(
                self.relay_url,
                subprotocols=["realtime", f"openai-insecure-api-key.{ticket}"],  # type: ignore[list-item]
                **options,
            )
        return connect(self.relay_url, additional_headers={"Authorization": f"Bearer {ticket}"}, **options)

    def end_from_admin(self, session_ids: list[str], staff: str = "staff") -> str:
        """Staff's "End session" action in the admin, as a browser posts it; the message the admin shows."""
        return end_from_admin(self.url, session_ids, staff)

    # ---------------------------------------------------------------- the site's database

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        """The relay's rows (RelaySession) with `column = value` for each of `where`."""
        columns = ", ".join(ROW_COLUMNS)
        clauses = " AND ".join(f"{key} = %s" for key in where) or "1 = 1"
        query = f"SELECT {columns} FROM {RELAY_TABLE} WHERE {clauses} ORDER BY started_at"  # noqa: S608
        if self.database_url.startswith("sqlite"):
            with contextlib.closing(
                sqlite3.connect(f"file:{self.database_path}?mode=ro", uri=True, timeout=10)
            ) as db:
                found = db.execute(query.replace("%s", "?"), tuple(where.values())).fetchall()
        else:
            with pg_connect(self.database_url) as db:
                found = db.execute(query, tuple(where.values())).fetchall()
        return [dict(zip(ROW_COLUMNS, row, strict=True)) for row in found]

    def row(self, session_id: str) -> dict[str, Any]:
        (found,) = self.rows(id=session_id)
        return found

    def wait_row(self, session_id: str, timeout: float = 20) -> dict[str, Any]:
        """The row once it is closed."""
        return dict(
            wait_for(
                lambda: next((r for r in self.rows(id=session_id) if r["ended_at"]), None),
                timeout,
                what=f"relay session {session_id} to close",
            )
        )


def end_from_admin(base_url: str, session_ids: list[str], staff: str = "staff") -> str:
    """Log `staff` in and post the relay sessions' "End session" action on the admin at `base_url`."""
    import re

    login = browser_login(base_url, staff, f"pw-{staff}")
    with requests.Session() as browser:
        browser.cookies.update(login.cookies())
        changelist = f"{base_url}/admin/django_rt_sessions/relaysession/"
        page = browser.get(changelist, timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert page.status_code == 200 and token, page.status_code
        response = browser.post(
            changelist,
            data={
                "action": "end_sessions",
                "_selected_action": session_ids,
                "csrfmiddlewaretoken": token.group(1),
            },
            headers={"Referer": changelist},
            timeout=10,
        )
        assert response.status_code == 200, response.status_code
        message = re.search(r'<li class="success">([^<]+)</li>', response.text)
        return message.group(1) if message else response.text[:500]


# ------------------------------------------------------------------------------------- the protocol


def next_event(ws: ClientConnection, kind: str, timeout: float = 20) -> dict[str, Any]:
    """The next server event of `kind`, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        event = receive(ws, timeout=max(0.1, deadline - time.monotonic()))
        if event["type"] == kind:
            return event


def opened(ws: ClientConnection, updated: str = "session.updated") -> dict[str, Any]:
    """The session's opening events as the upstream sends them, unchanged: `session.created`, then the
    answer to the relay's session update carrying the planned session (`updated`); returns that one."""
    assert receive(ws)["type"] == "session.created"
    return next_event(ws, updated)


def append_until_closed(ws: ClientConnection, pcm: bytes, frame_ms: int = 100) -> None:
    """Append `pcm` in frames, until the relay closes the session if it does (a limit, a failure): the
    events it sent before closing stay readable (events_until_closed)."""
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed):
        for frame in base64_frames(pcm, frame_ms):
            send(ws, {"type": "input_audio_buffer.append", "audio": frame})


def events_until_closed(ws: ClientConnection, timeout: float = 20) -> tuple[list[dict[str, Any]], int | None]:
    """Every event until the server closes, and its close code."""
    from websockets.exceptions import ConnectionClosed

    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            events.append(receive(ws, timeout=max(0.1, deadline - time.monotonic())))
    except ConnectionClosed as closed:
        return events, closed.rcvd.code if closed.rcvd else None
    raise AssertionError(f"the relay did not close within {timeout} s: {[e['type'] for e in events]}")


def errors(events: list[dict[str, Any]]) -> list[str]:
    return [event["error"]["code"] for event in events if event["type"] == "error"]


__all__ = [
    "RelaySite",
    "append_until_closed",
    "errors",
    "events_until_closed",
    "next_event",
    "opened",
    "receive",
    "relay_preset",
    "send",
]
