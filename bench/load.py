"""Load benchmark of the token endpoint: ours against a minimal WSGI floor and a minimal Express route.

    .venv/bin/python bench/load.py            # 2 delays x 4 concurrencies x 3 servers, 10 s each
    .venv/bin/python bench/load.py --quick    # 3 s runs, for trying things
    .venv/bin/python bench/load.py --servers ours --delays 300 --concurrency 256 --duration 20

Starts, all on 127.0.0.1: a fast upstream stand-in (bench/fast_upstream.py) whose delay is switched
between runs; "ours", the example project under gunicorn with the documented configuration
(example_project/gunicorn.conf.py, settings bench/load_settings.py: PostgreSQL, Redis, DEBUG off, a real
audit row and real rate-limit counting on every request); the floor (bench/floor.py, the same gunicorn
configuration, no Django); and the Express route (bench/express/). It logs in once through the login
page and drives every server with wrk (bench/wrk_post.lua) sending authenticated, CSRF-correct POSTs,
then prints requests/s, p50/p99 latency, non-201 answers and server CPU per request for each
configuration, the ratios ours/floor and ours/Express, and whether the targets are met.

Prerequisites (checked, with what to run when missing; nothing is installed here):
wrk (`apt-get update && apt-get install -y wrk`), node and bench/express/node_modules
(`npm ci --prefix bench/express`), gunicorn, gevent and psycopg[pool] in the virtualenv
(`pip install -e '.[bench]'`), PostgreSQL on 127.0.0.1:5432 (RT_BENCH_LOAD_DATABASE_URL; the database
rt_bench_load is created and its audit table emptied) and Redis on 127.0.0.1:6379 (RT_BENCH_REDIS_URL,
default db 10, which is flushed).

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
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/rt_bench_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
BENCH_USER, BENCH_PASSWORD = "bench", "bench-load-password"  # a throwaway account in a throwaway database
BENCH_PRESET = "bench"
API_PATH = "/rt/transcription-sessions/"
SERVERS = ("ours", "floor", "express")

# The targets, at the worst configuration (300 ms upstream delay, 256 clients) and at 0 ms.
TARGET_DELAY_MS, TARGET_CLIENTS = 300, 256
TARGET_FLOOR_RATIO_SLOW, TARGET_FLOOR_RATIO_FAST = 0.8, 0.5
TARGET_P99_FACTOR = 2.0


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
    cpu_ms_per_request: float | None = None

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
    if {"ours", "floor"} & set(servers):
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
    if "ours" in servers:
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
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - our own argv
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
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

    def stop_all(self) -> None:
        # Servers first, the upstream last: requests still in flight then end cleanly.
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
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


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (Linux /proc), including reaped children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return total


# --------------------------------------------------------------------------- environments


def common_environment(upstream: str) -> dict[str, str]:
    """What every server gets: this shell's environment without Django's or the app's, the upstream."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RT_SESSIONS"))}
    return {
        **base_env,
        "OPENAI_API_KEY": "sk-bench-not-a-real-key",
        "OPENAI_BASE_URL": f"{upstream}/v1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def ours_environment(
    common: dict[str, str],
    src: Path,
    database_url: str,
    redis_url: str,
    port: int,
    settings: str = "bench.load_settings",
) -> dict[str, str]:
    """The example project as deployed (DEBUG off, PostgreSQL, Redis) on 127.0.0.1:port."""
    return {
        **common,
        "PYTHONPATH": str(src.resolve()),
        "DJANGO_SETTINGS_MODULE": settings,
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "RT_BENCH_LOAD_DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "GUNICORN_BIND": f"{HOST}:{port}",
    }


def floor_environment(common: dict[str, str], upstream: str, port: int) -> dict[str, str]:
    return {
        **common,
        "PYTHONPATH": str(ROOT),
        "FLOOR_UPSTREAM_URL": f"{upstream}/v1",
        "GUNICORN_BIND": f"{HOST}:{port}",
    }


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
from django.core.cache import cache
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
        "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": ""},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                           "silence_duration_ms": 500},
    }))
cache.clear()
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
    server: str, url: str, delay: int, clients: int, seconds: float, env: dict[str, str], pid: int
) -> Result:
    """One wrk run against url; the CPU is that of the server's process tree (pid) during the run."""
    cpu_before = tree_cpu_seconds(pid)
    data = run_wrk(url, clients, seconds, env)
    cpu = tree_cpu_seconds(pid) - cpu_before
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
        cpu_ms_per_request=(cpu * 1000 / data["requests"]) if data["requests"] else None,
    )


def set_delay(upstream: str, delay_ms: int) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{upstream}/__bench/delay?ms={delay_ms}", data=b"", method="POST"
    )
    urllib.request.urlopen(request, timeout=5).close()  # noqa: S310


# --------------------------------------------------------------------------- report


def write_json(path: Path, results: list[Result]) -> None:
    path.write_text(
        json.dumps([{**r.__dict__, "rps": r.rps, "failures": r.failures} for r in results], indent=2) + "\n"
    )
    print(f"\nResults written to {path}")


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(results: list[Result], servers: list[str]) -> None:
    by_key = {(r.server, r.delay_ms, r.clients): r for r in results}
    header = (
        f"{'delay':>6} {'clients':>7} | "
        + " | ".join(
            f"{s + ' rps':>12} {'p50 ms':>7} {'p99 ms':>7} {'bad':>5} {'cpu ms':>6}" for s in servers
        )
        + " | ours/floor  ours/express"
    )
    print()
    print(header)
    print("-" * len(header))
    for delay in sorted({r.delay_ms for r in results}):
        for clients in sorted({r.clients for r in results if r.delay_ms == delay}):
            cells = []
            for server in servers:
                r = by_key.get((server, delay, clients))
                if r is None:
                    cells.append(f"{'-':>12} {'-':>7} {'-':>7} {'-':>5} {'-':>6}")
                    continue
                cpu = "-" if r.cpu_ms_per_request is None else f"{r.cpu_ms_per_request:.1f}"
                cells.append(f"{r.rps:12.0f} {r.p50_ms:7.0f} {r.p99_ms:7.0f} {r.failures:5d} {cpu:>6}")
            ratios = [ratio(by_key, "floor", delay, clients), ratio(by_key, "express", delay, clients)]
            print(
                f"{delay:>6} {clients:>7} | "
                + " | ".join(cells)
                + f" | {fmt_ratio(ratios[0]):>10}  {fmt_ratio(ratios[1]):>12}"
            )
    print(
        "\nrps: 201 answers per second; bad: non-201 answers plus socket errors and timeouts; cpu ms: CPU of"
        " the server's processes per request (not PostgreSQL's, Redis's or the upstream's)."
    )


def ratio(by_key: dict, other: str, delay: int, clients: int) -> float | None:
    ours, them = by_key.get(("ours", delay, clients)), by_key.get((other, delay, clients))
    if ours is None or them is None or not them.rps:
        return None
    return ours.rps / them.rps


def check_targets(results: list[Result]) -> bool | None:
    by_key = {(r.server, r.delay_ms, r.clients): r for r in results}
    lines, verdicts = [], []
    ours = by_key.get(("ours", TARGET_DELAY_MS, TARGET_CLIENTS))
    if ours is not None:
        express_ratio = ratio(by_key, "express", TARGET_DELAY_MS, TARGET_CLIENTS)
        floor_ratio = ratio(by_key, "floor", TARGET_DELAY_MS, TARGET_CLIENTS)
        p99_limit = TARGET_P99_FACTOR * TARGET_DELAY_MS
        checks = [
            (f"throughput >= Express's (ratio {fmt_ratio(express_ratio)})", express_ratio, 1.0),
            (
                f"throughput >= {TARGET_FLOOR_RATIO_SLOW} x floor's (ratio {fmt_ratio(floor_ratio)})",
                floor_ratio,
                TARGET_FLOOR_RATIO_SLOW,
            ),
        ]
        for text, value, minimum in checks:
            if value is not None:
                verdicts.append(value >= minimum)
                lines.append(f"  [{'met' if value >= minimum else 'MISSED'}] {text}")
        met = ours.p99_ms < p99_limit and ours.failures == 0
        verdicts.append(met)
        lines.append(
            f"  [{'met' if met else 'MISSED'}] p99 {ours.p99_ms:.0f} ms < {p99_limit:.0f} ms"
            f" with no failed request ({ours.failures} failed)"
        )
    fast = [c for (s, d, c) in by_key if s == "ours" and d == 0]
    if fast:
        worst = min(fast, key=lambda c: ratio(by_key, "floor", 0, c) or float("inf"))
        value = ratio(by_key, "floor", 0, worst)
        if value is not None:
            verdicts.append(value >= TARGET_FLOOR_RATIO_FAST)
            lines.append(
                f"  [{'met' if value >= TARGET_FLOOR_RATIO_FAST else 'MISSED'}] at 0 ms, throughput >= "
                f"{TARGET_FLOOR_RATIO_FAST} x floor's at every concurrency (worst: {fmt_ratio(value)} at"
                f" {worst} clients)"
            )
    if not lines:
        return None
    print(f"\nTargets (at {TARGET_DELAY_MS} ms upstream delay and {TARGET_CLIENTS} clients, and at 0 ms):")
    print("\n".join(lines))
    return all(verdicts)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs after 1 s warm-ups")
    parser.add_argument("--duration", type=float, help="seconds of each measured run (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds of the warm-up before each run (default 2)")
    parser.add_argument("--concurrency", default="1,16,64,256", help="client counts (default 1,16,64,256)")
    parser.add_argument("--delays", default="0,300", help="upstream delays in ms (default 0,300)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="any of ours,floor,express")
    parser.add_argument("--ours-src", type=Path, default=ROOT, help="a checkout to run ours from (A/B tries)")
    parser.add_argument(
        "--floor-worker-class",
        help="the floor's gunicorn worker class (default: the documented configuration's, like ours);"
        " `gthread` with --floor-threads 160 is the floor the issue quotes",
    )
    parser.add_argument("--floor-threads", type=int, help="threads per gthread worker of the floor")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and print where")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record ours with py-spy (needs py-spy) during its run at the highest delay and concurrency"
        " into this file: a flame graph (.svg), else py-spy's raw collapsed stacks",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.delays = [int(d) for d in args.delays.split(",") if d]
    args.servers = [s for s in args.servers.split(",") if s]
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = venv_python()
    database_url = os.environ.get("RT_BENCH_LOAD_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("RT_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
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
    upstream_port, ports = free_port(), {s: free_port() for s in SERVERS}
    upstream = f"http://{HOST}:{upstream_port}"
    gunicorn_cfg = str(ROOT / "example_project" / "gunicorn.conf.py")
    common = common_environment(upstream)
    ours_env = ours_environment(common, args.ours_src, database_url, redis_url, ports["ours"])
    floor_env = floor_environment(common, upstream, ports["floor"])
    if args.floor_worker_class:
        floor_env["GUNICORN_WORKER_CLASS"] = args.floor_worker_class
    if args.floor_threads:
        floor_env["GUNICORN_THREADS"] = str(args.floor_threads)
    express_env = {**common, "PORT": str(ports["express"]), "HOST": HOST}
    gunicorn = [python, "-m", "gunicorn", "-c", gunicorn_cfg]
    targets: dict[str, tuple[str, dict[str, str]]] = {}
    results: list[Result] = []
    try:
        print(f"Logs in {log_dir}", flush=True)
        proc = procs.start(
            "upstream",
            [python, str(ROOT / "bench" / "fast_upstream.py"), "--port", str(upstream_port)],
            common,
        )
        wait_http(f"{upstream}/__bench/stats", proc)

        if "ours" in args.servers:
            print(f"Preparing ours ({urlsplit(database_url).path.lstrip('/')}, {redis_url})", flush=True)
            prepare_ours(python, ours_env, args.ours_src.resolve())
            proc = procs.start(
                "ours", [*gunicorn, "example_project.wsgi:application"], ours_env, cwd=args.ours_src.resolve()
            )
            base = f"http://{HOST}:{ports['ours']}"
            wait_http(f"{base}/accounts/login/", proc)
            cookie, csrf = login(base)
            env = {"WRK_COOKIE": cookie, "WRK_CSRF": csrf, "WRK_ORIGIN": base}
            env["WRK_BODY"] = json.dumps({"preset": BENCH_PRESET})
            targets["ours"] = (f"{base}{API_PATH}", env)
        if "floor" in args.servers:
            proc = procs.start("floor", [*gunicorn, "bench.floor:application"], floor_env)
            wait_http(f"http://{HOST}:{ports['floor']}/", proc)
            targets["floor"] = (f"http://{HOST}:{ports['floor']}/token", {"WRK_BODY": "{}"})
        if "express" in args.servers:
            proc = procs.start(
                "express", ["node", str(ROOT / "bench" / "express" / "server.js")], express_env
            )
            wait_http(f"http://{HOST}:{ports['express']}/token", proc)
            targets["express"] = (f"http://{HOST}:{ports['express']}/token", {"WRK_BODY": "{}"})

        for server, (url, env) in targets.items():
            headers = {"Content-Type": "application/json"}
            if "WRK_COOKIE" in env:
                headers.update(
                    {"Cookie": env["WRK_COOKIE"], "X-CSRFToken": env["WRK_CSRF"], "Origin": env["WRK_ORIGIN"]}
                )
            check_one(url, headers, env["WRK_BODY"].encode())
            print(f"{server}: POST {url} answers 201 with a client secret", flush=True)

        total = len(args.delays) * len(args.concurrency) * len(targets) * (args.duration + args.warmup)
        print(
            f"Running {len(args.delays)} delays x {len(args.concurrency)} concurrencies x {len(targets)}"
            f" servers, {args.duration:g} s each after {args.warmup:g} s warm-up"
            f" (about {total / 60:.1f} min)",
            flush=True,
        )
        for delay in args.delays:
            set_delay(upstream, delay)
            for clients in args.concurrency:
                for server, (url, env) in targets.items():
                    if args.warmup > 0:
                        run_wrk(url, clients, args.warmup, env)
                    spy = None
                    if (
                        args.profile
                        and server == "ours"
                        and (delay, clients) == (max(args.delays), max(args.concurrency))
                    ):
                        spy = subprocess.Popen(  # noqa: S603
                            [
                                str(Path(python).parent / "py-spy"),
                                "record",
                                "--subprocesses",
                                "--pid",
                                str(procs.procs["ours"].pid),
                                "--duration",
                                str(int(args.duration)),
                                "--output",
                                str(args.profile),
                                "--nonblocking",
                                "--format",
                                "flamegraph" if args.profile.suffix == ".svg" else "raw",
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    result = measure(server, url, delay, clients, args.duration, env, procs.procs[server].pid)
                    if spy is not None:
                        spy.wait(timeout=120)
                    results.append(result)
                    bad = {k: v for k, v in result.statuses.items() if k != "201"}
                    socket_errors = {k: v for k, v in result.errors.items() if v and k != "status"}
                    print(
                        f"  {server:8} delay {delay:4d} ms  clients {clients:4d}: {result.rps:7.0f} rps"
                        f"  p50 {result.p50_ms:6.0f} ms  p99 {result.p99_ms:6.0f} ms"
                        + (f"  non-201 {bad}" if bad else "")
                        + (f"  errors {socket_errors}" if socket_errors else ""),
                        flush=True,
                    )
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        procs.report_failure("The benchmark", exc)
        return 1
    finally:
        procs.stop_all()

    print_table(results, [s for s in SERVERS if s in targets])
    verdict = check_targets(results)
    if args.json:
        write_json(args.json, results)
    if args.profile:
        print(f"py-spy profile of ours: {args.profile}")
    if args.keep_logs:
        print(f"Server logs: {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    if verdict is None:
        return 0
    return 0 if verdict else 3


if __name__ == "__main__":
    sys.exit(main())
