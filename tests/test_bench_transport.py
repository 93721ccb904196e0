"""The upstream transport under the documented deployment's gevent workers (what bench/load.py measures).

Under gevent's monkey-patching every client connection is a greenlet, and `threading.local` is per
greenlet: the transport must still keep one pool of upstream connections per OS thread, big enough for
the greenlets calling at once, instead of a session (and a new upstream connection) per greenlet. Run
in a subprocess (monkey-patching cannot be undone), against bench/fast_upstream.py over real sockets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import load

ROOT = Path(__file__).resolve().parent.parent
CALLS = 20  # greenlets calling at once, twice

SCRIPT = """
from gevent import monkey
monkey.patch_all()
import json, logging, sys
import gevent
from django_rt_sessions.upstreams import transport

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger("urllib3").addHandler(Keep())
logging.getLogger("urllib3").setLevel(logging.DEBUG)

url, calls = sys.argv[1], int(sys.argv[2])
def call():
    session = transport.get_session(2)
    response = session.post(url, json={"session": {"type": "transcription"}}, timeout=(2, 5))
    return id(session), response.status_code, response.json()["value"][:3]

answers = []
for _wave in range(2):
    jobs = [gevent.spawn(call) for _ in range(calls)]
    gevent.joinall(jobs, raise_error=True)
    answers += [job.value for job in jobs]
session = transport.get_session(2)
manager = session.get_adapter(url).poolmanager
pools = [manager.pools[key] for key in manager.pools.keys()]
# gevent's thread pool runs this in another OS thread.
other_thread = [gevent.get_hub().threadpool.apply(lambda: id(transport.get_session(2)))]
transport.close_sessions()
print(json.dumps({
    "sessions": sorted({a[0] for a in answers}),
    "main": id(session),
    "other_thread": other_thread,
    "answers": sorted({(a[1], a[2]) for a in answers}),
    "requests": sum(pool.num_requests for pool in pools),
    "connections": sum(pool.num_connections for pool in pools),
    "discarded": [m for m in records if "discarding" in m.lower()],
    "closed_then_new": id(transport.get_session(2)) != id(session),
}))
"""


@pytest.fixture(scope="module")
def fast_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """bench/fast_upstream.py answering after 200 ms, so that the greenlets' calls overlap."""
    port = load.free_port()
    procs = load.Processes(tmp_path_factory.mktemp("upstream"))
    proc = procs.start("upstream", [sys.executable, "bench/fast_upstream.py", "--port", str(port)], {})
    try:
        load.wait_http(f"http://127.0.0.1:{port}/__bench/stats", proc, timeout=30)
        load.set_delay(f"http://127.0.0.1:{port}", 200)
        yield f"http://127.0.0.1:{port}/v1/realtime/client_secrets"
    finally:
        procs.stop_all()


def test_greenlets_of_a_thread_share_one_pool_of_upstream_connections(fast_upstream: str) -> None:
    done = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", SCRIPT, fast_upstream, str(CALLS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["answers"] == [[200, "ek_"]]
    assert seen["sessions"] == [seen["main"]]  # one session for every greenlet of the thread
    assert seen["requests"] == 2 * CALLS
    # The first wave opened one connection per overlapping call, the second reused them all, and none
    # was opened beyond the pool's size and thrown away.
    assert seen["connections"] == CALLS
    assert seen["discarded"] == []
    assert seen["other_thread"] and seen["other_thread"] != [seen["main"]]  # a real thread has its own
    assert seen["closed_then_new"]
