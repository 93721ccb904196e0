"""The environment for a subprocess running the example project: the caller's, minus everything the
example project (settings, gunicorn.conf.py, demo app) reads, so a developer's own variables cannot leak in.
The tests then set what they need explicitly. `serving` runs a script of the example project as a server."""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXAMPLE_ENV_PREFIXES = ("RT_", "DJANGO_", "OPENAI_", "DATABASE_", "GUNICORN_")
EXAMPLE_ENV_KEYS = ("REDIS_URL", "WEB_CONCURRENCY", "RUN_MAIN")


def clean_environ(**values: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(EXAMPLE_ENV_PREFIXES) and key not in EXAMPLE_ENV_KEYS
    }
    env.update(values)
    return env


@contextlib.contextmanager
def serving(
    script: str, env: dict[str, str], *, what: str, timeout: float = 60
) -> Iterator[tuple[str, list[str]]]:
    """Run `script` (Python, printing "LISTENING <port>" once it serves) in a subprocess from the project's
    root; yield its URL and its output so far (a list that keeps growing); stop it afterwards."""
    process = subprocess.Popen(  # noqa: S603  (our own interpreter and script)
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
            output.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        port = None
        while port is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{what} did not start:\n" + "".join(output)[-5000:])
            if line.startswith("LISTENING "):
                port = int(line.split()[1])
            elif process.poll() is not None and lines.empty():
                pytest.fail(f"{what} exited:\n" + "".join(output)[-5000:])
        yield f"http://127.0.0.1:{port}", output
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
