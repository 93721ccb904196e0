"""A local stand-in for OpenAI's Realtime ephemeral-token endpoints and realtime WebSocket.

It is a real HTTP server on loopback (aiohttp, on its own event loop in a daemon thread) that serves the three
upstream token shapes the app can talk to, validates request bodies strictly like the live API, answers with
``ek_…`` keys, records what it received and misbehaves on command (see ``behaviours``). On the same host
and port it serves the realtime WebSocket (``{BASE_URL}/realtime?intent=transcription``) that a browser or
an SDK opens with those keys, and transcribes the audio with an offline speech engine (``realtime``,
``speech``)::

    with OpenAIStandIn() as standin:
        standin.enqueue(RateLimit(retry_after=3))
        ...  # point RT_SESSIONS["BASE_URL"] at standin.base_url, API_KEY at standin.api_key

It never logs request bodies or keys; the per-request access log is off unless ``log_requests=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from . import extras, validation
from .behaviours import (
    SOCKET_BEHAVIOUR_TYPES,
    Behaviour,
    Delay,
    Error,
    Expired,
    Garbage,
    Hang,
    RateLimit,
    Reset,
)
from .realtime import ga_session_from_beta, serve_realtime
from .speech import SpeechEngine, engine_for
from .state import RealtimeConnection, StandInState
from .wire import CORS_HEADERS, abort_connection, error_response, json_response, session_id

__all__ = ["DEFAULT_API_KEY", "OpenAIStandIn", "RealtimeConnection", "RecordedRequest"]

DEFAULT_API_KEY = "sk-standin-test-key"  # a well-known fake key, accepted by default

ROUTES: dict[str, str] = {
    "/v1/realtime/client_secrets": "openai",
    "/v1/realtime/transcription_sessions": "openai-beta",
    "/openai/v1/realtime/client_secrets": "azure",
}
# The realtime WebSocket, below each BASE_URL (`connect.websocket_url` is "{BASE_URL}/realtime?…").
REALTIME_PATHS = frozenset({"/v1/realtime", "/openai/v1/realtime"})
# WebRTC calls (`connect.webrtc_url` is "{BASE_URL}/realtime/calls").
WEBRTC_PATHS = frozenset({"/v1/realtime/calls", "/openai/v1/realtime/calls"})

DEFAULT_FORMAT = {"type": "audio/pcm", "rate": 24000}
DEFAULT_TURN_DETECTION = validation.DEFAULT_TURN_DETECTION
GA_DEFAULT_TTL = 600
BETA_TTL = 60
MAX_BODY = 1024 * 1024
LISTEN_BACKLOG = 1024  # the usual 128 is too small for a burst of a few hundred concurrent clients

BETA_DISABLED_MESSAGE = (
    "The Realtime beta API shape is disabled; use POST /v1/realtime/client_secrets with "
    'session.type="transcription".'
)

_AUTO = "auto"
logger = logging.getLogger("django_rt_sessions.testing")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it (header names lower-cased).

    ``shape`` is "openai", "openai-beta", "azure", "realtime" (the WebSocket's upgrade request), "webrtc" (a
    WebRTC call's SDP offer, or its CORS preflight) or "unknown".
    """

    method: str
    path: str
    # Kept out of repr so a failing assertion does not print the Authorization header or the body.
    headers: dict[str, str] = field(repr=False)
    json: Any = field(repr=False)
    body: bytes = field(repr=False)
    shape: str


class _Released(Exception):
    """A hanging request's wait is over: drop its connection."""


class OpenAIStandIn:
    """A loopback server that imitates OpenAI's (and Azure's) Realtime token endpoints and realtime socket.

    ``speech``: the engine that transcribes realtime audio: "whisper" (the ``standin-speech`` extra),
    "pocketsphinx" (``standin-speech-lite``), "auto" (the default: Whisper when installed, else PocketSphinx;
    the ``RT_STANDIN_SPEECH`` environment variable may name one, or "none"), None (transcription off) or a
    ``SpeechEngine``. Without an engine the stand-in still serves everything, and realtime sessions get an
    ``error`` event saying why (``speech_problem``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        beta_disabled: bool = False,
        *,
        log_requests: bool = False,
        speech: SpeechEngine | str | None = _AUTO,
    ) -> None:
        self.host = host
        self.port = port
        self.beta_disabled = beta_disabled
        self._initial_beta_disabled = beta_disabled
        self._log_requests = log_requests
        self._requests_lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        engine, problem = engine_for(speech)
        self.state = StandInState(api_key=api_key, speech_engine=engine, speech_problem=problem)

    @property
    def api_key(self) -> str:
        """The one API key the stand-in accepts."""
        return self.state.api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        self.state.api_key = value

    @property
    def speech_engine(self) -> SpeechEngine | None:
        """The engine that transcribes realtime audio, or None (``speech_problem`` says why)."""
        return self.state.speech_engine

    @property
    def speech_problem(self) -> str | None:
        return self.state.speech_problem

    @property
    def issued(self) -> list[str]:
        """The ephemeral keys handed out, in order."""
        return self.state.keys.issued

    @property
    def realtime(self) -> list[RealtimeConnection]:
        """The realtime connections accepted (WebSocket and WebRTC calls), in order."""
        return self.state.connections.records

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> OpenAIStandIn:
        """Bind and serve in a daemon thread; returns self."""
        if self._runner is not None:
            return self
        # Build both validators now: a broken schema fails here, and the first request is not slow.
        validation.schema_validator(validation.GA_REQUEST)
        validation.schema_validator(validation.BETA_REQUEST)
        self.state.behaviours.fresh_release()
        loop = asyncio.new_event_loop()
        started: dict[str, Any] = {}
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                started["runner"] = loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start()'s caller
                started["error"] = exc
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="openai-standin", daemon=True)
        thread.start()
        ready.wait()
        if "error" in started:
            thread.join(timeout=5)
            raise started["error"]
        self._loop, self._thread, self._runner = loop, thread, started["runner"]
        return self

    async def _serve(self) -> web.AppRunner:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app,
            access_log=logger if self._log_requests else None,
            access_log_format='%a "%r" %s %b',
            handle_signals=False,
            # stop() releases hanging requests and closes the sockets first, so handlers end at once.
            shutdown_timeout=2,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=LISTEN_BACKLOG)
        await site.start()
        self.port = runner.addresses[0][1]
        return runner

    def stop(self) -> None:
        """Release hanging requests, close realtime sockets, stop serving and join the thread (idempotent)."""
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or runner is None:
            return
        self._set_release()

        async def shutdown() -> None:
            await self.state.connections.close_all()
            await runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        self._loop = self._runner = self._thread = None

    def __enter__(self) -> OpenAIStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        if self._runner is None:
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

    @property
    def webrtc_url(self) -> str:
        """The WebRTC endpoint (SDP offer in, answer out), as the app's ``connect.webrtc_url`` names it."""
        return self.base_url + "/realtime/calls"

    @property
    def realtime_url(self) -> str:
        """The realtime WebSocket, as the app's ``connect.websocket_url`` names it."""
        return "ws" + self.base_url[len("http") :] + "/realtime?intent=transcription"

    # ------------------------------------------------------------------------------------------ control

    def reset(self) -> None:
        """Forget requests, keys, connections, behaviours; restore beta_disabled; release waiting requests."""
        with self._requests_lock:
            self.requests.clear()
        self.state.keys.clear()
        self.state.connections.clear()
        self.state.behaviours.clear()
        self.beta_disabled = self._initial_beta_disabled
        self._set_release()

    def _set_release(self) -> None:
        self.state.behaviours.release(self._loop)

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Each following request (socket behaviours: realtime connection) consumes one, in order."""
        self.state.behaviours.enqueue(*behaviours)

    def always(self, behaviour: Behaviour | None) -> None:
        """Apply ``behaviour`` to every request or connection (after the queue) until reset(); None clears."""
        self.state.behaviours.always(behaviour)

    def expire(self, key: str | None = None) -> None:
        """Make ``key`` (default: every key issued so far) expire now, as if its time had run out."""
        self.state.keys.expire(key)

    # -------------------------------------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._respond(request)
        if not response.prepared:
            response.headers["x-request-id"] = f"req_{secrets.token_hex(16)}"
            if (
                request.path in WEBRTC_PATHS
            ):  # a misbehaviour's answer too: the browser must be able to read it
                for name, value in CORS_HEADERS.items():
                    response.headers.setdefault(name, value)
        return response

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "The request body is too large.", "request_too_large")
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        path = request.path
        shape = ROUTES.get(path) or _SHAPES_BELOW_BASE_URL.get(path, "unknown")
        with self._requests_lock:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    json=parsed,
                    body=body,
                    shape=shape,
                )
            )

        if shape == "webrtc" and request.method == "OPTIONS":
            # A browser's CORS preflight: it takes no behaviour, which is meant for the call itself.
            return await self._serve_call(request)
        behaviour, release = self.state.behaviours.take()
        expired = isinstance(behaviour, Expired)
        if behaviour is not None and not expired:
            try:
                response = await self._misbehave(behaviour, release)
            except _Released:
                abort_connection(request)
                return web.Response(status=500)  # never sent: the connection is gone
            if response is not None:
                return response

        if shape == "realtime":
            return await serve_realtime(self.state, request)
        if shape == "webrtc":
            return await self._serve_call(request)
        if shape == "unknown":
            return error_response(404, f"Invalid URL ({request.method} {path})", "unknown_url")
        if request.method != "POST":
            response = error_response(
                405, f"Method {request.method} is not allowed on {path}.", "method_not_allowed"
            )
            response.headers["Allow"] = "POST"
            return response
        if shape == "openai-beta" and self.beta_disabled:
            return error_response(400, BETA_DISABLED_MESSAGE, "beta_api_shape_disabled")
        if not self._authorised(request, shape):
            return error_response(401, "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(parsed, dict):
            return error_response(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
                "was not valid JSON.)",
                "invalid_json",
            )
        problem = validation.validate_request(shape, parsed)
        if problem is not None:
            return error_response(400, problem.message, problem.code, param=problem.param)
        if shape == "openai-beta":
            payload = self._beta_success(parsed, expired=expired)
        else:
            payload = self._ga_success(parsed, expired=expired)
        return json_response(200, payload)

    async def _serve_call(self, request: web.Request) -> web.StreamResponse:
        try:
            from . import webrtc
        except ImportError as exc:
            return error_response(501, _webrtc_problem(exc), "webrtc_unavailable")
        return await webrtc.serve_call(self.state, request, _ice_address(self.host))

    async def _misbehave(self, behaviour: Behaviour, release: asyncio.Event) -> web.Response | None:
        """Apply a behaviour: a response to send instead, or None to carry on normally."""
        if isinstance(behaviour, Delay):
            await _wait(release, behaviour.seconds)
            return None
        if isinstance(behaviour, Error):
            response = error_response(
                behaviour.status, behaviour.message, behaviour.code, type=behaviour.type
            )
            for name, value in (behaviour.headers or {}).items():
                response.headers[name] = value
            return response
        if isinstance(behaviour, RateLimit):
            response = error_response(
                429,
                "Rate limit reached for requests. Please try again later.",
                "rate_limit_exceeded",
                type="requests",
            )
            response.headers["Retry-After"] = str(behaviour.retry_after)
            return response
        if isinstance(behaviour, Hang):
            await _wait(release, behaviour.max_seconds)
            raise _Released
        if isinstance(behaviour, Reset):
            raise _Released
        if isinstance(behaviour, Garbage):
            return web.Response(
                body=behaviour.body, status=behaviour.status, headers={"Content-Type": behaviour.content_type}
            )
        if isinstance(behaviour, SOCKET_BEHAVIOUR_TYPES):  # pragma: no cover - kept in their own queue
            return None
        raise TypeError(f"unknown behaviour: {behaviour!r}")  # pragma: no cover - enqueue() checks

    def _authorised(self, request: web.Request, shape: str) -> bool:
        # Azure takes only `api-key`; OpenAI only `Authorization: Bearer`. The other header does not count.
        if shape == "azure":
            presented = request.headers.get("api-key", "")
        else:
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                return False
        return self.is_api_key(presented.strip())

    def is_api_key(self, presented: str) -> bool:
        return self.state.is_api_key(presented)

    def claim_key(self, presented: str) -> tuple[str, dict[str, Any] | None]:
        """Check an ephemeral key as a realtime connection does: ("ok", its session) or (a refusal, None).

        A key opens one realtime session: it is "used" from then on.
        """
        return self.state.keys.claim(presented)

    def _new_secret(self, session: dict[str, Any], expires_at: int) -> str:
        return self.state.keys.issue(f"ek_{secrets.token_hex(16)}", session, expires_at)

    def _ga_success(self, body: dict[str, Any], *, expired: bool = False) -> dict[str, Any]:
        now = int(time.time())
        seconds = (body.get("expires_after") or {}).get("seconds", GA_DEFAULT_TTL)
        expires_at = now - 1 if expired else now + seconds
        session = body["session"]
        audio_input = (session.get("audio") or {}).get("input") or {}
        answered = {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id(),
            "expires_at": expires_at,
            "include": session.get("include"),
            "audio": {
                "input": {
                    "format": audio_input.get("format", dict(DEFAULT_FORMAT)),
                    "transcription": audio_input.get("transcription"),
                    "noise_reduction": audio_input.get("noise_reduction"),
                    "turn_detection": audio_input.get(
                        "turn_detection",
                        validation.default_turn_detection(_model(audio_input.get("transcription"))),
                    ),
                }
            },
        }
        return {
            "value": self._new_secret(answered, expires_at),
            "expires_at": expires_at,
            "session": answered,
        }

    def _beta_success(self, body: dict[str, Any], *, expired: bool = False) -> dict[str, Any]:
        now = int(time.time())
        expires_at = now - 1 if expired else now + BETA_TTL
        answered = {
            "id": session_id(),
            "object": "realtime.transcription_session",
            "expires_at": expires_at,
            "modalities": ["text"],
            "input_audio_format": body.get("input_audio_format", "pcm16"),
            "input_audio_transcription": body.get("input_audio_transcription"),
            "turn_detection": body.get(
                "turn_detection",
                validation.default_turn_detection(_model(body.get("input_audio_transcription"))),
            ),
            "input_audio_noise_reduction": body.get("input_audio_noise_reduction"),
            "include": body.get("include"),
        }
        secret = self._new_secret(ga_session_from_beta(answered), expires_at)
        return {**answered, "client_secret": {"value": secret, "expires_at": expires_at}}


async def _wait(release: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(release.wait(), max(0.0, seconds))


_SHAPES_BELOW_BASE_URL = {
    **dict.fromkeys(REALTIME_PATHS, "realtime"),
    **dict.fromkeys(WEBRTC_PATHS, "webrtc"),
}


def webrtc_unavailable() -> str | None:
    """Why the stand-in cannot answer WebRTC calls here (its extra is not installed), or None."""
    try:
        from . import webrtc  # noqa: F401 - imported to know
    except ImportError as exc:
        return _webrtc_problem(exc)
    return None


def _webrtc_problem(exc: ImportError) -> str:
    return (
        f"The stand-in's WebRTC endpoint needs aiortc (missing: {exc.name}): "
        f"{extras.install_hint(extras.WEBRTC)}. "
        "Its realtime WebSocket works without it."
    )


def _ice_address(host: str) -> str:
    """Where WebRTC peers gather their candidates: the stand-in's own address, or loopback when it listens
    on every address (or on a name)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "127.0.0.1"
    return "127.0.0.1" if address.is_unspecified else str(address)


def _model(transcription: Any) -> Any:
    return transcription.get("model") if isinstance(transcription, dict) else None
