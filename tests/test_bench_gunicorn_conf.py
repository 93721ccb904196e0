"""example_project/gunicorn.conf.py's worker hook: the garbage collector tuned after the app is loaded.

bench/load.py measured the collector at 4-8 % of a gevent worker's CPU with Python's default thresholds
and 0.5-1.9 % with these; here only the hook's effect is checked, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
import gc, json, runpy

config = runpy.run_path("example_project/gunicorn.conf.py")
before = gc.get_threshold()
config["post_worker_init"](None)
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                  "worker_class": config["worker_class"]}))
"""


def _hook(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("value", "threshold", "frozen"),
    [(None, [50000, 20, 100], True), ("10000,10,10", [10000, 10, 10], True), ("default", None, False)],
)
def test_the_worker_hook_freezes_and_raises_the_thresholds(
    value: str | None, threshold: list[int] | None, frozen: bool
) -> None:
    env = {"PATH": "/usr/bin:/bin", **({"GUNICORN_GC_THRESHOLD": value} if value else {})}
    seen = _hook(env)
    assert seen["worker_class"] == "gevent"
    assert seen["after"] == (threshold or seen["before"])
    assert (seen["frozen"] > 0) is frozen  # type: ignore[operator]
