"""OpenAI's wire formats the stand-in's endpoints share: the error body, the ids, cutting a connection.

Every endpoint (the token endpoints, the realtime WebSocket, the WebRTC calls) answers errors with the same
body, ``{"error": {"message", "type", "param", "code"}}``, and names sessions, items, events and calls with
the same kind of ids, so they are written once, here.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import string
import struct
from collections.abc import Iterable
from typing import Any

from aiohttp import web

__all__ = [
    "CORS_HEADERS",
    "abort_connection",
    "call_id",
    "error_body",
    "error_response",
    "event_id",
    "item_id",
    "json_response",
    "random_id",
    "session_id",
]

_ALNUM = string.ascii_letters + string.digits

# On every answer of the WebRTC endpoint, which a browser calls from the site's page (another origin). No
# credentials cross (the key is a header), so any origin may call, as it may call OpenAI.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, x-request-id",
}


def random_id(prefix: str, length: int = 20) -> str:
    """``prefix`` and ``length`` random letters and digits, the shape of OpenAI's ids."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def session_id() -> str:
    return random_id("sess_", 24)


def event_id() -> str:
    return random_id("event_")


def item_id() -> str:
    return random_id("item_")


def call_id() -> str:
    """A WebRTC call's id, as in the ``Location`` of OpenAI's ``POST /v1/realtime/calls``."""
    return random_id("rtc_", 24)


def error_body(
    message: str, code: str | None, *, type: str = "invalid_request_error", param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def json_response(status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> web.Response:
    response = web.Response(
        body=json.dumps(payload).encode(), status=status, headers={"Content-Type": "application/json"}
    )
    for name, value in headers:
        response.headers[name] = value
    return response


def error_response(
    status: int,
    message: str,
    code: str | None,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
) -> web.Response:
    """An HTTP answer ``status`` with OpenAI's error body."""
    return json_response(status, error_body(message, code, type=type, param=param))


def abort_connection(request: web.BaseRequest) -> None:
    """Close the TCP connection at once with an RST (SO_LINGER 0), without a response or a close frame."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
