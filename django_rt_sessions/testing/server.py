"""A local stand-in for OpenAI's Realtime ephemeral-token endpoints (SPEC §7).

It is a real HTTP server on loopback (werkzeug's threaded dev server in a daemon thread) that serves the three
upstream shapes the app can talk to, validates request bodies strictly like the live API, answers with
``ek_…`` keys, records what it received and misbehaves on command (see ``behaviours``)::

    with OpenAIStandIn() as standin:
        standin.enqueue(RateLimit(retry_after=3))
        ...  # point RT_SESSIONS["BASE_URL"] at standin.base_url, API_KEY at standin.api_key

It never logs request bodies or keys; werkzeug's per-request access log is off unless ``log_requests=True``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import socket
import string
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import validation
from .behaviours import BEHAVIOUR_TYPES, Behaviour, Delay, Error, Garbage, Hang, RateLimit, Reset

__all__ = ["DEFAULT_API_KEY", "OpenAIStandIn", "RecordedRequest"]

DEFAULT_API_KEY = "sk-standin-test-key"  # a well-known fake key, accepted by default

ROUTES: dict[str, str] = {
    "/v1/realtime/client_secrets": "openai",
    "/v1/realtime/transcription_sessions": "openai-beta",
    "/openai/v1/realtime/client_secrets": "azure",
}

DEFAULT_FORMAT = {"type": "audio/pcm", "rate": 24000}
DEFAULT_TURN_DETECTION = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
GA_DEFAULT_TTL = 600
BETA_TTL = 60
MAX_BODY = 1024 * 1024
LISTEN_BACKLOG = 1024  # werkzeug's 128 is too small for a burst of a few hundred concurrent clients

BETA_DISABLED_MESSAGE = (
    "The Realtime beta API shape is disabled; use POST /v1/realtime/client_secrets with "
    'session.type="transcription".'
)

_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it (header names lower-cased)."""

    method: str
    path: str
    # Kept out of repr so a failing assertion does not print the Authorization header or the body.
    headers: dict[str, str] = field(repr=False)
    json: Any = field(repr=False)
    body: bytes = field(repr=False)
    shape: str


class _DropConnection(ConnectionError):
    """Raised by the app to leave without a response; werkzeug routes it to ``connection_dropped``."""


class _Handler(WSGIRequestHandler):
    server: BaseWSGIServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if getattr(self.server, "rt_log_requests", False):
            super().log_request(code, size)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        if isinstance(error, _DropConnection):
            self._abort()

    def _abort(self) -> None:
        # SO_LINGER 0 makes close() send RST at once. The fd only really closes once rfile (a makefile holding
        # a reference) is closed too; wfile is unbuffered and writes straight to the socket object.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()


def _json_response(status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    response = Response(json.dumps(payload), status=status, content_type="application/json")
    for name, value in headers:
        response.headers[name] = value
    return response


def _error(
    status: int,
    message: str,
    code: str | None,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
) -> Response:
    return _json_response(status, {"error": {"message": message, "type": type, "param": param, "code": code}})


class OpenAIStandIn:
    """A loopback HTTP server that imitates OpenAI's (and Azure's) Realtime ephemeral-token endpoints."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        beta_disabled: bool = False,
        *,
        log_requests: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.beta_disabled = beta_disabled
        self._initial_beta_disabled = beta_disabled
        self._log_requests = log_requests
        self.requests: list[RecordedRequest] = []
        self.issued: list[str] = []
        self._lock = threading.Lock()
        self._queue: deque[Behaviour] = deque()
        self._always: Behaviour | None = None
        # Hanging/delayed requests wait on the event current at their arrival; reset()/stop() set it.
        self._release = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> OpenAIStandIn:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        # Build both validators now: a broken schema fails here, and the first request is not slow.
        validation.schema_validator(validation.GA_REQUEST)
        validation.schema_validator(validation.BETA_REQUEST)
        with self._lock:
            if self._release.is_set():
                self._release = threading.Event()
        server = make_server(self.host, self.port, self._wsgi, threaded=True, request_handler=_Handler)
        server.socket.listen(LISTEN_BACKLOG)  # re-listen only raises the backlog
        server.rt_log_requests = self._log_requests  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="openai-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving and join the thread (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        with self._lock:
            self._release.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> OpenAIStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("OpenAIStandIn is not started; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """BASE_URL for UPSTREAM "openai" and "openai-beta"."""
        return f"{self.url}/v1"

    @property
    def azure_base_url(self) -> str:
        """BASE_URL for UPSTREAM "azure"."""
        return f"{self.url}/openai/v1"

    # ------------------------------------------------------------------------------------------ control

    def reset(self) -> None:
        """Forget requests, issued keys and behaviours, restore beta_disabled, release hanging requests."""
        with self._lock:
            self.requests.clear()
            self.issued.clear()
            self._queue.clear()
            self._always = None
            self.beta_disabled = self._initial_beta_disabled
            released, self._release = self._release, threading.Event()
        released.set()

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Each following request consumes one behaviour, in order; then back to normal."""
        for behaviour in behaviours:
            _check_behaviour(behaviour)
        with self._lock:
            self._queue.extend(behaviours)

    def always(self, behaviour: Behaviour | None) -> None:
        """Apply ``behaviour`` to every request (after the queue is drained) until reset(); None clears."""
        if behaviour is not None:
            _check_behaviour(behaviour)
        with self._lock:
            self._always = behaviour

    def _take(self) -> tuple[Behaviour | None, threading.Event]:
        with self._lock:
            behaviour = self._queue.popleft() if self._queue else self._always
            return behaviour, self._release

    # -------------------------------------------------------------------------------------------- HTTP

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        response = self._handle(Request(environ))
        response.headers["x-request-id"] = f"req_{secrets.token_hex(16)}"
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        request.max_content_length = MAX_BODY
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            return _error(413, "The request body is too large.", "request_too_large")
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        shape = ROUTES.get(request.path, "unknown")
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    json=parsed,
                    body=body,
                    shape=shape,
                )
            )

        behaviour, release = self._take()
        if behaviour is not None:
            response = self._misbehave(behaviour, release)
            if response is not None:
                return response

        if shape == "unknown":
            return _error(404, f"Invalid URL ({request.method} {request.path})", "unknown_url")
        if request.method != "POST":
            response = _error(
                405, f"Method {request.method} is not allowed on {request.path}.", "method_not_allowed"
            )
            response.headers["Allow"] = "POST"
            return response
        if shape == "openai-beta" and self.beta_disabled:
            return _error(400, BETA_DISABLED_MESSAGE, "beta_api_shape_disabled")
        if not self._authorised(request, shape):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(parsed, dict):
            return _error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
                "was not valid JSON.)",
                "invalid_json",
            )
        problem = validation.validate_request(shape, parsed)
        if problem is not None:
            return _error(400, problem.message, problem.code, param=problem.param)
        payload = self._beta_success(parsed) if shape == "openai-beta" else self._ga_success(parsed)
        return _json_response(200, payload)

    def _misbehave(self, behaviour: Behaviour, release: threading.Event) -> Response | None:
        """Apply a behaviour: a response to send instead, or None to carry on normally."""
        if isinstance(behaviour, Delay):
            release.wait(max(0.0, behaviour.seconds))
            return None
        if isinstance(behaviour, Error):
            response = _error(behaviour.status, behaviour.message, behaviour.code, type=behaviour.type)
            for name, value in (behaviour.headers or {}).items():
                response.headers[name] = value
            return response
        if isinstance(behaviour, RateLimit):
            response = _error(
                429,
                "Rate limit reached for requests. Please try again later.",
                "rate_limit_exceeded",
                type="requests",
            )
            response.headers["Retry-After"] = str(behaviour.retry_after)
            return response
        if isinstance(behaviour, Hang):
            release.wait(max(0.0, behaviour.max_seconds))
            raise _DropConnection("hang released")
        if isinstance(behaviour, Reset):
            raise _DropConnection("reset")
        if isinstance(behaviour, Garbage):
            return Response(behaviour.body, status=behaviour.status, content_type=behaviour.content_type)
        raise TypeError(f"unknown behaviour: {behaviour!r}")  # pragma: no cover - enqueue() checks

    def _authorised(self, request: Request, shape: str) -> bool:
        # Azure takes only `api-key`; OpenAI only `Authorization: Bearer`. The other header does not count.
        if shape == "azure":
            presented = request.headers.get("api-key", "")
        else:
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                return False
        return hmac.compare_digest(presented.strip().encode(), self.api_key.encode())

    def _new_secret(self) -> str:
        value = f"ek_{secrets.token_hex(16)}"
        with self._lock:
            self.issued.append(value)
        return value

    def _ga_success(self, body: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        seconds = (body.get("expires_after") or {}).get("seconds", GA_DEFAULT_TTL)
        expires_at = now + seconds
        session = body["session"]
        audio_input = (session.get("audio") or {}).get("input") or {}
        return {
            "value": self._new_secret(),
            "expires_at": expires_at,
            "session": {
                "type": "transcription",
                "object": "realtime.transcription_session",
                "id": _session_id(),
                "expires_at": expires_at,
                "include": session.get("include"),
                "audio": {
                    "input": {
                        "format": audio_input.get("format", dict(DEFAULT_FORMAT)),
                        "transcription": audio_input.get("transcription"),
                        "noise_reduction": audio_input.get("noise_reduction"),
                        "turn_detection": audio_input.get("turn_detection", dict(DEFAULT_TURN_DETECTION)),
                    }
                },
            },
        }

    def _beta_success(self, body: dict[str, Any]) -> dict[str, Any]:
        expires_at = int(time.time()) + BETA_TTL
        return {
            "id": _session_id(),
            "object": "realtime.transcription_session",
            "expires_at": expires_at,
            "client_secret": {"value": self._new_secret(), "expires_at": expires_at},
            "modalities": ["text"],
            "input_audio_format": body.get("input_audio_format", "pcm16"),
            "input_audio_transcription": body.get("input_audio_transcription"),
            "turn_detection": body.get("turn_detection", dict(DEFAULT_TURN_DETECTION)),
            "input_audio_noise_reduction": body.get("input_audio_noise_reduction"),
            "include": body.get("include"),
        }


def _session_id() -> str:
    return "sess_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def _check_behaviour(behaviour: Any) -> None:
    if not isinstance(behaviour, BEHAVIOUR_TYPES):
        raise TypeError(f"not a stand-in behaviour: {behaviour!r}")
