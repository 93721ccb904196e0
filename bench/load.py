"""Load benchmark of the token endpoint: ours against a hand-written Django view, a WSGI floor and Express.

    .venv/bin/python bench/load.py            # 2 delays x 4 concurrencies x 5 servers, 10 s each
    .venv/bin/python bench/load.py --quick    # 3 s runs, for trying things
    .venv/bin/python bench/load.py --servers ours,django-best --delays 300 --concurrency 256 --duration 20
    .venv/bin/python bench/load.py --servers ours --delays 0 --concurrency 64 --profile /tmp/prof

Starts, all on 127.0.0.1, a fast upstream stand-in (bench/fast_upstream.py) whose delay is switched
between runs, and these servers, each alone while it is measured (started for its run, stopped after it,
so that no idle server holds PostgreSQL connections another needs):

  ours           the example project under the documented deployment: example_project/gunicorn.conf.py
                 (gevent), Django's PostgreSQL pool (DATABASE_POOL=16), Redis cache, cached_db sessions,
                 DEBUG off (bench/load_settings.py), a real audit row and real rate-limit counting
  django-gevent  the hand-written peer (bench/handwritten/): the same project settings, one view that
                 requires a logged-in user and makes the same upstream POST; the same deployment as ours
  django-best    the hand-written peer in its own best deployment: gthread workers with persistent
                 connections, as many threads as PostgreSQL's max_connections leaves room for
  floor          bench/floor.py: a WSGI function making the upstream call (no Django), gevent
  express        bench/express/: a minimal Node/Express token route

It logs in once through a login page and drives every server with wrk (bench/wrk_post.lua) sending
authenticated, CSRF-correct POSTs, then prints per run the tokens/s, p50/p99 latency, failures and the CPU
each issued token cost the server's processes, its PostgreSQL backends and Redis (from /proc), the ratios
of ours to each peer, whether the targets are met, and whether the audit rows match the keys handed out.

Prerequisites (checked, with what to run when missing; nothing is installed here):
wrk (`apt-get update && apt-get install -y wrk`), node and bench/express/node_modules
(`npm ci --prefix bench/express`), gunicorn, gevent and psycopg[pool] in the virtualenv
(`pip install -e '.[bench]'`), PostgreSQL on 127.0.0.1:5432 (RT_BENCH_LOAD_DATABASE_URL; the database
rt_bench_load is created and its audit table emptied) and Redis on 127.0.0.1:6379 (RT_BENCH_REDIS_URL,
default db 10, which is flushed). Run it with the virtualenv's Python: it reads PostgreSQL with psycopg.

The machine's cores are shared by the load generator, the upstream, the server, PostgreSQL and Redis:
compare servers by the ratios of one run, not by absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import probes
from bench.probes import tree_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/rt_bench_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
BENCH_USER, BENCH_PASSWORD = "bench", "bench-load-password"  # a throwaway account in a throwaway database
BENCH_PRESET = "bench"
API_PATH = "/rt/transcription-sessions/"
SERVERS = ("ours", "django-gevent", "django-best", "floor", "express")
DJANGO_SERVERS = ("ours", "django-gevent", "django-best")
PEERS = ("django-best", "django-gevent", "floor", "express")  # ours is compared with each, in this order
# The documented deployment (docs/deployment.md): gevent workers, one per core, a pool of 16 per worker.
DEPLOYMENT_POOL = 16
WORKERS = os.cpu_count() or 2  # example_project/gunicorn.conf.py's default
# PostgreSQL connections django-best leaves free: load.py's own and one for a psql or a migration.
BEST_CONNECTION_MARGIN = 3

# The targets (the ratios of one run on one machine).
FAST_DELAY_MS, FAST_CLIENTS, FAST_BEST_RATIO = 0, 64, 0.7
SLOW_DELAY_MS, SLOW_CLIENTS = 300, 256
SLOW_BEST_RATIO, SLOW_FLOOR_RATIO, SLOW_P99_FACTOR = 1.5, 0.6, 4.0


class Missing(Exception):
    """A prerequisite is missing; the message says how to get it."""


@dataclass
class Result:
    server: str
    delay_ms: int
    clients: int
    requests: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    # CPU per issued (201) token: the server's process tree, and each service's ("postgres", "redis").
    cpu_ms_per_token: float | None = None
    service_cpu_ms_per_token: dict[str, float] = field(default_factory=dict)
    system_share: float | None = None  # of the server's CPU, the kernel's (system time)
    warmup_ok: int = 0  # 201s of the warm-up before the run
    profiled: bool = False

    @property
    def ok(self) -> int:
        return self.statuses.get("201", 0)

    @property
    def rps(self) -> float:
        """Successful (201) answers per second: the tokens a server actually hands out."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        socket_errors = sum(v for k, v in self.errors.items() if k != "status")
        if not self.requests:
            return max(1, socket_errors)  # nothing came back within the run: count it as failed
        return self.requests - self.ok + socket_errors


# --------------------------------------------------------------------------- prerequisites


def venv_python() -> str:
    candidate = ROOT / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def check_prerequisites(servers: list[str], python: str, database_url: str, redis_url: str) -> None:
    problems = []
    if shutil.which("wrk") is None:
        problems.append("wrk is not installed: run `apt-get update && apt-get install -y wrk`.")
    if "express" in servers:
        if shutil.which("node") is None:
            problems.append("node is not installed: run `apt-get install -y nodejs npm`.")
        elif not (ROOT / "bench" / "express" / "node_modules" / "express").is_dir():
            problems.append("Express is not installed: run `npm ci --prefix bench/express`.")
    if set(servers) - {"express"}:
        probe = subprocess.run(  # noqa: S603
            [python, "-c", "import gunicorn, gevent, psycopg, psycopg_pool, django_redis, requests"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            problems.append(
                f"The virtualenv ({python}) lacks a package ({last}):"
                f" run `{python} -m pip install -e '.[bench]'`."
            )
    if set(DJANGO_SERVERS) & set(servers):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            problems.append(f"psycopg is missing here: run load.py with the virtualenv's Python ({python}).")
        for name, url, default_port in (("PostgreSQL", database_url, 5432), ("Redis", redis_url, 6379)):
            parts = urlsplit(url)
            if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
                problems.append(f"{name} must be on loopback for the benchmark, not {parts.hostname}.")
                continue
            try:
                socket.create_connection((parts.hostname, parts.port or default_port), timeout=2).close()
            except OSError:
                problems.append(f"{name} is not reachable at {parts.hostname}:{parts.port or default_port}.")
    if problems:
        raise Missing("\n".join(f"- {p}" for p in problems))


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Processes:
    """The processes this run started, each in its own process group, stopped by their own ids."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - our own argv
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()  # the child has its own copy
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
            return "\n".join(text.strip().splitlines()[-lines:])
        return ""

    def report_failure(self, what: str, exc: BaseException) -> None:
        """Say why a run stopped, with the last lines each process logged."""
        print(f"\n{what} stopped: {exc}", file=sys.stderr)
        for name in self.procs:
            tail = self.log_tail(name)
            if tail:
                print(f"--- last lines of {name}.log:\n{tail}", file=sys.stderr)

    def stop(self, name: str) -> None:
        """Stop one process group (SIGTERM: gunicorn lets the requests in flight finish), then forget it."""
        proc = self.procs.pop(name)
        _stop([proc])

    def stop_all(self) -> None:
        # Servers first, the upstream last: requests still in flight then end cleanly.
        _stop(list(reversed(self.procs.values())))
        self.procs.clear()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no answer from {url} after {timeout:.0f} s")


# --------------------------------------------------------------------------- environments


def common_environment(upstream: str) -> dict[str, str]:
    """What every server gets: this shell's environment without Django's or the app's, the upstream."""
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "RT_SESSIONS", "GUNICORN_", "DATABASE_"))
        and k not in ("REDIS_URL", "WEB_CONCURRENCY")
    }
    return {
        **base_env,
        "OPENAI_API_KEY": "sk-bench-not-a-real-key",
        "OPENAI_BASE_URL": f"{upstream}/v1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def upstream_base(upstream: str, caller: str) -> str:
    """The upstream's base URL for one server: fast_upstream.py counts the keys it hands out per caller."""
    return f"{upstream}/{caller}/v1"


def django_environment(
    common: dict[str, str],
    src: Path,
    database_url: str,
    redis_url: str,
    port: int,
    *,
    name: str,
    settings: str,
    threads: int | None = None,
) -> dict[str, str]:
    """A Django server of the benchmark on 127.0.0.1:port, with the example project's settings read from
    the documented deployment's environment: gevent and the pool, or (threads given) gthread with
    persistent connections (the example's DATABASE_CONN_MAX_AGE default)."""
    env = {
        **common,
        "PYTHONPATH": str(src.resolve()),
        "DJANGO_SETTINGS_MODULE": settings,
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SESSION_ENGINE": "django.contrib.sessions.backends.cached_db",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RT_BENCH_APP_NAME": name,
        "GUNICORN_BIND": f"{HOST}:{port}",
    }
    if threads is None:
        env.update(GUNICORN_WORKER_CLASS="gevent", DATABASE_POOL=str(DEPLOYMENT_POOL))
    else:
        env.update(GUNICORN_WORKER_CLASS="gthread", GUNICORN_THREADS=str(threads))
    return env


def ours_environment(
    common: dict[str, str],
    src: Path,
    database_url: str,
    redis_url: str,
    port: int,
    settings: str = "bench.load_settings",
) -> dict[str, str]:
    """The example project as deployed (docs/deployment.md) on 127.0.0.1:port."""
    return django_environment(common, src, database_url, redis_url, port, name="ours", settings=settings)


def floor_environment(common: dict[str, str], upstream: str, port: int) -> dict[str, str]:
    return {
        **common,
        "PYTHONPATH": str(ROOT),
        "FLOOR_UPSTREAM_URL": upstream_base(upstream, "floor"),
        "GUNICORN_BIND": f"{HOST}:{port}",
    }


def best_threads(database_url: str, workers: int = WORKERS) -> tuple[int, str]:
    """Threads per gthread worker for django-best: one persistent connection each, within max_connections."""
    pg = probes.Postgres(database_url)
    try:
        free, limit = pg.free_connections()
    finally:
        pg.close()
    threads = max(1, (free - BEST_CONNECTION_MARGIN) // workers)
    why = (
        f"{workers} workers x {threads} threads (PostgreSQL max_connections {limit},"
        f" {limit - free} in use or reserved, {BEST_CONNECTION_MARGIN} kept free)"
    )
    return threads, why


# --------------------------------------------------------------------------- ours: database and login

PREPARE_SCRIPT = """
import django, psycopg
from django.conf import settings
cfg = settings.DATABASES["default"]
with psycopg.connect(host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"] or None,
                     password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
        conn.execute('CREATE DATABASE "%s"' % cfg["NAME"])
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django_rt_sessions.models import SessionPreset, TokenRequest
User = get_user_model()
user = User.objects.filter(username=USER).first() or User(username=USER)
user.is_active = True
user.set_password(PASSWORD)
user.save()
TokenRequest.objects.all()._raw_delete(TokenRequest.objects.db)
SessionPreset.objects.filter(default=True).exclude(name=PRESET).update(default=False)
SessionPreset.objects.update_or_create(name=PRESET, defaults=dict(
    title="Load benchmark", active=True, default=True, expires_after_seconds=60, rate="",
    overridable=["language", "prompt", "noise_reduction"],
    session={
        "input_audio_format": "pcm16",
        "input_audio_noise_reduction": {"type": "near_field"},
        "input_audio_transcription": {"model": "gpt-transcribe", "language": "en", "prompt": ""},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                           "silence_duration_ms": 500},
    }))
for alias in settings.CACHES:
    caches[alias].clear()
print("prepared", cfg["NAME"])
"""


def prepare_ours(python: str, env: dict[str, str], src: Path) -> None:
    script = (
        f"USER, PASSWORD, PRESET = {BENCH_USER!r}, {BENCH_PASSWORD!r}, {BENCH_PRESET!r}\n" + PREPARE_SCRIPT
    )
    done = subprocess.run(  # noqa: S603
        [python, "-c", script], cwd=src, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"preparing the database failed:\n{done.stderr.strip()[-3000:]}")


def login(base: str) -> tuple[str, str]:
    """Log in through the login page like a browser; return (Cookie header, CSRF token)."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not match:
        raise RuntimeError("no CSRF token on the login page")
    form = urlencode(
        {"username": BENCH_USER, "password": BENCH_PASSWORD, "csrfmiddlewaretoken": match.group(1)}
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/accounts/login/", data=form, headers={"Referer": f"{base}/accounts/login/"}
    )
    opener.open(request, timeout=10).read()
    cookies = {cookie.name: cookie.value for cookie in jar}
    if "sessionid" not in cookies or "csrftoken" not in cookies:
        raise RuntimeError(f"login failed (cookies: {sorted(cookies)})")
    return f"sessionid={cookies['sessionid']}; csrftoken={cookies['csrftoken']}", cookies["csrftoken"]


def check_one(url: str, headers: dict[str, str], body: bytes) -> dict:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    if status != 201:
        raise RuntimeError(f"POST {url} answered {status}: {payload[:500]!r}")
    data = json.loads(payload)
    if not str((data.get("client_secret") or data).get("value", "")).startswith("ek_"):
        raise RuntimeError(f"POST {url} answered 201 without a client secret: {payload[:500]!r}")
    return data


# --------------------------------------------------------------------------- wrk


def run_wrk(url: str, clients: int, seconds: float, env: dict[str, str]) -> dict:
    threads = min(2, clients)
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(ROOT / "bench" / "wrk_post.lua"),
        url,
    ]
    done = subprocess.run(  # noqa: S603
        argv, env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT ") :])
    raise RuntimeError(f"wrk printed no result (status {done.returncode}): {done.stderr or done.stdout}")


def measure(
    server: str,
    url: str,
    delay: int,
    clients: int,
    seconds: float,
    env: dict[str, str],
    pid: int,
    services: dict[str, probes.CpuOf] | None = None,
) -> Result:
    """One wrk run against url; CPU of the server's process tree (pid) and of each service's processes
    during the run, per 201 answer of the run."""
    services = services or {}
    cpu_before = tree_cpu_seconds(pid)
    for probe in services.values():
        probe.start()
    data = run_wrk(url, clients, seconds, env)
    cpu = tree_cpu_seconds(pid) - cpu_before
    service_cpu = {name: probe.stop() for name, probe in services.items()}
    result = result_of(server, delay, clients, data)
    if result.ok:
        result.cpu_ms_per_token = cpu * 1000 / result.ok
        result.service_cpu_ms_per_token = {k: v * 1000 / result.ok for k, v in service_cpu.items()}
    return result


def result_of(server: str, delay: int, clients: int, data: dict[str, Any]) -> Result:
    """A Result from wrk's answer (bench/wrk_post.lua's JSON line)."""
    return Result(
        server=server,
        delay_ms=delay,
        clients=clients,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        statuses={str(k): v for k, v in data["statuses"].items()},
        errors=data["errors"],
        p50_ms=data["latency_us"]["p50"] / 1000,
        p90_ms=data["latency_us"]["p90"] / 1000,
        p99_ms=data["latency_us"]["p99"] / 1000,
        max_ms=data["latency_us"]["max"] / 1000,
    )


def drained(issued: Any, timeout: float = 30.0) -> int:
    """Wait until the keys handed out stop growing (the requests in flight when wrk stopped have ended)."""
    deadline = time.monotonic() + timeout
    last, since = issued(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = issued()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 0.6:
            break
    return last


def set_delay(upstream: str, delay_ms: int) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{upstream}/__bench/delay?ms={delay_ms}", data=b"", method="POST"
    )
    urllib.request.urlopen(request, timeout=5).close()  # noqa: S310


def upstream_stats(upstream: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{upstream}/__bench/stats", timeout=5) as response:  # noqa: S310
        return json.loads(response.read())


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """How to start one server under test, and what wrk sends it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    base: str
    path: str
    body: str
    cwd: Path = ROOT
    django: bool = False
    ready_path: str = "/"
    wrk_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.base}{self.path}"

    def signed_in(self, cookie: str, csrf: str) -> None:
        self.wrk_env = {"WRK_COOKIE": cookie, "WRK_CSRF": csrf, "WRK_ORIGIN": self.base}

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.wrk_env:
            headers.update(
                {
                    "Cookie": self.wrk_env["WRK_COOKIE"],
                    "X-CSRFToken": self.wrk_env["WRK_CSRF"],
                    "Origin": self.wrk_env["WRK_ORIGIN"],
                }
            )
        return headers


def build_servers(
    args: argparse.Namespace, python: str, upstream: str, database_url: str, redis_url: str, threads: int
) -> dict[str, Server]:
    common = common_environment(upstream)
    # RT_BENCH_GUNICORN_CONF: another gunicorn configuration for every Python server (experiments).
    config = os.environ.get("RT_BENCH_GUNICORN_CONF") or str(ROOT / "example_project" / "gunicorn.conf.py")
    gunicorn = [python, "-m", "gunicorn", "-c", config]
    servers: dict[str, Server] = {}
    names = [*args.servers, *(["ours-b"] if args.ours_b else [])]
    for name in names:
        port = free_port()
        base = f"http://{HOST}:{port}"
        own_upstream = {**common, "OPENAI_BASE_URL": upstream_base(upstream, name)}
        if name in ("ours", "ours-b"):
            src = args.ours_src if name == "ours" else args.ours_b
            env = ours_environment(own_upstream, src, database_url, redis_url, port)
            env["RT_BENCH_APP_NAME"] = name
            if name == "ours-b":
                env.update(args.ours_b_env)
            servers[name] = Server(
                name,
                [*gunicorn, "example_project.wsgi:application"],
                env,
                base,
                API_PATH,
                json.dumps({"preset": BENCH_PRESET}),
                cwd=src.resolve(),
                django=True,
                ready_path="/accounts/login/",
            )
        elif name in ("django-gevent", "django-best"):
            env = django_environment(
                own_upstream,
                ROOT,
                database_url,
                redis_url,
                port,
                name=name,
                settings="bench.handwritten.settings",
                threads=threads if name == "django-best" else None,
            )
            servers[name] = Server(
                name,
                [*gunicorn, "bench.handwritten.wsgi:application"],
                env,
                base,
                "/token/",
                "{}",
                django=True,
                ready_path="/accounts/login/",
            )
        elif name == "floor":
            env = floor_environment(common, upstream, port)
            if args.floor_worker_class:
                env["GUNICORN_WORKER_CLASS"] = args.floor_worker_class
            if args.floor_threads:
                env["GUNICORN_THREADS"] = str(args.floor_threads)
            servers[name] = Server(name, [*gunicorn, "bench.floor:application"], env, base, "/token", "{}")
        elif name == "express":
            env = {**own_upstream, "PORT": str(port), "HOST": HOST}
            argv = ["node", str(ROOT / "bench" / "express" / "server.js")]
            servers[name] = Server(name, argv, env, base, "/token", "{}", ready_path="/token")
    return servers


def start(procs: Processes, server: Server) -> subprocess.Popen[bytes]:
    proc = procs.start(server.name, server.argv, server.env, cwd=server.cwd)
    wait_http(f"{server.base}{server.ready_path}", proc)
    return proc


# --------------------------------------------------------------------------- report


def write_json(path: Path, results: list[Result]) -> None:
    path.write_text(
        json.dumps([{**r.__dict__, "rps": r.rps, "failures": r.failures} for r in results], indent=2) + "\n"
    )
    print(f"\nResults written to {path}")


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def ratio(by_key: dict, other: str, delay: int, clients: int) -> float | None:
    ours, them = by_key.get(("ours", delay, clients)), by_key.get((other, delay, clients))
    if ours is None or them is None or not them.rps:
        return None
    return ours.rps / them.rps


def print_table(results: list[Result], servers: list[str]) -> None:
    by_key = {(r.server, r.delay_ms, r.clients): r for r in results}
    configs = sorted({(r.delay_ms, r.clients) for r in results})
    header = (
        f"{'delay':>5} {'clients':>7}  {'server':13} {'tokens/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'bad':>5}"
        f"  {'server':>6} {'(kernel)':>8} {'postgres':>8} {'redis':>6} {'total':>6}"
    )
    print("\n" + " " * 58 + "CPU ms per issued token")
    print(header)
    print("-" * len(header))
    for delay, clients in configs:
        first = True
        for server in servers:
            r = by_key.get((server, delay, clients))
            if r is None:
                continue
            services = r.service_cpu_ms_per_token
            total = None
            if r.cpu_ms_per_token is not None:
                total = r.cpu_ms_per_token + sum(services.values())
            lead = f"{delay:>5} {clients:>7}" if first else " " * 13
            first = False
            kernel = None
            if r.cpu_ms_per_token is not None and r.system_share is not None:
                kernel = r.cpu_ms_per_token * r.system_share
            print(
                f"{lead}  {server + ('*' if r.profiled else ''):13} {r.rps:8.0f} {r.p50_ms:7.0f}"
                f" {r.p99_ms:7.0f} {r.failures:5d}  {fmt_ms(r.cpu_ms_per_token):>6} {fmt_ms(kernel):>8}"
                f" {fmt_ms(services.get('postgres')):>8} {fmt_ms(services.get('redis')):>6}"
                f" {fmt_ms(total):>6}"
            )
    peers = [p for p in PEERS if p in servers]
    if "ours" in servers and peers:
        print("\nours' tokens/s divided by each peer's (same run):")
        line = f"{'delay':>5} {'clients':>7}  " + " ".join(f"{'/' + p:>14}" for p in peers)
        print(line + f" {'ours p99 ms':>12}")
        print("-" * (len(line) + 13))
        for delay, clients in configs:
            ours = by_key.get(("ours", delay, clients))
            if ours is None:
                continue
            cells = " ".join(f"{fmt_ratio(ratio(by_key, p, delay, clients)):>14}" for p in peers)
            print(f"{delay:>5} {clients:>7}  {cells} {ours.p99_ms:12.0f}")
    print(
        "\ntokens/s: 201 answers per second of the measured run; bad: non-201 answers plus socket errors and"
        " timeouts. CPU per issued token, from /proc, from the warm-up's start until the last request in"
        " flight ended, per key the upstream handed the server: its processes (of which in the kernel:"
        " system time, mostly socket calls); its PostgreSQL backends (by"
        " application_name); the whole redis-server process (other clients of the same Redis count too);"
        " the upstream's and wrk's CPU is in none of them. *: recorded by py-spy meanwhile (slower)."
    )


def check_targets(results: list[Result]) -> list[tuple[str, bool]]:
    """The targets this run can check: (what, met)."""
    by_key = {(r.server, r.delay_ms, r.clients): r for r in results}
    checks: list[tuple[str, bool]] = []
    fast = ratio(by_key, "django-best", FAST_DELAY_MS, FAST_CLIENTS)
    if fast is not None:
        checks.append(
            (
                f"{FAST_DELAY_MS} ms, {FAST_CLIENTS} clients: ours >= {FAST_BEST_RATIO} x django-best"
                f" (ratio {fmt_ratio(fast)})",
                fast >= FAST_BEST_RATIO,
            )
        )
    slow = f"{SLOW_DELAY_MS} ms, {SLOW_CLIENTS} clients"
    for peer, minimum in (("django-best", SLOW_BEST_RATIO), ("floor", SLOW_FLOOR_RATIO)):
        value = ratio(by_key, peer, SLOW_DELAY_MS, SLOW_CLIENTS)
        if value is not None:
            checks.append(
                (f"{slow}: ours >= {minimum} x {peer} (ratio {fmt_ratio(value)})", value >= minimum)
            )
    ours = by_key.get(("ours", SLOW_DELAY_MS, SLOW_CLIENTS))
    if ours is not None:
        limit = SLOW_P99_FACTOR * SLOW_DELAY_MS
        checks.append((f"{slow}: ours p99 {ours.p99_ms:.0f} ms <= {limit:.0f} ms", ours.p99_ms <= limit))
    failed = [r for r in results if r.failures]
    checks.append(
        (
            "no failed request in any run"
            + "".join(f"; {r.server} {r.delay_ms} ms/{r.clients}: {r.failures} failed" for r in failed),
            not failed,
        )
    )
    return checks


def check_audit(pg: probes.Postgres, stats: dict[str, Any], answered: int) -> tuple[str, bool]:
    """One issued audit row per key the upstream handed ours, and no other row (nothing failed)."""
    outcomes = pg.audit_outcomes()
    issued = outcomes.get("issued", 0)
    other = sum(v for k, v in outcomes.items() if k != "issued")
    keys = sum(n for caller, n in stats.get("by_caller", {}).items() if caller in ("ours", "ours-b"))
    text = (
        f"audit rows equal the requests served: {issued} issued rows, {other} others; the upstream handed"
        f" ours {keys} keys; clients counted {answered} 201s (wrk stops with requests in flight)"
    )
    return text, issued == keys and other == 0 and answered <= issued


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs after 1 s warm-ups")
    parser.add_argument("--duration", type=float, help="seconds of each measured run (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds of the warm-up before each run (default 2)")
    parser.add_argument("--concurrency", default="1,16,64,256", help="client counts (default 1,16,64,256)")
    parser.add_argument("--delays", default="0,300", help="upstream delays in ms (default 0,300)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"any of {','.join(SERVERS)}")
    parser.add_argument("--ours-src", type=Path, default=ROOT, help="a checkout to run ours from (A/B tries)")
    parser.add_argument(
        "--ours-b",
        type=Path,
        help="A/B tries: also run the example project from this checkout, as server ours-b, after ours",
    )
    parser.add_argument(
        "--ours-b-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for ours-b only (repeatable), e.g. an experiment knob",
    )
    parser.add_argument(
        "--best-threads",
        type=int,
        help="threads per gthread worker of django-best (default: what max_connections leaves room for)",
    )
    parser.add_argument(
        "--floor-worker-class",
        help="the floor's gunicorn worker class (default: the documented configuration's, like ours)",
    )
    parser.add_argument("--floor-threads", type=int, help="threads per gthread worker of the floor")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and print where")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the --profile-servers with py-spy (needs py-spy) during each of their runs, into this"
        " directory: py-spy's collapsed stacks, summarised by bench/profile_summary.py (profiled runs"
        " are slower: take ratios from a run without --profile)",
    )
    parser.add_argument("--profile-servers", default="ours", help="servers to profile (default ours)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.delays = [int(d) for d in args.delays.split(",") if d]
    given = {s for s in args.servers.split(",") if s}
    args.servers = [s for s in SERVERS if s in given]  # always in SERVERS' order
    args.profile_servers = [s for s in args.profile_servers.split(",") if s]
    args.ours_b_env = dict(item.split("=", 1) for item in args.ours_b_env)
    if (args.ours_b or args.ours_b_env) and "ours" not in args.servers:
        parser.error("--ours-b runs beside ours: include ours in --servers")
    if args.ours_b_env and not args.ours_b:
        args.ours_b = args.ours_src
    unknown = (given | set(args.profile_servers)) - {*SERVERS, "ours-b"}
    if unknown or not args.servers:
        parser.error(f"unknown servers: {', '.join(sorted(unknown)) or '-'} (known: {', '.join(SERVERS)})")
    return args


class Profiler:
    """py-spy recording one server's processes during one run."""

    def __init__(self, python: str, directory: Path) -> None:
        self.binary = str(Path(python).parent / "py-spy")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def record(self, pid: int, name: str, seconds: float) -> subprocess.Popen[bytes]:
        output = self.directory / f"{name}.txt"
        spy = subprocess.Popen(  # noqa: S603
            [
                self.binary,
                "record",
                "--subprocesses",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--output",
                str(output),
                "--nonblocking",
                # Only samples holding the GIL: a greenlet in a socket call, or preempted in one by the
                # process it woke, is not running Python (its kernel time is in load.py's system time).
                "--gil",
                "--format",
                "raw",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return spy


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = venv_python()
    database_url = os.environ.get("RT_BENCH_LOAD_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("RT_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    uses_django = any(s in DJANGO_SERVERS for s in args.servers)
    try:
        check_prerequisites(args.servers, python, database_url, redis_url)
        if (
            args.profile
            and shutil.which("py-spy", path=f"{Path(python).parent}:{os.environ['PATH']}") is None
        ):
            raise Missing(f"- py-spy is not installed: run `{python} -m pip install -e '.[bench]'`.")
    except Missing as exc:
        print(f"Missing prerequisites:\n{exc}", file=sys.stderr)
        return 2

    log_dir = Path(tempfile.mkdtemp(prefix="rt-bench-load-"))
    procs = Processes(log_dir)
    upstream_port = free_port()
    upstream = f"http://{HOST}:{upstream_port}"
    common = common_environment(upstream)
    profiler = Profiler(python, args.profile) if args.profile else None
    results: list[Result] = []
    pg: probes.Postgres | None = None
    verdicts: list[tuple[str, bool]] = []
    answered_by_ours = 0
    try:
        print(f"Logs in {log_dir}", flush=True)
        proc = procs.start(
            "upstream",
            [python, str(ROOT / "bench" / "fast_upstream.py"), "--port", str(upstream_port)],
            common,
        )
        wait_http(f"{upstream}/__bench/stats", proc)
        threads = 1
        redis_process = 0
        if uses_django:
            print(f"Preparing {urlsplit(database_url).path.lstrip('/')} and {redis_url}", flush=True)
            prepare_env = ours_environment(common, args.ours_src, database_url, redis_url, 0)
            prepare_ours(python, prepare_env, args.ours_src.resolve())
            pg = probes.Postgres(database_url)
            redis_process = probes.redis_pid(redis_url)
            if "django-best" in args.servers:
                if args.best_threads:
                    threads, why = args.best_threads, f"{WORKERS} workers x {args.best_threads} threads"
                else:
                    threads, why = best_threads(database_url)
                print(f"django-best: gthread, {why}", flush=True)
        servers = build_servers(args, python, upstream, database_url, redis_url, threads)

        # Log in once, through the first Django server's login page; the session (Redis and PostgreSQL,
        # same SECRET_KEY) is valid on every Django server. Then check each server once.
        cookie = csrf = ""
        for server in servers.values():
            start(procs, server)
            try:
                if server.django:
                    if not cookie:
                        cookie, csrf = login(server.base)
                    server.signed_in(cookie, csrf)
                check_one(server.url, server.headers(), server.body.encode())
                if server.name in ("ours", "ours-b"):
                    answered_by_ours += 1
            finally:
                procs.stop(server.name)
            print(f"{server.name}: POST {server.url} answers 201 with a client secret", flush=True)

        total = len(args.delays) * len(args.concurrency) * len(servers) * (args.duration + args.warmup + 3)
        print(
            f"Running {len(args.delays)} delays x {len(args.concurrency)} concurrencies x {len(servers)}"
            f" servers, {args.duration:g} s each after a start and a {args.warmup:g} s warm-up"
            f" (about {total / 60:.1f} min)",
            flush=True,
        )
        for delay in args.delays:
            set_delay(upstream, delay)
            for clients in args.concurrency:
                for server in servers.values():
                    result = run_one(
                        procs, server, delay, clients, args, pg, redis_process, profiler, upstream
                    )
                    results.append(result)
                    if server.name in ("ours", "ours-b"):
                        answered_by_ours += result.ok + result.warmup_ok
        if pg is not None and "ours" in servers:
            verdicts.append(check_audit(pg, upstream_stats(upstream), answered_by_ours))
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        procs.report_failure("The benchmark", exc)
        return 1
    finally:
        procs.stop_all()
        if pg is not None:
            pg.close()

    print_table(results, list(servers))
    verdicts = check_targets(results) + verdicts
    print("\nTargets:")
    for text, met in verdicts:
        print(f"  [{'met' if met else 'MISSED'}] {text}")
    if args.json:
        write_json(args.json, results)
    if profiler is not None:
        print(f"\npy-spy profiles in {args.profile} (summary: bench/profile_summary.py FILE --cpu-ms N)")
    if args.keep_logs:
        print(f"Server logs: {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0 if all(met for _text, met in verdicts) else 3


def run_one(
    procs: Processes,
    server: Server,
    delay: int,
    clients: int,
    args: argparse.Namespace,
    pg: probes.Postgres | None,
    redis_process: int,
    profiler: Profiler | None,
    upstream: str,
) -> Result:
    """Start the server, warm it up, measure it, let the requests in flight end, stop it.

    Tokens/s and latencies are the measured run's (wrk's). The CPU per token is that of the server's
    processes (and of its PostgreSQL backends and Redis) from the warm-up's start until the last request
    in flight has ended, divided by the keys the upstream handed this server meanwhile: at high
    concurrency many requests are still in flight when wrk stops, and their CPU belongs to them.
    """
    proc = start(procs, server)
    try:

        def issued() -> int:
            return int(upstream_stats(upstream)["by_caller"].get(server.name, 0))

        services: dict[str, probes.CpuOf] = {}
        if server.django and pg is not None:
            app_name, postgres = server.name, pg
            services["postgres"] = probes.CpuOf(lambda: postgres.backend_pids(app_name))
            services["redis"] = probes.CpuOf(lambda: [redis_process])
        cpu_before, keys_before = probes.tree_cpu_split(proc.pid), issued()
        for probe in services.values():
            probe.start()
        warm: dict[str, Any] = {}
        if args.warmup > 0:
            warm = run_wrk(server.url, clients, args.warmup, server.wrk_env)
        spy = None
        if profiler is not None and server.name in args.profile_servers:
            spy = profiler.record(proc.pid, f"{server.name}-{delay}ms-{clients}c", args.duration)
        result = result_of(
            server.name, delay, clients, run_wrk(server.url, clients, args.duration, server.wrk_env)
        )
        keys = drained(issued) - keys_before
        user_after, system_after = probes.tree_cpu_split(proc.pid)
        user, system = user_after - cpu_before[0], system_after - cpu_before[1]
        cpu = user + system
        result.system_share = system / cpu if cpu else None
        service_cpu = {name: probe.stop() for name, probe in services.items()}
        if spy is not None:
            spy.wait(timeout=120)
            result.profiled = True
        result.warmup_ok = warm.get("statuses", {}).get("201", 0)
        if keys > 0:
            result.cpu_ms_per_token = cpu * 1000 / keys
            result.service_cpu_ms_per_token = {k: v * 1000 / keys for k, v in service_cpu.items()}
    finally:
        procs.stop(server.name)
    bad = {k: v for k, v in result.statuses.items() if k != "201"}
    socket_errors = {k: v for k, v in result.errors.items() if v and k != "status"}
    cpu_text = fmt_ms(result.cpu_ms_per_token)
    print(
        f"  {server.name:13} delay {delay:4d} ms  clients {clients:4d}: {result.rps:7.0f} tokens/s"
        f"  p50 {result.p50_ms:6.0f} ms  p99 {result.p99_ms:6.0f} ms  cpu {cpu_text} ms/token"
        + (f"  non-201 {bad}" if bad else "")
        + (f"  errors {socket_errors}" if socket_errors else ""),
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
