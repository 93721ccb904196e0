"""Production-like runs: the example project under gunicorn (4 gthread workers per instance) with PostgreSQL
and Redis, hammered by real HTTP clients while its upstream, its cache and its database misbehave.

Everything is real and on loopback: gunicorn processes, the OpenAI stand-in, a private redis-server and a
private PostgreSQL cluster (the faults are done to those; the machine's shared PostgreSQL and Redis are only
used, in a database and a Redis db index of this module's own, by the two-host concurrency test).
`scripts/test` runs this module only in its PostgreSQL + Redis pass.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from django_rt_sessions.testing import Delay, Error, Garbage, Hang, RateLimit, Reset

from .production_support import (
    Gunicorn,
    Load,
    PostgresCluster,
    RedisServer,
    Result,
    app_env,
    audit_rows,
    browser_login,
    burst,
    drop_database,
    executable,
    fresh_window,
    import_presets,
    manage,
    pg_connect,
    postgres_bin_dir,
    prepare_app,
    preset,
    recreate_database,
    redis_server_binary,
    seconds_left,
    start_all,
    transcribe,
    with_redis_db,
)

pytestmark = pytest.mark.production

PASSWORD = "pw-production-1234"
HIGH_RATE = "100000/m"  # per-user and per-IP limits that never bite (all clients are 127.0.0.1)
CONCURRENCY_DATABASE = "rt_prod_test"
CONCURRENCY_REDIS_DB = 13

# The private host's upstream settings (env RT_READ_TIMEOUT & co., read by example_project/settings.py).
READ_TIMEOUT = 1.0
CONNECT_TIMEOUT = 0.5
MAX_RETRIES = 2
RETRY_BACKOFF = 0.4  # urllib3's backoff for 2 retries with BACKOFF_FACTOR 0.2: 0 s, then 0.4 s
REDIS_SOCKET_TIMEOUT = 1.0  # example_project/settings.py CACHES OPTIONS
MARGIN = 2.0  # seconds of slack for a loaded 2-CPU machine on top of the configured timeouts
DB_DOWN_RETRY_AFTER = "5"
POSTGRES_BURST = 48  # concurrent requests: more than the 32 threads of a host, so most threads serve one
CACHE_DOWN_RETRY_AFTER = "5"


def fingerprint(result: Result) -> str:
    return hashlib.sha256(result.body["client_secret"]["value"].encode()).hexdigest()


def expected_outcome(result: Result) -> str:
    return "issued" if result.status == 201 else str(result.code)


# ---------------------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class SharedServices:
    database_url: str  # the shared PostgreSQL server (any database name)
    redis_url: str  # the shared Redis server (any db index)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the production tests cannot run: {reason}")
    pytest.skip(f"production tests need gunicorn, PostgreSQL and Redis: {reason}")


@pytest.fixture(scope="module")
def services() -> SharedServices:
    database_url = os.environ.get("RT_TEST_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/rt_sessions"
    redis_url = os.environ.get("RT_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"
    problems = []
    if not executable("gunicorn"):
        problems.append("gunicorn is not installed")
    if not redis_server_binary():
        problems.append("redis-server is not installed")
    if not postgres_bin_dir():
        problems.append("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    try:
        pg_connect(database_url, dbname="postgres").close()
    except Exception as exc:
        problems.append(f"PostgreSQL at {database_url.split('@')[-1]} is unreachable ({type(exc).__name__})")
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:
        problems.append(f"Redis at {redis_url} is unreachable ({type(exc).__name__})")
    if problems:
        _unavailable("; ".join(problems))
    return SharedServices(database_url=database_url, redis_url=redis_url)


@pytest.fixture(scope="module")
def standin(services: SharedServices) -> Iterator[Any]:
    from django_rt_sessions.testing import OpenAIStandIn

    server = OpenAIStandIn(host="127.0.0.1").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("production")


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.flushdb()
    finally:
        client.close()


@dataclass
class TwoHosts:
    hosts: list[Gunicorn]
    database_url: str
    username: str
    user_pk: int


@pytest.fixture
def two_hosts(services: SharedServices, standin: Any, log_dir: Path) -> Iterator[TwoHosts]:
    """Two gunicorn instances ("hosts") sharing a fresh database and Redis db 13 of the shared servers."""
    redis_url = with_redis_db(services.redis_url, CONCURRENCY_REDIS_DB)
    database_url = recreate_database(services.database_url, CONCURRENCY_DATABASE)
    _flush_redis(redis_url)
    env = {
        **app_env(database_url, redis_url, standin),
        "RT_USER_RATE": HIGH_RATE,
        "RT_IP_RATE": HIGH_RATE,
    }
    hosts = [Gunicorn(env, log_dir, "host-a"), Gunicorn(env, log_dir, "host-b")]
    try:
        pks = prepare_app(env, [preset("burst", default=True, rate="10/m")], {"burst-user": PASSWORD})
        start_all(hosts)
        yield TwoHosts(
            hosts=hosts, database_url=database_url, username="burst-user", user_pk=pks["burst-user"]
        )
    finally:
        for host in hosts:
            host.stop()
        _flush_redis(redis_url)
        drop_database(services.database_url, CONCURRENCY_DATABASE)


@dataclass
class PrivateHost:
    """One gunicorn instance whose PostgreSQL and Redis are this module's own, to stop and restart."""

    host: Gunicorn
    postgres: PostgresCluster
    redis: RedisServer
    database_url: str
    users: dict[str, int]


PRIVATE_USERS = ("upstream-faults", "redis-faults", "postgres-faults")


@pytest.fixture(scope="module")
def private_stack(services: SharedServices, standin: Any, log_dir: Path) -> Iterator[PrivateHost]:
    postgres = PostgresCluster()
    redis_server = RedisServer(log_dir)
    host: Gunicorn | None = None
    try:
        postgres.init().start()
        with pg_connect(postgres.url()) as conn:
            conn.execute("CREATE DATABASE rt_prod")
        redis_server.start()
        database_url = postgres.url("rt_prod")
        env = {
            **app_env(database_url, redis_server.url(0), standin),
            "RT_USER_RATE": HIGH_RATE,
            "RT_IP_RATE": HIGH_RATE,
            "RT_READ_TIMEOUT": str(READ_TIMEOUT),
            "RT_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "RT_MAX_RETRIES": str(MAX_RETRIES),
        }
        users = prepare_app(env, [preset("faults", default=True)], dict.fromkeys(PRIVATE_USERS, PASSWORD))
        host = Gunicorn(env, log_dir, "private").start().wait_ready()
        yield PrivateHost(host, postgres, redis_server, database_url, users)
    finally:
        if host is not None:
            host.stop()
        redis_server.stop()
        postgres.destroy()


@pytest.fixture
def private_host(private_stack: PrivateHost, standin: Any) -> PrivateHost:
    """The private host with its services up and the stand-in behaving (whatever an earlier test left)."""
    private_stack.postgres.ensure_running()
    private_stack.redis.ensure_running()
    standin.reset()
    assert private_stack.host.alive(), private_stack.host.log()
    return private_stack


def _check_common(results: list[Result], allowed: set[int]) -> None:
    """Every request got an HTTP answer shaped as docs/http-api.md says, with an allowed status; no 500."""
    assert results, "no request completed"
    failures = [r.describe() for r in results if r.error]
    assert not failures, f"requests without an HTTP answer: {failures[:5]}"
    server_errors = [r.describe() for r in results if r.status == 500]
    assert not server_errors, f"500s: {server_errors[:5]}"
    unexpected = [r.describe() for r in results if r.status not in allowed]
    assert not unexpected, f"statuses outside {sorted(allowed)}: {unexpected[:5]}"
    malformed = [f"{r.describe()} {r.body!r}"[:300] for r in results if not r.envelope_ok()]
    assert not malformed, f"bodies outside docs/http-api.md's shapes: {malformed[:5]}"


def _check_audit_matches(results: list[Result], rows: list[Any]) -> None:
    """Exactly one audit row per response, with the status and outcome its client saw."""
    seen = Counter((r.status, expected_outcome(r)) for r in results)
    audited = Counter((row.status_code, row.outcome) for row in rows)
    assert audited == seen, f"audit {dict(audited)} != responses {dict(seen)}"
    issued = sorted(row.secret_fingerprint for row in rows if row.outcome == "issued")
    assert issued == sorted(fingerprint(r) for r in results if r.status == 201)


def _window(results: list[Result], after: float, before: float) -> list[Result]:
    return [r for r in results if r.started >= after and r.ended <= before]


# ------------------------------------------------------------------------------------- concurrency: 2 hosts


BURST = 200
LIMIT = 10


def test_two_hosts_burst_issues_exactly_the_preset_limit(two_hosts: TwoHosts, standin: Any) -> None:
    hosts = two_hosts.hosts
    standin.reset()
    login = browser_login(hosts[0].url, two_hosts.username, PASSWORD)
    key = str(two_hosts.user_pk)  # the preset limit's key: django-ratelimit aligns its window on it
    fresh_window(key, need=25)
    window_end = time.time() + seconds_left(key)
    burst_started = time.time()
    results = burst([host.url for host in hosts], login, BURST)
    burst_ended = time.time()
    assert burst_ended < window_end, "the burst outlasted the rate window it was started in"

    _check_common(results, {201, 429})
    statuses = Counter(r.status for r in results)
    assert statuses == {201: LIMIT, 429: BURST - LIMIT}, dict(statuses)
    for host in hosts:  # both instances served the burst and refused from the shared counter
        assert any(r.status == 429 and r.target == host.url for r in results), host.name
    low = int(window_end - burst_ended) - 1
    high = int(window_end - burst_started) + 1
    for result in results:
        if result.status == 429:
            assert result.code == "rate_limited", result.body
            assert (result.retry_after or "").isdigit(), result.retry_after
            seconds = int(result.retry_after or 0)
            assert max(1, low) <= seconds <= min(60, high), (seconds, low, high)
    assert len(standin.issued) == LIMIT  # nothing beyond the limit reached the upstream

    rows = audit_rows(two_hosts.database_url, two_hosts.username)
    assert len(rows) == BURST
    assert Counter(row.outcome for row in rows) == {"issued": LIMIT, "rate_limited": BURST - LIMIT}
    _check_audit_matches(results, rows)
    for host in hosts:
        assert host.alive(), host.log()


PRESET_CHANGE = """
import os
from django.contrib.auth.models import Group
from django_rt_sessions.presets import cache as preset_cache
from django_rt_sessions.models import SessionPreset
change, preset = os.environ["RT_PROD_CHANGE"], SessionPreset.objects.get(name="shared")
if change == "update-without-invalidate":
    SessionPreset.objects.filter(pk=preset.pk).update(active=False)  # no signal: workers keep their copy
elif change == "invalidate":
    preset_cache.invalidate()
elif change == "reactivate":
    preset.active = True
    preset.save()  # post_save
elif change == "restrict":
    preset.groups.add(Group.objects.create(name="not-the-user"))  # m2m_changed
print("CHANGED", change)
"""


def test_preset_changes_reach_every_worker_of_both_hosts(two_hosts: TwoHosts, standin: Any) -> None:
    """Each worker keeps presets in memory (preset_cache); a change in another process reaches them all."""
    hosts = two_hosts.hosts
    urls, env = [host.url for host in hosts], hosts[0].env
    import_presets(env, [preset("shared")])  # no rate of its own: RT_USER_RATE, which never bites
    login = browser_login(hosts[0].url, two_hosts.username, PASSWORD)

    def outcomes() -> Counter[tuple[int | None, str | None]]:
        results = burst(urls, login, 32, body={"preset": "shared"})
        _check_common(results, {201, 403, 404})
        return Counter((r.status, r.code) for r in results)

    def change(what: str) -> None:
        assert f"CHANGED {what}" in manage({**env, "RT_PROD_CHANGE": what}, "shell", "-c", PRESET_CHANGE)

    assert outcomes() == {(201, None): 32}  # every worker that served one now holds the preset
    change("update-without-invalidate")
    assert outcomes()[(201, None)] > 0  # the workers really serve from memory (the documented limit)
    change("invalidate")
    assert outcomes() == {(404, "preset_not_found"): 32}
    change("reactivate")
    assert outcomes() == {(201, None): 32}
    change("restrict")
    assert outcomes() == {(403, "preset_forbidden"): 32}
    for host in hosts:
        assert host.alive(), host.log()


# --------------------------------------------------------------------------------------- upstream faults


@dataclass(frozen=True)
class Phase:
    name: str
    behaviour: Any
    status: int
    code: str | None  # None: a 201
    bound: float  # seconds a client may wait for its answer
    retry_after: str | None = None


PHASES = [
    Phase("latency", Delay(0.2), 201, None, 0.2 + MARGIN),
    Phase("latency spike", Delay(READ_TIMEOUT + 1), 504, "upstream_timeout", READ_TIMEOUT + MARGIN),
    Phase("5xx burst", Error(500), 502, "upstream_error", RETRY_BACKOFF + MARGIN),
    Phase("hang", Hang(max_seconds=5), 504, "upstream_timeout", READ_TIMEOUT + MARGIN),
    Phase("connection reset", Reset(), 503, "upstream_unavailable", MARGIN),
    Phase("garbage body", Garbage(), 502, "upstream_error", MARGIN),
    Phase("upstream 429", RateLimit(3), 503, "upstream_unavailable", MARGIN, retry_after="3"),
    Phase("recovered", None, 201, None, MARGIN),
]
PHASE_SECONDS = 2.5


def test_upstream_faults_while_clients_keep_requesting(private_host: PrivateHost, standin: Any) -> None:
    username = "upstream-faults"
    host = private_host.host
    login = browser_login(host.url, username, PASSWORD)
    workers = host.worker_pids()
    # switches[k] = (just before, just after) the stand-in was switched to PHASES[k]
    switches: list[tuple[float, float]] = []
    before = time.monotonic()
    standin.always(PHASES[0].behaviour)
    switches.append((before, time.monotonic()))
    load = Load(host.url, login, threads=4, timeout=READ_TIMEOUT + 10).start()
    try:
        for phase in PHASES[1:]:
            time.sleep(PHASE_SECONDS)
            before = time.monotonic()
            standin.always(phase.behaviour)
            switches.append((before, time.monotonic()))
        time.sleep(PHASE_SECONDS)
    finally:
        results = load.stop()
        standin.reset()

    def possible(result: Result) -> list[Phase]:
        """The phases whose behaviour the stand-in may have applied while this request was in flight."""
        found = []
        for index, phase in enumerate(PHASES):
            active_from = switches[index][0]
            active_to = switches[index + 1][1] if index + 1 < len(switches) else float("inf")
            if result.started <= active_to and result.ended >= active_from:
                found.append(phase)
        return found

    _check_common(results, {phase.status for phase in PHASES})
    for result in results:
        phases = possible(result)
        assert (result.status, result.code if result.status != 201 else None) in {
            (phase.status, phase.code) for phase in phases
        }, f"{result.describe()} during {[phase.name for phase in phases]}"
        assert result.elapsed <= max(phase.bound for phase in phases), (
            f"{result.describe()} during {[phase.name for phase in phases]}"
        )
    for phase in PHASES:
        within = [r for r in results if possible(r) == [phase]]
        assert len(within) >= 2, f"only {len(within)} requests entirely within {phase.name!r}"
        if phase.retry_after is not None:
            assert {r.retry_after for r in within} == {phase.retry_after}, phase.name
    assert host.worker_pids() == workers, "workers were restarted"

    _check_audit_matches(results, audit_rows(private_host.database_url, username))


# ------------------------------------------------------------------------------------------ Redis faults


def test_redis_stuck_killed_and_restarted(private_host: PrivateHost) -> None:
    """With the documented deployment: cached_db sessions on the same Redis as the rate limits, through a
    session cache whose errors are ignored (example_project/settings.py, docs/deployment.md)."""
    username = "redis-faults"
    host, redis_server = private_host.host, private_host.redis
    assert host.env["DJANGO_SESSION_ENGINE"] == "django.contrib.sessions.backends.cached_db"
    login = browser_login(host.url, username, PASSWORD)
    workers = host.worker_pids()
    marks: dict[str, float] = {}
    during_outage: list[Result] = []
    load = Load(host.url, login, threads=4, timeout=30).start()
    try:
        time.sleep(1.5)
        marks["pause"] = time.monotonic()
        redis_server.pause()  # SIGSTOP: connections open, nothing answers
        marks["paused"] = time.monotonic()
        time.sleep(3)
        marks["resume"] = time.monotonic()
        redis_server.resume()
        marks["resumed"] = time.monotonic()
        time.sleep(2)
        marks["kill"] = time.monotonic()
        redis_server.kill()  # SIGKILL: gone, connections refused
        marks["killed"] = time.monotonic()
        # Logging in still works (the session is written to the database), and its token request gets the
        # documented refusal.
        outage_login = browser_login(host.url, username, PASSWORD)
        with requests.Session() as http:
            during_outage.append(transcribe(http, host.url, outage_login))
        time.sleep(2)
        marks["restart"] = time.monotonic()
        redis_server.start()  # same port, empty
        marks["restarted"] = time.monotonic()
        time.sleep(2.5)
        with requests.Session() as http:  # the session made during the outage, now read through Redis
            during_outage.append(transcribe(http, host.url, outage_login))
    finally:
        results = load.stop()
        redis_server.ensure_running()

    assert [(r.status, r.code) for r in during_outage] == [(503, "rate_limit_unavailable"), (201, None)], [
        r.describe() for r in during_outage
    ]

    _check_common(results, {201, 503})
    for result in results:
        assert result.elapsed <= REDIS_SOCKET_TIMEOUT + MARGIN, result.describe()
        if result.status == 503:
            assert result.code == "rate_limit_unavailable", result.describe()
            assert result.retry_after == CACHE_DOWN_RETRY_AFTER, result.describe()
    for name, after, before, status in [
        ("before", 0, marks["pause"], 201),
        ("stuck", marks["paused"], marks["resume"], 503),
        ("resumed", marks["resumed"], marks["kill"], 201),
        ("killed", marks["killed"], marks["restart"], 503),
        ("restarted", marks["restarted"], float("inf"), 201),
    ]:
        window = _window(results, after, before)
        assert len(window) >= 2, f"only {len(window)} requests while Redis was {name}"
        wrong = [r.describe() for r in window if r.status != status]
        assert not wrong, f"while Redis was {name}, expected {status}: {wrong[:5]}"
    assert host.alive(), host.log()
    assert host.worker_pids() == workers, "workers were restarted"

    _check_audit_matches(results + during_outage, audit_rows(private_host.database_url, username))


# ------------------------------------------------------------------------------------- PostgreSQL faults


def test_postgres_restarted_and_down(private_host: PrivateHost) -> None:
    username = "postgres-faults"
    host, postgres = private_host.host, private_host.postgres
    login = browser_login(host.url, username, PASSWORD)
    workers = host.worker_pids()
    marks: dict[str, float] = {}
    # Many worker threads hold a persistent connection (CONN_MAX_AGE) from before the restart and sit idle
    # through the outage; the bursts after it check each of them reconnects instead of failing once.
    warm = burst([host.url], login, POSTGRES_BURST)
    load = Load(host.url, login, threads=4, timeout=30).start()
    try:
        time.sleep(1)
        marks["restart"] = time.monotonic()
        postgres.restart()  # pg_ctl restart -m fast while clients request
        marks["restarted"] = time.monotonic()
        after_restart = burst([host.url], login, POSTGRES_BURST)
        time.sleep(1)
        marks["stop"] = time.monotonic()
        postgres.stop(mode="fast")
        marks["stopped"] = time.monotonic()
        time.sleep(2.5)
        marks["start"] = time.monotonic()
        postgres.start()
        marks["started"] = time.monotonic()
        back = burst([host.url], login, POSTGRES_BURST)
        time.sleep(1.5)
    finally:
        results = load.stop()
        postgres.ensure_running()

    _check_common(warm + results + after_restart + back, {201, 503})
    for name, batch in [("before", warm), ("just restarted", after_restart), ("back", back)]:
        wrong = Counter((r.status, r.code) for r in batch if r.status != 201)
        assert not wrong, f"a burst while PostgreSQL was {name}: {dict(wrong)}"
    for result in results:
        assert result.elapsed <= MARGIN, result.describe()
        if result.status == 503:
            assert result.code == "service_unavailable", result.describe()
            assert result.retry_after == DB_DOWN_RETRY_AFTER, result.describe()
    for name, after, before, status in [
        ("up", 0, marks["restart"], 201),
        ("restarted", marks["restarted"], marks["stop"], 201),
        ("down", marks["stopped"], marks["start"], 503),
        ("back", marks["started"], float("inf"), 201),
    ]:
        window = _window(results, after, before)
        assert len(window) >= 2, f"only {len(window)} requests while PostgreSQL was {name}"
        wrong_statuses = [r.describe() for r in window if r.status != status]
        assert not wrong_statuses, f"while PostgreSQL was {name}, expected {status}: {wrong_statuses[:5]}"
    assert host.alive(), host.log()
    assert host.worker_pids() == workers, "workers were restarted"

    # A request refused because the database was down may have no row (nothing could be written); every
    # other request, above all every 201, has exactly its row, with the outcome its client saw.
    everything = warm + results + after_restart + back
    rows = audit_rows(private_host.database_url, username)
    answered = [r for r in everything if r.status != 503]
    _check_audit_matches(answered, [row for row in rows if row.status_code != 503])
    refused_rows = [row for row in rows if row.status_code == 503]
    assert len(refused_rows) <= len(everything) - len(answered)
    assert all(row.outcome == "service_unavailable" for row in refused_rows), Counter(
        row.outcome for row in refused_rows
    )
