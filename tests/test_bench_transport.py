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
from typing import Any

import pytest
import requests

from bench import load
from django_rt_sessions.upstreams import transport

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

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


class _Key(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer sk-test"
        return request


def _call(session: requests.Session, url: str, **extra: Any) -> requests.Response:
    return session.post(
        url,
        json={"session": {"type": "transcription"}, "note": "é"},
        headers={"Content-Type": "application/json", "OpenAI-Project": "proj_1", "Accept-Encoding": None},
        auth=_Key(),
        timeout=(2, 5),
        allow_redirects=False,
        proxies={},
        **extra,
    )


def test_the_upstream_session_sends_what_requests_own_path_sends(openai_standin: Any) -> None:
    """The fast path of LeanSession.request: the same request on the wire as Session.request's."""
    fast = transport._build_session(0)
    plain = requests.Session()
    plain.trust_env = False
    for session in (fast, plain):
        session.cookies.set("cf", "abc", domain="127.0.0.1", path="/")
        assert _call(session, f"{openai_standin.base_url}/realtime/client_secrets").status_code == 401

    sent_fast, sent_plain = openai_standin.requests
    assert (sent_fast.method, sent_fast.path, sent_fast.body) == (
        sent_plain.method,
        sent_plain.path,
        sent_plain.body,
    )
    assert sent_fast.headers == sent_plain.headers
    assert sent_fast.headers["cookie"] == "cf=abc"
    assert sent_fast.headers["authorization"] == "Bearer sk-test"
    assert sent_fast.headers["accept-encoding"] == "identity"  # None removed requests' own; http.client's
    assert sent_fast.headers["user-agent"].startswith("python-requests/")


def test_calls_the_fast_path_does_not_cover_go_through_requests(openai_standin: Any) -> None:
    fast = transport._build_session(0)
    response = _call(fast, f"{openai_standin.base_url}/realtime/client_secrets", params={"q": "1"})
    assert response.status_code == 401
    [sent] = openai_standin.requests
    assert sent.path == "/v1/realtime/client_secrets"
    assert response.url.endswith("/v1/realtime/client_secrets?q=1")
