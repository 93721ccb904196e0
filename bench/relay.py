"""Relay benchmark: how many streaming sessions a relay holds at p99 ≤ 50 ms added latency, and its CPU.

    .venv/bin/python bench/relay.py                     # the default configurations, N = 25, 50, 100, 200 …
    .venv/bin/python bench/relay.py --quick             # 5 s steps, for trying things
    .venv/bin/python bench/relay.py --configs bare,uvicorn-websockets --steps 100,200 --duration 30
    .venv/bin/python bench/relay.py --configs uvicorn-websockets,uvicorn-websockets+DISPATCH=channels

Each step runs N sessions, each streaming PCM16 24 kHz mono as browsers do: one
`{"type":"input_audio_buffer.append","audio":"<base64>"}` frame every 40 ms (1,280 bytes of audio by
default, --frame-bytes 1920 for 40 ms at 24 kHz; bench/relay_wire.py), through the relay under test to an
upstream that only counts (bench/relay_sink.py). Three kinds of process on the same cores, each started
by this script: the clients (bench/relay_clients.py), the sink, the relay. The sessions open over a
ramp, warm up, then are measured; every frame carries its send time, so the sink measures the latency
the relay adds (received upstream - written by the client). Per step it prints p50/p99/p99.9 and the
frames lost (a lost frame counts as infinitely late), the relay's CPU from /proc (its process tree:
user + system) in seconds per session-minute, the cores the sink, the clients and the rest of the
machine used meanwhile, and how late the clients' own timer ran. A try passes when every session opened
and stayed open, the p99 is at most 50 ms and the clients kept their schedule; a step passes when one of
up to --tries tries does (the machine's other work can only disturb a try, never help it); N grows until
--stop-after steps in a row fail. The table at the end has each configuration's largest passing N and its
CPU per session-minute, with ratios to the bare forwarder's.

Configurations (--configs, comma-separated):

  bare                        bench/relay_bare.py: websockets server + websockets client, uvloop, no
                              Django, no parsing (the reference: the ratios are to it)
  bare-json                   the same, with `json.loads` of every frame and a check of its type
  uvicorn-websockets          the Channels consumer (bench/channels_relay/) under uvicorn with uvloop and
  uvicorn-websockets-sansio   httptools, one worker, with each of uvicorn's WebSocket implementations,
  uvicorn-wsproto             permessage-deflate off (--ws-per-message-deflate false)
  daphne                      the same consumer under daphne (Twisted, autobahn)
  ours                        the app's real relay (django_rt_sessions.relay, bench/real_relay/): ticket
                              check, forwarding rules, metering, its clock and counters saved every 5 s,
                              under uvicorn (websockets-sansio, uvloop, httptools); one fresh ticket and user
                              per session, prepared before each step in its own database (<name>_ours)
  ours-daphne                 the same under daphne

and variants of any of them: CONFIG+KNOB=VALUE[+KNOB=VALUE…], where KNOB is one of the consumer's knobs
(bench/channels_relay/consumer.py: DISPATCH, LAYER, UPSTREAM, PARSE, TIMERS, SAVE, GC) or, for uvicorn,
DEFLATE=on (uvicorn's default: permessage-deflate negotiated with clients that offer it, as browsers do).
Every configuration runs with DEBUG off, no access log, warnings only.

Prerequisites: the relay extra's packages in the virtualenv (channels, channels-redis, daphne,
uvicorn[standard], websockets, aiohttp), PostgreSQL on 127.0.0.1:5432 (RT_BENCH_RELAY_DATABASE_URL; the
database rt_relaybench is created and its one table emptied) and, for LAYER=redis, Redis
(RT_BENCH_RELAY_REDIS_URL, default db 12).

The cores are shared by the clients, the sink and the relay (and whatever else runs on the machine: the
"others" column): compare configurations by the ratios of one run, not by absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.probes import tree_cpu_seconds
from bench.relay_wire import FRAME_BYTES

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/rt_relaybench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
PATH = "/relay/realtime?intent=transcription"
DEFAULT_CONFIGS = (
    "bare",
    "bare-json",
    "uvicorn-websockets",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
    "daphne",
    "ours",
)
# "ours": the app's real relay (django_rt_sessions.relay: tickets, forwarding rules, metering, its clock)
# under uvicorn (websockets-sansio, the default), "ours-daphne" under daphne (bench/real_relay/).
BASES = (*DEFAULT_CONFIGS, "ours-daphne")
KNOBS = ("DISPATCH", "LAYER", "UPSTREAM", "PARSE", "TIMERS", "SAVE", "GC")
DEFAULT_STEPS = (25, 50, 100, 200, 300, 400, 500, 600, 800, 1000)

# The targets (docs/deployment.md will state them): p99 of the added latency, and what the relay must hold.
P99_LIMIT_MS = 50.0
CLIENT_LAG_LIMIT_MS = 20.0  # the clients' own timer later than this: the load was not delivered
TARGET_RATIO_TO_BARE = 0.5
TARGET_SESSIONS = 100


class Missing(Exception):
    """A prerequisite is missing; the message says how to get it."""


@dataclass
class Config:
    name: str
    base: str
    knobs: dict[str, str] = field(default_factory=dict)
    deflate: bool = False

    @property
    def django(self) -> bool:
        return not self.base.startswith("bare")

    @property
    def real(self) -> bool:
        """The app's own relay (bench/real_relay/), not the minimal consumer (bench/channels_relay/)."""
        return self.base.startswith("ours")


@dataclass
class Step:
    config: str
    sessions: int
    opened: int = 0
    open_at_window: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    closed_by_server: dict[str, int] = field(default_factory=dict)
    expected: int = 0
    received: int = 0
    dropped: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    p999_ms: float = math.nan
    max_ms: float = math.nan
    client_lag_p99_ms: float = math.nan
    relay_cpu_s: float = 0.0
    sink_cores: float = 0.0
    clients_cores: float = 0.0
    others_cores: float = math.nan
    seconds: float = 0.0
    load_before: str = ""
    note: str = ""
    tries: int = 1
    events_received: int = 0  # the sink's deltas (--upstream-events-every) that reached the clients
    spikes: list[list[float]] = field(default_factory=list)  # [s after T0, worst ms] of the worst 100 ms

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    @property
    def cpu_per_session_minute(self) -> float:
        if not self.open_at_window or not self.seconds:
            return math.nan
        return self.relay_cpu_s / (self.open_at_window * self.seconds / 60)

    @property
    def relay_cores(self) -> float:
        return self.relay_cpu_s / self.seconds if self.seconds else math.nan

    @property
    def passed(self) -> bool:
        return not self.why_failed()

    def why_failed(self) -> str:
        if self.note:
            return self.note
        if self.open_at_window < self.sessions:
            return f"{self.sessions - self.open_at_window} sessions not open"
        if sum(self.closed_by_server.values()):
            return f"closed by the server: {self.closed_by_server}"
        if not self.p99_ms <= P99_LIMIT_MS:
            return f"p99 {self.p99_ms:.0f} ms" + (f", {self.lost} frames lost" if self.lost else "")
        if not self.client_lag_p99_ms <= CLIENT_LAG_LIMIT_MS:
            return f"clients {self.client_lag_p99_ms:.0f} ms late"
        return ""


# --------------------------------------------------------------------------- configurations


def parse_config(text: str) -> Config:
    base, *parts = text.split("+")
    if base not in BASES:
        raise ValueError(f"unknown configuration {base!r} (known: {', '.join(BASES)})")
    config = Config(name=text, base=base)
    for part in parts:
        knob, _, value = part.partition("=")
        knob = knob.upper()
        if knob == "DEFLATE" and base.startswith("uvicorn") and value in ("on", "off"):
            config.deflate = value == "on"
        elif knob in KNOBS and value and config.django:
            config.knobs[knob] = value
        else:
            raise ValueError(f"{text}: {part!r} is not a knob of {base} (knobs: {', '.join(KNOBS)}, DEFLATE)")
    return config


def relay_argv(config: Config, python: str, port: int, upstream: str) -> list[str]:
    if config.base.startswith("bare"):
        parse = "json" if config.base == "bare-json" else "none"
        script = str(ROOT / "bench" / "relay_bare.py")
        return [python, script, "--port", str(port), "--upstream", upstream, "--parse", parse]
    app = "bench.channels_relay.asgi:application"
    if config.real:
        app = "bench.real_relay.asgi:application"
    if config.base in ("daphne", "ours-daphne"):
        return [python, "-m", "daphne", "-b", HOST, "-p", str(port), "-v", "0", app]
    ws = "websockets-sansio" if config.real else config.base.removeprefix("uvicorn-")
    return [
        python,
        "-m",
        "uvicorn",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--ws",
        ws,
        "--ws-per-message-deflate",
        "true" if config.deflate else "false",
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "2048",
    ]


def relay_env(config: Config, upstream: str, database_url: str, redis_url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RT_BENCH_RELAY_", "RT_SESSIONS"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
        DJANGO_SETTINGS_MODULE="bench.channels_relay.settings",
        RT_BENCH_RELAY_DATABASE_URL=database_url,
        RT_BENCH_RELAY_REDIS_URL=redis_url,
        RT_BENCH_RELAY_UPSTREAM_URL=upstream,
    )
    if config.real:  # its own database: the app's tables, from its migrations
        env.update(
            DJANGO_SETTINGS_MODULE="bench.real_relay.settings",
            RT_BENCH_RELAY_DATABASE_URL=urlsplit(database_url)
            ._replace(path=urlsplit(database_url).path + "_ours")
            .geturl(),
        )
    for knob, value in config.knobs.items():
        env[f"RT_BENCH_RELAY_{knob}"] = value
    return env


# --------------------------------------------------------------------------- prerequisites and processes


def venv_python() -> str:
    candidate = ROOT / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def check_prerequisites(configs: list[Config], python: str, database_url: str, redis_url: str) -> None:
    problems = []
    modules = ["websockets", "uvloop"]
    if any(c.django for c in configs):
        modules += ["django", "channels", "dj_database_url"]
        if database_url.startswith("postgres"):
            modules.append("psycopg")
    if any(c.base.startswith("uvicorn") for c in configs):
        modules += ["uvicorn", "httptools", "wsproto"]
    if any(c.base in ("daphne", "ours-daphne") for c in configs):
        modules.append("daphne")
    if any(c.knobs.get("LAYER") == "redis" for c in configs):
        modules.append("channels_redis")
    if any(c.knobs.get("UPSTREAM") == "aiohttp" for c in configs):
        modules.append("aiohttp")
    probe = subprocess.run(  # noqa: S603
        [python, "-c", "import " + ", ".join(modules)], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        problems.append(
            f"The virtualenv ({python}) lacks a package ({last}): run `{python} -m pip install channels"
            " channels-redis daphne 'uvicorn[standard]' websockets aiohttp`."
        )
    services = []
    if any(c.django for c in configs) and database_url.startswith("postgres"):
        services.append(("PostgreSQL", database_url, 5432))
    if any(c.knobs.get("LAYER") == "redis" for c in configs):
        services.append(("Redis", redis_url, 6379))
    for name, url, default_port in services:
        parts = urlsplit(url)
        try:
            socket.create_connection((parts.hostname, parts.port or default_port), timeout=2).close()
        except OSError:
            problems.append(f"{name} is not reachable at {parts.hostname}:{parts.port or default_port}.")
    if problems:
        raise Missing("\n".join(f"- {p}" for p in problems))


PREPARE_SCRIPT = """
import django
from django.conf import settings
cfg = settings.DATABASES["default"]
if cfg["ENGINE"].endswith("postgresql"):
  import psycopg
  with psycopg.connect(host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"] or None,
                     password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
        conn.execute('CREATE DATABASE "%s"' % cfg["NAME"])
django.setup()
from django.core.management import call_command
call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
from bench.channels_relay.models import BenchRelaySession
BenchRelaySession.objects.all()._raw_delete(BenchRelaySession.objects.db)
print("prepared", cfg["NAME"])
"""


def prepare_database(python: str, env: dict[str, str]) -> None:
    done = subprocess.run(  # noqa: S603
        [python, "-c", PREPARE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"preparing the database failed:\n{done.stderr.strip()[-3000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start(argv: list[str], env: dict[str, str], log: Path, **kwargs: Any) -> subprocess.Popen[Any]:
    with open(log, "ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own argv
            argv,
            cwd=ROOT,
            env=env,
            stdout=kwargs.pop("stdout", out),
            stderr=out,
            start_new_session=True,
            **kwargs,
        )


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Stop one process group we started (SIGTERM, then SIGKILL), by its id."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_port(port: int, proc: subprocess.Popen[Any], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode}:\n{tail(log)}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    return ""


class Sink:
    """bench/relay_sink.py, asked for its figures over its stdin/stdout."""

    def __init__(self, python: str, log_dir: Path, events_every: int = 0) -> None:
        self.port = free_port()
        self.log = log_dir / "sink.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        argv = [python, str(ROOT / "bench" / "relay_sink.py"), "--port", str(self.port)]
        argv += ["--events-every", str(events_every)]
        self.proc = start(argv, env, self.log, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        wait_port(self.port, self.proc, self.log)

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sink stopped:\n{tail(self.log)}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        stop(self.proc)


# --------------------------------------------------------------------------- the machine


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used (from /proc/stat's first line)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def sleep_until(monotonic_ns: int) -> None:
    delay = (monotonic_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


# --------------------------------------------------------------------------- one step


def run_step(
    config: Config,
    sessions: int,
    args: argparse.Namespace,
    python: str,
    sink: Sink,
    env: dict[str, str],
    log_dir: Path,
) -> Step:
    """Start the relay, run `sessions` clients through it, measure, stop it."""
    step = Step(config=config.name, sessions=sessions, load_before=load_average())
    port = free_port()
    log = log_dir / f"{config.name}-{sessions}.log"
    tickets = log_dir / f"{config.name}-{sessions}.tickets"
    if config.real:  # one fresh single-use ticket per session (and a user each), before the relay starts
        prepared = subprocess.run(  # noqa: S603
            [python, str(ROOT / "bench" / "real_relay" / "tickets.py"), str(sessions), str(tickets)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if prepared.returncode != 0:
            step.note = f"error: preparing tickets failed: {prepared.stderr.strip()[-400:]}"
            return step
    relay = start(relay_argv(config, python, port, sink.url), env, log)
    clients: list[subprocess.Popen[str]] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_port(port, relay, log)
        start_ns = time.monotonic_ns() + 500_000_000
        t0 = start_ns + int((args.ramp + args.warmup) * 1e9)
        t1 = t0 + int(args.duration * 1e9)
        end = t1 + 300_000_000
        per_process = math.ceil(sessions / args.client_procs)
        for first in range(0, sessions, per_process):
            argv = [
                python,
                str(ROOT / "bench" / "relay_clients.py"),
                "--url",
                f"ws://{HOST}:{port}{PATH}",
                "--sessions",
                str(min(per_process, sessions - first)),
                "--first",
                str(first),
                "--start",
                str(start_ns),
                "--ramp",
                str(args.ramp),
                "--window",
                str(t0),
                str(t1),
                "--end",
                str(end),
                "--frame-bytes",
                str(args.frame_bytes),
                *([] if args.client_deflate else ["--no-deflate"]),
                *(["--tickets", str(tickets)] if config.real else []),
            ]
            clients.append(
                start(
                    argv,
                    {**os.environ, "PYTHONPATH": str(ROOT)},
                    log_dir / "clients.log",
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        sleep_until(t0)
        relay_before = tree_cpu_seconds(relay.pid)
        sink_before = tree_cpu_seconds(sink.proc.pid)
        clients_before = sum(tree_cpu_seconds(c.pid) for c in clients)
        machine_before = machine_busy_seconds()
        if args.profile and config.name in args.profile_configs:
            spy = profile(python, relay.pid, args.profile / f"{config.name}-{sessions}.txt", args.duration)
        sleep_until(t1)
        step.seconds = args.duration
        step.relay_cpu_s = tree_cpu_seconds(relay.pid) - relay_before
        sink_cpu = tree_cpu_seconds(sink.proc.pid) - sink_before
        clients_cpu = sum(tree_cpu_seconds(c.pid) for c in clients) - clients_before
        machine = machine_busy_seconds() - machine_before
        step.sink_cores = sink_cpu / args.duration
        step.clients_cores = clients_cpu / args.duration
        step.others_cores = max(0.0, machine - step.relay_cpu_s - sink_cpu - clients_cpu) / args.duration
        lags: list[float] = []
        for proc in clients:
            out, _ = proc.communicate(timeout=120)
            lines = [line for line in (out or "").splitlines() if line.startswith("{")]
            if not lines:
                raise RuntimeError(f"the clients printed no result:\n{tail(log_dir / 'clients.log')}")
            result = json.loads(lines[-1])
            step.opened += result["opened"]
            step.open_at_window += result["open_at_window"]
            step.expected += result["sent_window"]
            step.dropped += result["dropped_window"]
            step.events_received += result["server_events"]
            for key, value in result["failed"].items():
                step.failed[key] = step.failed.get(key, 0) + value
            for key, value in result["closed_by_server"].items():
                step.closed_by_server[key] = step.closed_by_server.get(key, 0) + value
            if result["lag_p99_ms"] is not None:
                lags.append(result["lag_p99_ms"])
        step.client_lag_p99_ms = max(lags) if lags else math.nan
        time.sleep(0.5)  # frames still on their way when the window closed
        report = sink.ask(f"report {t0} {t1} {step.expected}")
        step.received = report["received"]
        step.p50_ms, step.p99_ms = report["p50_ms"], report["p99_ms"]
        step.p999_ms, step.max_ms = report["p999_ms"], report["max_ms"]
        step.spikes = report.get("spikes", [])
        if spy is not None:
            spy.wait(timeout=120)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        step.note = f"error: {exc}"[:500]
    finally:
        for proc in clients:
            stop(proc)
        stop(relay)
    return step


def profile(python: str, pid: int, output: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy recording the relay during the measured window (raw collapsed stacks of its busy threads)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    binary = str(Path(python).parent / "py-spy")
    return subprocess.Popen(  # noqa: S603
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--output",
            str(output),
            "--nonblocking",
            "--rate",
            "200",
            "--format",
            "raw",
            "--subprocesses",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- output


_VERBOSE = {"on": False}


def args_verbose() -> bool:
    return _VERBOSE["on"]


def fmt(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def print_step(step: Step) -> None:
    verdict = "ok" if step.passed else f"FAIL ({step.why_failed()})"
    print(
        f"  {step.config:34} N {step.sessions:5d}: p50 {fmt(step.p50_ms, 1):>6} p99 {fmt(step.p99_ms, 1):>7}"
        f" p99.9 {fmt(step.p999_ms, 1):>7} ms, lost {step.lost:5d}; relay {fmt(step.relay_cores, 2)} cores,"
        f" {fmt(step.cpu_per_session_minute, 3)} s/session-min; sink {fmt(step.sink_cores, 2)}"
        f" clients {fmt(step.clients_cores, 2)} others {fmt(step.others_cores, 2)} cores;"
        f" clients late {fmt(step.client_lag_p99_ms, 1)} ms; load {step.load_before}: {verdict}",
        flush=True,
    )
    if args_verbose() and step.spikes:
        worst = ", ".join(f"{at:g} s: {ms:.0f}" for at, ms in step.spikes)
        print(f"      worst 100 ms of the window (s after its start: ms): {worst}", flush=True)


@dataclass
class Summary:
    config: str
    best: Step | None
    at_common: Step | None
    failed_at: Step | None


def summarise(configs: list[Config], steps: list[Step], common: int) -> list[Summary]:
    summaries = []
    for config in configs:
        mine = [s for s in steps if s.config == config.name]
        passed = [s for s in mine if s.passed]
        failed = [s for s in mine if not s.passed]
        summaries.append(
            Summary(
                config=config.name,
                best=max(passed, key=lambda s: s.sessions) if passed else None,
                at_common=next((s for s in mine if s.sessions == common), None),
                failed_at=min(failed, key=lambda s: s.sessions) if failed else None,
            )
        )
    return summaries


def print_table(summaries: list[Summary], steps: list[Step], common: int) -> list[tuple[str, bool]]:
    """One line per configuration: its largest passing N, its CPU (at that N and at the common N), the
    ratios to the bare forwarder's, and the relay sessions one core would carry at that CPU."""
    bare = next((s for s in summaries if s.config == "bare"), None)
    bare_n = bare.best.sessions if bare and bare.best else None
    bare_cpu = bare.at_common.cpu_per_session_minute if bare and bare.at_common else None
    header = (
        f"{'configuration':34} {'max N':>5} {'p99 ms':>6} {'CPU s/session-min':>17}"
        f" {'at N=' + str(common):>8} {'sessions/core':>13} {'N/bare':>6} {'CPU/bare':>8} {'others':>6}"
        "  first failed step"
    )
    print("\n" + header + "\n" + "-" * len(header))
    verdicts = []
    for summary in summaries:
        best = summary.best
        n = best.sessions if best else 0
        cpu = best.cpu_per_session_minute if best else math.nan
        common_cpu = summary.at_common.cpu_per_session_minute if summary.at_common else math.nan
        per_core = 60 / common_cpu if common_cpu and not math.isnan(common_cpu) else math.nan
        ratio = n / bare_n if bare_n else math.nan
        cpu_ratio = common_cpu / bare_cpu if bare_cpu else math.nan
        others = sorted(
            s.others_cores for s in steps if s.config == summary.config and not math.isnan(s.others_cores)
        )
        failed = summary.failed_at
        why = f"N {failed.sessions}: {failed.why_failed()}" if failed else "none (raise --steps)"
        print(
            f"{summary.config:34} {n:>5} {fmt(best.p99_ms, 1) if best else '-':>6} {fmt(cpu, 3):>17}"
            f" {fmt(common_cpu, 3):>8} {fmt(per_core, 0):>13} {fmt(ratio, 2):>6} {fmt(cpu_ratio, 2):>8}"
            f" {fmt(others[len(others) // 2], 2) if others else '-':>6}  {why}"
        )
        if summary.config.startswith(("uvicorn", "daphne")) and "+" not in summary.config:
            if bare_n:
                verdicts.append(
                    (
                        f"{summary.config}: {n} sessions >= {TARGET_RATIO_TO_BARE} x bare's {bare_n}"
                        f" (ratio {fmt(ratio, 2)})",
                        n >= TARGET_RATIO_TO_BARE * bare_n,
                    )
                )
            verdicts.append((f"{summary.config}: {n} sessions >= {TARGET_SESSIONS}", n >= TARGET_SESSIONS))
    print(
        "\nCPU s/session-min: the relay's CPU (user + system, its process tree) per session-minute;"
        f" sessions/core: 60 / the CPU at N={common}, what one core would carry for the relay alone;"
        " others: the median cores the rest of the machine used during this configuration's windows."
    )
    return verdicts


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", default=",".join(DEFAULT_CONFIGS), help="configurations, comma-separated"
    )
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)), help="session counts, in order")
    parser.add_argument("--duration", type=float, help="measured seconds per step (default 20)")
    parser.add_argument(
        "--warmup", type=float, help="seconds between the last session opening and the window (default 3)"
    )
    parser.add_argument(
        "--ramp", type=float, help="seconds over which the sessions open (default 3; N/100 s from 300 up)"
    )
    parser.add_argument("--quick", action="store_true", help="5 s steps after 1 s warm-ups")
    parser.add_argument("--keep-going", action="store_true", help="run every step even after one failed")
    parser.add_argument(
        "--tries",
        type=int,
        default=3,
        help="run a failing step up to this many times; it passes if one try passes (default 3: other"
        " processes on the machine can only make a try worse, so the best try is the least disturbed)",
    )
    parser.add_argument(
        "--common", type=int, default=100, help="the N at which every configuration's CPU is compared"
    )
    parser.add_argument(
        "--frame-bytes", type=int, default=FRAME_BYTES, help="PCM bytes per 40 ms frame (1920: real time)"
    )
    parser.add_argument("--client-procs", type=int, default=1, help="processes the clients run in")
    parser.add_argument(
        "--upstream-events-every",
        type=int,
        default=0,
        help="the sink sends a transcription delta back after every N frames (5: 5 a second, as OpenAI while"
        " someone speaks; default 0: nothing, like the outside measurement)",
    )
    parser.add_argument(
        "--no-client-deflate",
        dest="client_deflate",
        action="store_false",
        help="clients do not offer permessage-deflate (browsers do)",
    )
    parser.add_argument("--json", type=Path, help="also write every step to this file")
    parser.add_argument(
        "--spikes", action="store_true", help="print when each step's slowest frames were sent (stalls)"
    )
    parser.add_argument(
        "--stop-after",
        type=int,
        default=2,
        help="stop raising N for a configuration after this many failed steps in a row (default 2: one"
        " step can fail on the machine's other work)",
    )
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--report",
        type=Path,
        help="print the table of a run saved with --json (with another --common) and stop",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the --profile-configs' relay during each window, into DIR"
    )
    parser.add_argument("--profile-configs", default="", help="configurations to profile (comma-separated)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    try:
        args.configs = [parse_config(c) for c in args.configs.split(",") if c]
    except ValueError as exc:
        parser.error(str(exc))
    args.steps = [int(s) for s in args.steps.split(",") if s]
    args.profile_configs = [c for c in args.profile_configs.split(",") if c]
    return args


def report(args: argparse.Namespace) -> int:
    """The table of a saved run: its configurations in the order they ran."""
    fields = {f.name for f in Step.__dataclass_fields__.values()}
    steps = [
        Step(**{k: v for k, v in row.items() if k in fields}) for row in json.loads(args.report.read_text())
    ]
    names = list(dict.fromkeys(step.config for step in steps))
    configs = [parse_config(name) for name in names]
    verdicts = print_table(summarise(configs, steps, args.common), steps, args.common)
    for text, met in verdicts:
        print(f"  [{'met' if met else 'MISSED'}] {text}")
    return 0


def ramp_for(args: argparse.Namespace, sessions: int) -> float:
    return args.ramp if args.ramp is not None else max(3.0, sessions / 100)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _VERBOSE["on"] = args.spikes
    if args.report:
        return report(args)
    # SIGTERM unwinds like Ctrl-C: every process this run started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    python = venv_python()
    database_url = os.environ.get("RT_BENCH_RELAY_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("RT_BENCH_RELAY_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        check_prerequisites(args.configs, python, database_url, redis_url)
    except Missing as exc:
        print(f"Missing prerequisites:\n{exc}", file=sys.stderr)
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="rt-bench-relay-"))
    steps: list[Step] = []
    sink: Sink | None = None
    try:
        print(f"Logs in {log_dir}; {os.cpu_count()} cores; load average {load_average()}", flush=True)
        sink = Sink(python, log_dir, args.upstream_events_every)
        minimal = [c for c in args.configs if c.django and not c.real]
        if minimal:
            print(f"Preparing {urlsplit(database_url).path.lstrip('/')}", flush=True)
            prepare_database(python, relay_env(minimal[0], sink.url, database_url, redis_url))
        print(
            f"Frames of {args.frame_bytes} PCM bytes every 40 ms; steps {args.steps}; {args.duration:g} s"
            f" measured after the ramp and a {args.warmup:g} s warm-up",
            flush=True,
        )
        # Configurations take turns at each N, so that a change in the machine's other load (the "others"
        # column) falls on all of them rather than on the one that happened to run then.
        alive = list(args.configs)
        failures_in_a_row = {config.name: 0 for config in args.configs}
        for sessions in args.steps:
            step_args = argparse.Namespace(**{**vars(args), "ramp": ramp_for(args, sessions)})
            for config in list(alive):
                env = relay_env(config, sink.url, database_url, redis_url)
                step = run_step(config, sessions, step_args, python, sink, env, log_dir)
                print_step(step)
                tries = 1
                while not step.passed and tries < args.tries:
                    tries += 1
                    step = run_step(config, sessions, step_args, python, sink, env, log_dir)
                    step.tries = tries
                    print_step(step)
                steps.append(step)
                failures_in_a_row[config.name] = 0 if step.passed else failures_in_a_row[config.name] + 1
                if failures_in_a_row[config.name] >= args.stop_after and not args.keep_going:
                    alive.remove(config)
            if not alive:
                break
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"\nThe benchmark stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        if sink is not None:
            sink.close()

    summaries = summarise(args.configs, steps, args.common)
    verdicts = print_table(summaries, steps, args.common)
    if verdicts:
        print("\nTargets:")
        for text, met in verdicts:
            print(f"  [{'met' if met else 'MISSED'}] {text}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {**asdict(s), "cpu_per_session_minute": s.cpu_per_session_minute, "passed": s.passed}
                    for s in steps
                ],
                indent=1,
            )
        )
    if args.keep_logs:
        print(f"Logs: {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0 if all(met for _text, met in verdicts) else 3


if __name__ == "__main__":
    sys.exit(main())
