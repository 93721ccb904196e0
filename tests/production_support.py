"""Real processes for the production tests (tests/test_production.py): gunicorn instances of the example
project, a private Redis server, a private PostgreSQL cluster, browser-like logins and client load.

Nothing here is mocked: every helper starts, signals or talks to a real process over loopback sockets, and
every process it starts is stopped again by its owner (the fixtures call `stop()`/`destroy()` in finalizers).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from .example_env import clean_environ

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIBE_PATH = "/rt/transcription-sessions/"
LOGIN_PATH = "/accounts/login/"
SECRET_KEY = "production-tests-only-not-secret-0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN_TABLE = "django_rt_sessions_tokenrequest"


SESSION = {
    "input_audio_format": "pcm16",
    "input_audio_noise_reduction": {"type": "near_field"},
    "input_audio_transcription": {"model": "gpt-transcribe", "language": "en", "prompt": ""},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    },
}


# ------------------------------------------------------------------------------------------------- basics


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # the thing polled for is not up yet
            last_error, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what} (last error: {last_error!r})"
            )
        time.sleep(interval)


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def seconds_left(value: str, period: int = 60) -> int:
    """Seconds until django-ratelimit's window for the key `value` ends (its documented alignment)."""
    now = int(time.time())
    end = now - now % period + zlib.crc32(value.encode()) % period
    if end < now:
        end += period
    return end - now


def fresh_window(value: str, need: int, period: int = 60) -> None:
    """Return when the rate window of `value` has at least `need` seconds left (sleeping past its end)."""
    left = seconds_left(value, period)
    if left < need:
        time.sleep(left + 1)
    assert seconds_left(value, period) >= need


def executable(name: str) -> str | None:
    venv = ROOT / ".venv" / "bin" / name
    if venv.exists():
        return str(venv)
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def redis_server_binary() -> str | None:
    found = shutil.which("redis-server")
    return found or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def postgres_bin_dir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.sub(r"\D", "", p.split("/")[-2]) or 0)
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


def with_redis_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{index}").geturl()


def pg_connect(url: str, dbname: str | None = None, timeout: int = 3) -> Any:
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=dbname or parts.path.lstrip("/") or "postgres",
        connect_timeout=timeout,
        autocommit=True,
    )


def recreate_database(server_url: str, name: str) -> str:
    """Drop (disconnecting its users) and create database `name`; returns its URL."""
    with pg_connect(server_url, dbname="postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with pg_connect(server_url, dbname="postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class AuditRow:
    status_code: int
    outcome: str
    error_code: str
    secret_fingerprint: str


def audit_rows(database_url: str, username: str) -> list[AuditRow]:
    """Every audit row (`TokenRequest`) of `username`, read with SQL from the database the app uses."""
    with pg_connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status_code, outcome, error_code, secret_fingerprint "  # noqa: S608  (a constant)
            f"FROM {TOKEN_TABLE} WHERE username = %s",
            (username,),
        ).fetchall()
    return [AuditRow(int(status), str(outcome), str(code), str(fp)) for status, outcome, code, fp in rows]


# ------------------------------------------------------------------------------------- the example project


def app_env(database_url: str, redis_url: str, standin: Any, **extra: str) -> dict[str, str]:
    """The environment of a production-like example project: nothing inherited that it reads itself."""
    env = clean_environ()
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        OPENAI_API_KEY=standin.api_key,
        OPENAI_BASE_URL=standin.base_url,
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        # The documented deployment (docs/deployment.md): sessions cached in the Redis of the rate limits.
        DJANGO_SESSION_ENGINE="django.contrib.sessions.backends.cached_db",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run `manage.py ARGS` of the example project; its output, or AssertionError with it."""
    completed = subprocess.run(  # noqa: S603  (our interpreter, our manage.py)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"manage.py {' '.join(args)} failed:\n{output}"
    return completed.stdout


CREATE_USERS = """
import json, os
from django.contrib.auth import get_user_model
users = {}
for name, password in json.loads(os.environ["RT_PROD_USERS"]).items():
    users[name] = get_user_model().objects.create_user(name, password=password).pk
print("USERS", json.dumps(users))
"""


def prepare_app(env: dict[str, str], presets: list[dict[str, Any]], users: dict[str, str]) -> dict[str, int]:
    """Migrate, import `presets` with `rt_sessions_presets import`, create `users` (name: password).

    Returns each user's pk (the rate-limit key of the per-user limits).
    """
    manage(env, "migrate", "--noinput")
    import_presets(env, presets)
    output = manage({**env, "RT_PROD_USERS": json.dumps(users)}, "shell", "-c", CREATE_USERS)
    line = next(line for line in output.splitlines() if line.startswith("USERS "))
    return {name: int(pk) for name, pk in json.loads(line[len("USERS ") :]).items()}


def import_presets(env: dict[str, str], presets: list[dict[str, Any]]) -> None:
    """`rt_sessions_presets import` of `presets` into the example project's database."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(presets, handle)
    try:
        output = manage(env, "rt_sessions_presets", "import", handle.name)
        assert "Imported" in output, output
    finally:
        os.unlink(handle.name)


def preset(name: str, *, default: bool = False, rate: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "title": name,
        "active": True,
        "default": default,
        "session": dict(SESSION),
        "expires_after_seconds": 60,
        "overridable": ["language"],
        "groups": [],
    }
    if rate:
        data["rate"] = rate
    return data


class Gunicorn:
    """One gunicorn instance of the example project (a "host"): 4 gthread workers, 8 threads each."""

    APP = "example_project.wsgi:application"

    def __init__(self, env: dict[str, str], log_dir: Path, name: str, port: int | None = None) -> None:
        self.env = env
        self.name = name
        self.port = port or free_port()
        self.log_path = log_dir / f"gunicorn-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_options(self) -> list[str]:
        return ["--workers", "4", "--worker-class", "gthread", "--threads", "8"]

    def start(self) -> Gunicorn:
        gunicorn = executable("gunicorn")
        assert gunicorn, "gunicorn is not installed in the virtualenv"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603  (our virtualenv's gunicorn)
                [
                    gunicorn,
                    self.APP,
                    *self.worker_options(),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--timeout",
                    "30",
                    "--graceful-timeout",
                    "5",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills master and workers together
            )
        return self

    def wait_ready(self, timeout: float = 60) -> Gunicorn:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn {self.name} exited:\n{tail(self.log_path)}")
            response = requests.get(f"{self.url}{LOGIN_PATH}", timeout=5)
            return response.status_code == 200 and len(self.worker_pids()) == 4

        try:
            wait_for(ready, timeout, interval=0.2, what=f"gunicorn {self.name} to answer")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{tail(self.log_path)}") from None
        return self

    @property
    def master_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def worker_pids(self) -> frozenset[int]:
        completed = subprocess.run(  # noqa: S603
            ["ps", "--ppid", str(self.master_pid), "-o", "pid="],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        return frozenset(int(pid) for pid in completed.stdout.split())

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # Workers left behind by a master that died first share its process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def log(self) -> str:
        return tail(self.log_path)


def start_all(instances: Iterable[Gunicorn]) -> None:
    started = [instance.start() for instance in instances]
    for instance in started:
        instance.wait_ready()


# ------------------------------------------------------------------------------------------------ services


class RedisServer:
    """A private redis-server on a fixed loopback port, without persistence: kill it, start it again."""

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_dir / f"redis-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def start(self) -> RedisServer:
        binary = redis_server_binary()
        assert binary, "redis-server is not installed"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self.ping, 10, what=f"redis on port {self.port}")
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)
            wait_for(self.ping, 10, what="redis to answer")
        else:
            self.start()

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing answers (a stuck server)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the server is gone at once; its port refuses connections."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class PostgresCluster:
    """A private PostgreSQL cluster in a temporary directory, run as the postgres user when we are root."""

    def __init__(self, port: int | None = None) -> None:
        bin_dir = postgres_bin_dir()
        assert bin_dir, "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        self.bin_dir = bin_dir
        self.port = port or free_port()
        self.as_root = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="rt-prod-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.initialised = False

    def url(self, db: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return subprocess.run(  # noqa: S603
            [*prefix, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=self.dir
        )

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        completed = self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options, *args
        )
        if check:
            output = f"{completed.stdout}{completed.stderr}\n{tail(self.log_path)}"
            assert completed.returncode == 0, f"pg_ctl {' '.join(args)} failed:\n{output}"

    def init(self) -> PostgresCluster:
        completed = self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N"
        )
        assert completed.returncode == 0, f"initdb failed:\n{completed.stdout}{completed.stderr}"
        self.initialised = True
        return self

    def ready(self) -> bool:
        with pg_connect(self.url(), timeout=1) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def start(self) -> None:
        self._pg_ctl("-w", "-t", "30", "start")
        wait_for(self.ready, 10, what="the private PostgreSQL")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-t", "30", "-m", mode, "stop")

    def restart(self) -> None:
        self._pg_ctl("-w", "-t", "30", "-m", "fast", "restart")
        wait_for(self.ready, 10, what="the private PostgreSQL")

    def running(self) -> bool:
        completed = self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status")
        return completed.returncode == 0

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def destroy(self) -> None:
        if self.initialised and self.running():
            self._pg_ctl("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Login:
    sessionid: str
    csrftoken: str

    def cookies(self) -> dict[str, str]:
        return {"sessionid": self.sessionid, "csrftoken": self.csrftoken}


def browser_login(base_url: str, username: str, password: str) -> Login:
    """Log in like a browser: the login page for the CSRF cookie and token, then the credentials."""
    with requests.Session() as browser:
        page = browser.get(f"{base_url}{LOGIN_PATH}", timeout=10)
        assert page.status_code == 200, page.status_code
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, "no CSRF token in the login form"
        response = browser.post(
            f"{base_url}{LOGIN_PATH}",
            data={"username": username, "password": password, "csrfmiddlewaretoken": match.group(1)},
            headers={"Referer": f"{base_url}{LOGIN_PATH}"},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, f"login of {username} failed: {response.status_code}"
        return Login(sessionid=browser.cookies["sessionid"], csrftoken=browser.cookies["csrftoken"])


@dataclass
class Result:
    """One token request as its client saw it (monotonic times)."""

    started: float
    ended: float
    status: int | None = None
    code: str | None = None
    retry_after: str | None = None
    body: Any = None
    error: str | None = None  # a transport failure: no HTTP response at all
    target: str = ""

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    def envelope_ok(self) -> bool:
        """A 201 with an ek_ key, or an error in the error envelope of docs/http-api.md {"detail", "code"}."""
        if self.status == 201:
            secret = (self.body or {}).get("client_secret") if isinstance(self.body, dict) else None
            return isinstance(secret, dict) and str(secret.get("value", "")).startswith("ek_")
        return (
            isinstance(self.body, dict)
            and set(self.body) <= {"detail", "code", "errors"}
            and isinstance(self.body.get("detail"), str)
            and isinstance(self.body.get("code"), str)
        )

    def describe(self) -> str:
        what = self.error or f"{self.status} {self.code or ''} Retry-After={self.retry_after}"
        return f"{what} after {self.elapsed:.2f}s ({self.target})"


def transcribe(
    http: requests.Session, base_url: str, login: Login, body: Any = None, timeout: float = 30
) -> Result:
    started = time.monotonic()
    try:
        response = http.post(
            f"{base_url}{TRANSCRIBE_PATH}",
            data=json.dumps(body or {}),
            headers={"Content-Type": "application/json", "X-CSRFToken": login.csrftoken},
            cookies=login.cookies(),
            timeout=timeout,
        )
    except requests.RequestException as exc:
        return Result(started, time.monotonic(), error=f"{type(exc).__name__}: {exc}", target=base_url)
    ended = time.monotonic()
    try:
        data = response.json()
    except ValueError:
        data = response.text[:200]
    return Result(
        started,
        ended,
        status=response.status_code,
        code=data.get("code") if isinstance(data, dict) else None,
        retry_after=response.headers.get("Retry-After"),
        body=data,
        target=base_url,
    )


def burst(urls: list[str], login: Login, count: int, timeout: float = 60, body: Any = None) -> list[Result]:
    """`count` requests at once (a thread and a connection each, released together), spread over `urls`."""
    barrier = threading.Barrier(count, timeout=timeout)

    def fire(index: int) -> Result:
        with requests.Session() as http:
            barrier.wait()
            return transcribe(http, urls[index % len(urls)], login, body=body, timeout=timeout)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(fire, range(count)))


@dataclass
class Load:
    """Client threads that keep requesting tokens until stopped (bounded by count and time)."""

    base_url: str
    login: Login
    threads: int = 4
    timeout: float = 15
    max_seconds: float = 90
    max_requests_per_thread: int = 2000
    pause: float = 0.02
    results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as http:
            for _ in range(self.max_requests_per_thread):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                result = transcribe(http, self.base_url, self.login, timeout=self.timeout)
                with self._lock:
                    self.results.append(result)
                if result.error:
                    http.close()  # start the next request on a fresh connection
                self._stop.wait(self.pause)

    def start(self) -> Load:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Result]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a client thread hangs"
        with self._lock:
            return sorted(self.results, key=lambda result: result.started)

    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
