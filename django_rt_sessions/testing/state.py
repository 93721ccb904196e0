"""What the stand-in's endpoints share: the keys issued, the behaviours queued, the connections open.

The token endpoints issue keys; the realtime WebSocket and the WebRTC calls claim them. Behaviours queued by a
test are taken by whichever request or connection comes next. Every realtime connection (WebSocket or
WebRTC) is recorded for tests and registered while open, so that ``stop()`` can close it. Each part is
thread-safe: tests call in from their own thread while the stand-in serves on its event loop.

:class:`StandInState` hands these to the endpoints explicitly; none of them reaches into the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .behaviours import BEHAVIOUR_TYPES, SOCKET_BEHAVIOUR_TYPES, Behaviour

if TYPE_CHECKING:
    from .speech import SpeechEngine

__all__ = [
    "BehaviourQueues",
    "ConnectionRegistry",
    "KeyStore",
    "RealtimeConnection",
    "StandInState",
    "check_behaviour",
]


# ------------------------------------------------------------------------------------------------- keys


@dataclass
class _IssuedKey:
    session: dict[str, Any]  # the GA transcription session the key was minted with (beta bodies converted)
    expires_at: int
    used: bool = False


class KeyStore:
    """The ephemeral keys issued so far; a key opens one realtime session (WebSocket or WebRTC call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, _IssuedKey] = {}
        self.issued: list[str] = []  # in order, for tests

    def issue(self, value: str, session: dict[str, Any], expires_at: int) -> str:
        with self._lock:
            self.issued.append(value)
            self._keys[value] = _IssuedKey(session=session, expires_at=expires_at)
        return value

    def claim(self, presented: str) -> tuple[str, dict[str, Any] | None]:
        """("ok", a copy of the key's session), marking the key used, or (why not: "unknown", "expired",
        "used", None)."""
        with self._lock:
            issued = None
            for value, candidate in self._keys.items():
                # Compared in constant time, and against every key: the answer's timing says nothing.
                if hmac.compare_digest(presented.encode(), value.encode()):
                    issued = candidate
            if issued is None:
                return "unknown", None
            if issued.expires_at <= time.time():
                return "expired", None
            if issued.used:
                return "used", None
            issued.used = True
            return "ok", json.loads(json.dumps(issued.session))

    def expire(self, key: str | None = None) -> None:
        """Make ``key`` (default: every key issued so far) expire now."""
        now = int(time.time())
        with self._lock:
            for value, issued in self._keys.items():
                if key is None or value == key:
                    issued.expires_at = min(issued.expires_at, now - 1)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self.issued.clear()


# ------------------------------------------------------------------------------------------- behaviours


def check_behaviour(behaviour: Any) -> None:
    if not isinstance(behaviour, BEHAVIOUR_TYPES):
        raise TypeError(f"not a stand-in behaviour: {behaviour!r}")


class BehaviourQueues:
    """Misbehaviours queued by tests: HTTP ones for the next requests, socket ones for the next realtime
    connections; and the event that releases whatever waits (``Hang``, ``Delay``, ``SlowEvents``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: deque[Behaviour] = deque()
        self._socket: deque[Behaviour] = deque()
        self._always_http: Behaviour | None = None
        self._always_socket: Behaviour | None = None
        # Waits started before a release() wait on the event current at their start; release() replaces it.
        self._release = asyncio.Event()

    @staticmethod
    def _is_socket(behaviour: Behaviour) -> bool:
        return isinstance(behaviour, SOCKET_BEHAVIOUR_TYPES)

    def enqueue(self, *behaviours: Behaviour) -> None:
        for behaviour in behaviours:
            check_behaviour(behaviour)
        with self._lock:
            for behaviour in behaviours:
                (self._socket if self._is_socket(behaviour) else self._http).append(behaviour)

    def always(self, behaviour: Behaviour | None) -> None:
        if behaviour is not None:
            check_behaviour(behaviour)
        with self._lock:
            if behaviour is None:
                self._always_http = self._always_socket = None
            elif self._is_socket(behaviour):
                self._always_socket = behaviour
            else:
                self._always_http = behaviour

    def take(self, *, socket: bool = False) -> tuple[Behaviour | None, asyncio.Event]:
        """The next behaviour for a request (``socket``: for a realtime connection), and its release event."""
        with self._lock:
            queue = self._socket if socket else self._http
            fallback = self._always_socket if socket else self._always_http
            behaviour = queue.popleft() if queue else fallback
            return behaviour, self._release

    def release(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """End every wait in progress (on ``loop``, the stand-in's, when it runs)."""
        with self._lock:
            released, self._release = self._release, asyncio.Event()
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(released.set)
        else:
            released.set()

    def fresh_release(self) -> None:
        """A new, unset release event (before serving again after a stop)."""
        with self._lock:
            if self._release.is_set():
                self._release = asyncio.Event()

    def clear(self) -> None:
        with self._lock:
            self._http.clear()
            self._socket.clear()
            self._always_http = self._always_socket = None


# ------------------------------------------------------------------------------------------ connections


@dataclass
class RealtimeConnection:
    """One realtime connection the stand-in accepted, as recorded for tests.

    ``transport`` is "websocket" or "webrtc" (``call_id`` is then the call's ``rtc_…`` id). ``received``
    holds the client events (an append's audio replaced by its size in ``audio_bytes``; WebRTC audio arrives
    on the media track instead, counted in ``audio_bytes_received`` as 24 kHz PCM16), ``sent`` the server
    events; ``closed`` is set once the connection is over, ``close_code`` then holds the WebSocket close
    code (None when the connection was dropped, and for WebRTC).
    """

    path: str
    credential: str  # "ephemeral_key" or "api_key"
    subprotocol: str | None
    session: dict[str, Any]
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    closed: threading.Event = field(default_factory=threading.Event, repr=False)
    transport: str = "websocket"
    call_id: str | None = None
    audio_bytes_received: int = 0

    def sent_types(self) -> list[str]:
        return [event["type"] for event in self.sent]

    def wait_closed(self, timeout: float = 10) -> bool:
        return self.closed.wait(timeout)


class ConnectionRegistry:
    """Every realtime connection accepted (``records``, for tests) and how to close those still open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[RealtimeConnection] = []
        self._open: dict[int, Callable[[], Awaitable[object]]] = {}
        self._next = 0

    def opened(
        self, record: RealtimeConnection, close: Callable[[], Awaitable[object]]
    ) -> Callable[[], None]:
        """Record a connection and register its ``close``; returns what to call once it is over."""
        with self._lock:
            self.records.append(record)
            self._next += 1
            handle = self._next
            self._open[handle] = close

        def closed() -> None:
            with self._lock:
                self._open.pop(handle, None)

        return closed

    async def close_all(self) -> None:
        """Close every open connection (on the stand-in's loop)."""
        with self._lock:
            closers = list(self._open.values())
        for close in closers:
            with contextlib.suppress(Exception):
                await close()

    def clear(self) -> None:
        """Forget the records (open connections stay registered until they end)."""
        with self._lock:
            self.records.clear()


# ------------------------------------------------------------------------------------------------ state


@dataclass
class StandInState:
    """What the realtime endpoints take from the stand-in."""

    api_key: str
    speech_engine: SpeechEngine | None
    speech_problem: str | None
    keys: KeyStore = field(default_factory=KeyStore)
    behaviours: BehaviourQueues = field(default_factory=BehaviourQueues)
    connections: ConnectionRegistry = field(default_factory=ConnectionRegistry)

    def is_api_key(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.api_key.encode())
