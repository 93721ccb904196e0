"""HTTP transport to the upstream: one pooled keep-alive `requests.Session` per thread.

A `requests.Session` is not documented as thread-safe, and gunicorn's gthread workers serve requests on
many threads, so each thread keeps its own (and so its own keep-alive pool). Under gevent's
monkey-patching (the documented deployment's gevent workers) a "thread" of `threading.local` is a
greenlet, one per client connection: a session per greenlet would open a new connection to the upstream
(TCP and TLS handshakes, a DNS lookup through gevent's thread pool) for every new client connection. So
the greenlets of one OS thread share that thread's session, whose pool holds a connection for every
greenlet that may be calling at once (greenlets switch only where they wait for I/O, never inside the
session's bookkeeping). Retries are urllib3's: connection failures and 5xx answers only, with backoff;
never a read error or timeout (the upstream may already have created a session and we would pay twice),
never a 4xx, never a 429.

The sessions are `LeanSession`s: the same requests, prepared without merging each call's settings
with the session's and the environment's, of which there are none here.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset(range(500, 600))
BACKOFF_FACTOR = 0.2  # 0 s, 0.4 s, 0.8 s … between retries
BACKOFF_MAX = 2.0
THREAD_POOL_SIZE = 4  # a thread makes one call at a time
# Greenlets of one thread calling at once: gunicorn's worker_connections (example_project/gunicorn.conf.py).
# Connections are opened only as calls overlap; beyond the size urllib3 would open and discard extras.
GREENLET_POOL_SIZE = 1000

_local = threading.local()  # per greenlet under gevent
_greenlet_sessions: dict[tuple[int, int], requests.Session] = {}
_patched_get_ident: list[Callable[[], int]] = []  # the OS thread's get_ident, once gevent has patched


def _os_thread_ident() -> Callable[[], int] | None:
    """The OS thread's `get_ident` when gevent has patched threading (greenlets share threads), else None."""
    if not _patched_get_ident:
        monkey = sys.modules.get("gevent.monkey")
        if monkey is None or not monkey.is_module_patched("threading"):
            return None
        _patched_get_ident.append(monkey.get_original("_thread", "get_ident"))
    return _patched_get_ident[0]


class LeanSession(requests.Session):
    """A `requests.Session` whose calls skip `Session.request`'s merging when there is nothing to merge.

    `Session.request` merges every call's headers, params, auth, hooks, proxies, stream, verify and
    cert with the session's and, with `trust_env`, the environment's, through `merge_setting` (whose
    runtime Protocol checks are slow before Python 3.12) and two copies of the cookie jar: about a
    quarter of requests' own CPU per call (0.3 of 1.1 ms measured). The upstream's sessions set none of
    those (no params, auth, proxies or hooks of their own, trust_env off), so a call that passes only
    headers, a body, auth, a timeout, proxies and allow_redirects is prepared directly: the session's
    headers updated with the call's, the session's cookie jar, the session's hooks; then sent by
    `Session.send` as before. Any other call goes through `Session.request` unchanged.
    """

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: dict[str, str] | None = None,
        **other: Any,
    ) -> requests.Response:
        if other or self.trust_env or self.params or self.auth or self.proxies or self.cert:
            return super().request(
                method,
                url,
                headers=headers,
                json=json,
                data=data,
                auth=auth,
                timeout=timeout,
                allow_redirects=allow_redirects,
                proxies=proxies,
                **other,
            )
        merged = CaseInsensitiveDict(self.headers)
        for name, value in (headers or {}).items():
            if value is None:  # requests' rule: None removes a session header
                merged.pop(name, None)
            else:
                merged[name] = value
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=method.upper(),
            url=url,
            headers=merged,
            data=data or {},
            json=json,
            auth=auth,
            cookies=self.cookies,
            hooks=self.hooks,
        )
        return self.send(
            prepared,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies or {},
            stream=self.stream,
            verify=self.verify,
            cert=self.cert,
        )


def _build_session(max_retries: int, pool_size: int = THREAD_POOL_SIZE) -> requests.Session:
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
    session = LeanSession()
    # Not per request: requests would otherwise scan os.environ for proxy settings and look for ~/.netrc
    # on every call (a tenth of the request's CPU). Proxies from the environment are read once per URL.
    session.trust_env = False
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@functools.lru_cache(maxsize=16)
def proxies_for(url: str) -> dict[str, str]:
    """The environment's proxies (HTTPS_PROXY, NO_PROXY …) for this URL, read once."""
    return requests.utils.get_environ_proxies(url)


def get_session(max_retries: int) -> requests.Session:
    """This thread's pooled session for the given retry budget (under gevent: the OS thread's)."""
    os_thread = _os_thread_ident()
    if os_thread is not None:
        key = (os_thread(), max_retries)
        shared = _greenlet_sessions.get(key)
        if shared is None:
            shared = _greenlet_sessions[key] = _build_session(max_retries, GREENLET_POOL_SIZE)
        return shared
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
    os_thread = _os_thread_ident()
    if os_thread is not None:
        for key in [key for key in _greenlet_sessions if key[0] == os_thread()]:
            _greenlet_sessions.pop(key).close()
