"""HTTP transport to the upstream: one pooled keep-alive `requests.Session` per thread.

A `requests.Session` is not documented as thread-safe, and gunicorn's gthread workers serve requests on
many threads, so each thread keeps its own (and so its own keep-alive pool). Retries are urllib3's:
connection failures and 5xx answers only, with backoff; never a read error or timeout (the upstream may
already have created a session and we would pay twice), never a 4xx, never a 429.
"""

from __future__ import annotations

import functools
import threading

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset(range(500, 600))
BACKOFF_FACTOR = 0.2  # 0 s, 0.4 s, 0.8 s … between retries
BACKOFF_MAX = 2.0

_local = threading.local()


def _build_session(max_retries: int) -> requests.Session:
    retry = Retry(
        total=max_retries,
        connect=max_retries,
        read=False,  # re-raise read errors (timeouts, resets) at once instead of retrying them
        redirect=0,
        status=max_retries,
        other=0,
        allowed_methods=frozenset({"POST"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=BACKOFF_MAX,
        respect_retry_after_header=False,
        raise_on_status=False,  # hand back the last 5xx so it can be mapped and audited
    )
    session = requests.Session()
    # Not per request: requests would otherwise scan os.environ for proxy settings and look for ~/.netrc
    # on every call (a tenth of the request's CPU). Proxies from the environment are read once per URL.
    session.trust_env = False
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=4)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@functools.lru_cache(maxsize=16)
def proxies_for(url: str) -> dict[str, str]:
    """The environment's proxies (HTTPS_PROXY, NO_PROXY …) for this URL, read once."""
    return requests.utils.get_environ_proxies(url)


def get_session(max_retries: int) -> requests.Session:
    """This thread's pooled session for the given retry budget."""
    sessions: dict[int, requests.Session] | None = getattr(_local, "sessions", None)
    if sessions is None:
        sessions = _local.sessions = {}
    session = sessions.get(max_retries)
    if session is None:
        session = sessions[max_retries] = _build_session(max_retries)
    return session


def close_sessions() -> None:
    """Close this thread's sessions (tests use it to drop keep-alive connections)."""
    for session in getattr(_local, "sessions", {}).values():
        session.close()
    _local.sessions = {}
