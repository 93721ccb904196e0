"""Ways the OpenAI stand-in can misbehave on command.

Pass instances to :meth:`OpenAIStandIn.enqueue` (one per following request) or
:meth:`OpenAIStandIn.always` (every request until ``reset()``). HTTP behaviours apply to the next HTTP
request, the realtime WebSocket's upgrade request included; socket behaviours (:class:`DropSocket`,
:class:`SlowEvents`) apply to the next realtime connection the stand-in accepts. Stdlib only, so that
importing ``django_rt_sessions.testing`` stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Behaviour",
    "Delay",
    "DropSocket",
    "Error",
    "Expired",
    "Garbage",
    "Hang",
    "RateLimit",
    "Reset",
    "SlowEvents",
]


@dataclass(frozen=True)
class Delay:
    """Sleep ``seconds`` (cut short by ``stop()``/``reset()``), then answer normally."""

    seconds: float


@dataclass(frozen=True)
class Error:
    """Answer ``status`` with an OpenAI-style error body ``{"error": {...}}``."""

    status: int = 500
    code: str | None = "server_error"
    message: str = "The server had an error while processing your request."
    type: str = "server_error"
    headers: dict[str, str] | None = None

    def __hash__(self) -> int:
        # The generated hash would fail on the ``headers`` dict; behaviours are used as values, not keys.
        return hash((self.status, self.code, self.message, self.type))


@dataclass(frozen=True)
class RateLimit:
    """Answer 429 ``rate_limit_exceeded`` with a ``Retry-After`` header (seconds)."""

    retry_after: int = 7


@dataclass(frozen=True)
class Hang:
    """Hold the request unanswered until ``stop()``/``reset()`` or ``max_seconds``, then drop it."""

    max_seconds: float = 60


@dataclass(frozen=True)
class Reset:
    """Close the TCP connection abruptly (RST) without sending any response."""


@dataclass(frozen=True)
class Garbage:
    """Answer with a body a client cannot use (by default: HTML labelled as JSON)."""

    status: int = 200
    body: bytes = b"<html>not json</html>"
    content_type: str = "application/json"


@dataclass(frozen=True)
class Expired:
    """Answer a token request normally, but with a key that expired a second ago (a slow or skewed client).

    Other requests (an upgrade, an unknown path) carry on normally.
    """


@dataclass(frozen=True)
class DropSocket:
    """Realtime: after ``after_events`` server events, drop the connection (TCP RST, no close frame)."""

    after_events: int = 1


@dataclass(frozen=True)
class SlowEvents:
    """Realtime: hold each server event ``seconds`` before sending it (cut short by ``reset()``)."""

    seconds: float


HTTPBehaviour = Delay | Error | RateLimit | Hang | Reset | Garbage | Expired
SocketBehaviour = DropSocket | SlowEvents
Behaviour = HTTPBehaviour | SocketBehaviour

HTTP_BEHAVIOUR_TYPES: tuple[type[Any], ...] = (Delay, Error, RateLimit, Hang, Reset, Garbage, Expired)
SOCKET_BEHAVIOUR_TYPES: tuple[type[Any], ...] = (DropSocket, SlowEvents)
BEHAVIOUR_TYPES: tuple[type[Any], ...] = HTTP_BEHAVIOUR_TYPES + SOCKET_BEHAVIOUR_TYPES
