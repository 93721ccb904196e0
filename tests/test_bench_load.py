"""bench/load.py's verdicts and bookkeeping: the targets it checks, the audit comparison, the caller counts.

The benchmark itself is not run here (no timed assertion in the suite); these check the functions that
turn its measurements into "met" or "MISSED", with made-up measurements.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench import fast_upstream, load, probes

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database


def result(server: str, delay: int, clients: int, tokens: int, p99: float = 100.0, bad: int = 0) -> Any:
    return load.Result(
        server=server,
        delay_ms=delay,
        clients=clients,
        requests=tokens + bad,
        seconds=1.0,
        statuses={"201": tokens, **({"500": bad} if bad else {})},
        p99_ms=p99,
    )


def verdicts(results: list[Any]) -> dict[str, bool]:
    return {text.split(" (")[0]: met for text, met in load.check_targets(results)}


@pytest.mark.parametrize(("ours", "met"), [(70, True), (69, False)])
def test_fast_target_is_07_of_django_best(ours: int, met: bool) -> None:
    checked = verdicts([result("ours", 0, 64, ours), result("django-best", 0, 64, 100)])
    assert checked["0 ms, 64 clients: ours >= 0.7 x django-best"] is met


def test_slow_targets_django_best_floor_and_p99() -> None:
    runs = [
        result("ours", 300, 256, 150, p99=1200),
        result("django-best", 300, 256, 100),
        result("floor", 300, 256, 251),
    ]
    checked = verdicts(runs)
    assert checked["300 ms, 256 clients: ours >= 1.5 x django-best"] is True
    assert checked["300 ms, 256 clients: ours >= 0.6 x floor"] is False  # 150 / 251 = 0.598
    assert checked["300 ms, 256 clients: ours p99 1200 ms <= 1200 ms"] is True
    runs[0].p99_ms = 1201
    assert verdicts(runs)["300 ms, 256 clients: ours p99 1201 ms <= 1200 ms"] is False


def test_a_failed_request_in_any_run_misses() -> None:
    runs = [result("ours", 0, 16, 100), result("floor", 300, 1, 3, bad=1)]
    checks = load.check_targets(runs)
    [(text, met)] = [c for c in checks if c[0].startswith("no failed request")]
    assert not met
    assert "floor 300 ms/1: 1 failed" in text
    assert dict(load.check_targets(runs[:1]))["no failed request in any run"] is True


def test_ratios_are_of_tokens_per_second_in_the_same_configuration() -> None:
    by_key = {
        (r.server, r.delay_ms, r.clients): r
        for r in [result("ours", 0, 64, 50), result("floor", 0, 64, 200), result("floor", 0, 16, 10)]
    }
    assert load.ratio(by_key, "floor", 0, 64) == 0.25
    assert load.ratio(by_key, "floor", 0, 16) is None  # no ours at 16 clients
    assert load.ratio(by_key, "express", 0, 64) is None


class FakePostgres:
    def __init__(self, outcomes: dict[str, int]) -> None:
        self.outcomes = outcomes

    def audit_outcomes(self) -> dict[str, int]:
        return self.outcomes


@pytest.mark.parametrize(
    ("outcomes", "keys", "answered", "met"),
    [
        ({"issued": 500}, 500, 480, True),
        ({"issued": 499}, 500, 480, False),  # a key without its row
        ({"issued": 500, "upstream_error": 1}, 500, 480, False),  # a failed request
        ({"issued": 500}, 500, 501, False),  # a 201 without a row
    ],
)
def test_the_audit_check(outcomes: dict[str, int], keys: int, answered: int, met: bool) -> None:
    stats = {"by_caller": {"ours": keys, "floor": 10_000}}
    _text, verdict = load.check_audit(FakePostgres(outcomes), stats, answered)  # type: ignore[arg-type]
    assert verdict is met


def test_the_upstream_counts_keys_per_caller() -> None:
    state = fast_upstream.State(0)
    for path in ("/ours/v1/realtime/client_secrets", "/ours/v1/realtime/client_secrets", "/v1/realtime/x"):
        state.count(path)
    assert state.requests == 3
    assert state.by_caller == {"ours": 2, "": 1}
    assert load.upstream_base("http://127.0.0.1:1", "ours") == "http://127.0.0.1:1/ours/v1"


def test_servers_run_in_a_fixed_order_and_unknown_ones_are_refused(capsys: Any) -> None:
    assert load.parse_args(["--servers", "floor,ours"]).servers == ["ours", "floor"]
    with pytest.raises(SystemExit):
        load.parse_args(["--servers", "ours,djangoo"])
    assert "djangoo" in capsys.readouterr().err


def test_cpu_of_counts_what_a_process_used_in_between() -> None:
    probe = probes.CpuOf(lambda: [os.getpid()])
    probe.start()
    start = probes.process_cpu_seconds(os.getpid())
    while probes.process_cpu_seconds(os.getpid()) == start:  # burn CPU until the next clock tick
        sum(range(10_000))
    assert probe.stop() > 0
    assert probes.CpuOf(lambda: [2**22 + 12345]).stop() == 0  # a process that does not exist


def test_profile_summary_gives_a_sample_to_its_deepest_piece(tmp_path: Any) -> None:
    from bench import profile_summary

    handler = "WSGIHandler.__call__ (django/core/handlers/wsgi.py:124)"
    user = "get_user (django/contrib/auth/__init__.py:295)"
    checkout = "ConnectionPool.getconn (psycopg_pool/pool.py:194)"
    call = "LeanSession.request (/srv/app/django_rt_sessions/upstreams/transport.py:90)"
    leaf = "Cursor.execute (psycopg/cursor.py:97)"
    profile = tmp_path / "ours.txt"
    profile.write_text(
        f'process 1:"gunicorn";{handler};{user};{leaf} 3\n'
        f'process 1:"gunicorn";{handler};{user};{checkout};{leaf} 1\n'
        f'process 1:"gunicorn";{handler};{call};{leaf} 4\n'
        'process 1:"gunicorn";Hub.run (gevent/hub.py:647) 2\n'
    )
    counts = profile_summary.summarise(profile)
    assert counts == {
        "user query (auth)": 3,
        "pool checkout (+ health check)": 1,
        "upstream call (requests, urllib3)": 4,
        profile_summary.OUTSIDE: 2,
    }


def test_profile_summary_names_the_packages_own_modules_and_functions() -> None:
    """Each piece of the package is named by a function and where it is defined: after a move, the table
    must follow, or its samples silently fall to another piece."""
    import re
    from pathlib import Path

    from bench import profile_summary

    root = Path(__file__).resolve().parent.parent
    named = 0
    for piece, pattern in profile_summary.PIECES:
        if "django_rt_sessions/" not in pattern:
            continue
        found = re.fullmatch(r"\^(?:\\w\+\\\.|\w+\\\.)?(\w+) \\\((django_rt_sessions/[\w/]+)", pattern)
        assert found, (piece, pattern)
        function, where = found.groups()
        files = (
            [root / f"{where}.py"]
            if (root / f"{where}.py").is_file()
            else sorted((root / where).glob("*.py"))
        )
        assert files, f"{piece!r}: nothing at {where}"
        defined = re.compile(rf"^\s*(?:async )?(?:def|class) {function}\b", re.M)
        assert any(defined.search(path.read_text()) for path in files), (
            f"{piece!r}: {where} defines no {function}"
        )
        named += 1
    assert named >= 8
