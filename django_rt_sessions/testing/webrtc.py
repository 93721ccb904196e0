"""The stand-in's WebRTC calls: OpenAI's ``POST {BASE_URL}/realtime/calls``, answered by an aiortc peer.

The browser (or any WebRTC client) posts its SDP offer (``Content-Type: application/sdp``) with the ephemeral
key as ``Authorization: Bearer ek_…``; the stand-in answers ``201`` with its SDP answer and ``Location:
…/realtime/calls/rtc_…``. The key is claimed like at the realtime WebSocket: an unknown, forged or expired key
is refused with 401, a used one with 403, each with OpenAI's error body. Browsers on another origin get CORS
answers (the preflight allows ``Authorization`` and ``Content-Type``; ``Location`` is exposed).

The peer is aiortc: the client's Opus track is decoded by aiortc, resampled to 24 kHz mono PCM16 by PyAV's
``AudioResampler``, and fed to the same :class:`~.realtime.RealtimeSession` as the WebSocket's audio (server
VAD, or the client's commits); the server events go out on the ``oai-events`` data channel the client
opens, and client events (``session.update``, ``input_audio_buffer.commit``, ``input_audio_buffer.clear``)
come in on it. The call ends when the peer connection closes, the data channel closes, or the stand-in
stops.

ICE stays where the stand-in serves: no STUN or TURN server, host candidates on the stand-in's own address
only (127.0.0.1 by default), and, on loopback, connectivity checks answered only from loopback addresses
(the client's candidates elsewhere, mDNS ``.local`` names included, are ignored; a browser that sends its
offer before gathering, as OpenAI's clients do, is learnt from its checks). A browser therefore reaches the
stand-in's peer only where it uses loopback for WebRTC: docs/testing.md says what that takes.

Needs aiortc (the ``standin-webrtc`` extra); the stand-in answers 501 without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import aioice.ice
import aiortc.rtcicetransport
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioResampler

from . import wire
from .realtime import (
    EventSender,
    RealtimeSession,
    claim_ephemeral_key,
    error_event,
    new_session,
    recorded_event,
)
from .speech import INPUT_RATE
from .state import RealtimeConnection, StandInState
from .wire import CORS_HEADERS, error_response

__all__ = [
    "EVENTS_CHANNEL",
    "loopback_ice",
    "pinned_ice",
    "serve_call",
]

logger = logging.getLogger("django_rt_sessions.testing")

EVENTS_CHANNEL = "oai-events"  # the data channel OpenAI's clients open for the events
SDP = "application/sdp"
MAX_OFFER = 64 * 1024
BATCH_MS = 100  # audio reaches the session in chunks this long (a WebSocket client's usual append)
BATCH_BYTES = INPUT_RATE * 2 * BATCH_MS // 1000
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


# ------------------------------------------------------------------------------------------------ ICE

# aioice gathers host candidates on every interface (loopback excepted) and answers checks from anywhere;
# it has no option to choose. A peer created under pinned_ice() uses only the addresses given, and answers
# only the addresses allowed. Outside pinned_ice() aioice behaves as it always does.
_PINNED: ContextVar[tuple[tuple[str, ...], bool] | None] = ContextVar("rt_standin_pinned_ice", default=None)
_aioice_host_addresses = aioice.ice.get_host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    pinned = _PINNED.get()
    if pinned is None:
        return _aioice_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return [a for a in pinned[0] if (use_ipv6 if ":" in a else use_ipv4)]


class _PinnedIceConnection(aioice.Connection):
    """aioice's ICE agent; one created under :func:`pinned_ice` ignores checks from other addresses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pinned = _PINNED.get()
        self._loopback_only = pinned is not None and pinned[1]

    def request_received(self, message: Any, addr: tuple[str, int], protocol: Any) -> None:
        # Dropped before aioice learns the sender as a peer-reflexive candidate and checks it back.
        if self._loopback_only and not _is_loopback(addr[0]):
            return
        super().request_received(message, addr, protocol)


aioice.ice.get_host_addresses = _host_addresses
aiortc.rtcicetransport.Connection = _PinnedIceConnection  # type: ignore[misc]


@contextlib.contextmanager
def pinned_ice(*addresses: str) -> Iterator[None]:
    """Peer connections created (and their candidates gathered) in this block use only ``addresses``; when
    those are loopback addresses, they also talk to loopback addresses only."""
    loopback_only = all(_is_loopback(a) for a in addresses)
    token = _PINNED.set((tuple(addresses), loopback_only))
    try:
        yield
    finally:
        _PINNED.reset(token)


def loopback_ice() -> contextlib.AbstractContextManager[None]:
    """:func:`pinned_ice` on 127.0.0.1: for a test's own aiortc client of the stand-in."""
    return pinned_ice("127.0.0.1")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name (an mDNS ".local" candidate, say)


def _candidates_only_from(sdp: str, loopback_only: bool) -> str:
    """The offer without the candidates the peer must not try (``a=candidate:… <address> <port> …``)."""
    if not loopback_only:
        return sdp
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) < 6 or not _is_loopback(fields[4]):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


# ------------------------------------------------------------------------------------------ the HTTP side


def _with_cors(response: web.Response) -> web.Response:
    response.headers.update(CORS_HEADERS)
    return response


def preflight(request: web.Request) -> web.Response:
    """The CORS preflight of a browser on another origin (the site's page calling the stand-in)."""
    response = web.Response(status=204, headers=PREFLIGHT_HEADERS)
    # Chrome's Private Network Access: a public page asking for a loopback address must be let in explicitly.
    if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        response.headers["Access-Control-Allow-Private-Network"] = "true"
    return response


def _offer_problem(request: web.Request, body: bytes) -> web.Response | None:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != SDP:
        return error_response(
            400,
            f"Post the SDP offer as the body with 'Content-Type: {SDP}' (got {content_type or 'none'!r}).",
            "invalid_content_type",
        )
    if len(body) > MAX_OFFER:
        return error_response(400, "The SDP offer is too large.", "invalid_offer")
    text = body.decode("utf-8", "replace")
    if not text.startswith("v=0") or "\nm=audio " not in text:
        return error_response(
            400, "The body is not an SDP offer with an audio track (m=audio).", "invalid_offer", param="sdp"
        )
    return None


def _bearer_key(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def serve_call(state: StandInState, request: web.Request, ice_address: str) -> web.StreamResponse:
    """``POST …/realtime/calls``: the checks, then the answer of a new peer whose call goes on after it."""
    if request.method == "OPTIONS":
        return preflight(request)
    if request.method != "POST":
        response = error_response(
            405, f"Method {request.method} is not allowed on {request.path}.", "method_not_allowed"
        )
        response.headers["Allow"] = "POST, OPTIONS"
        return _with_cors(response)
    body = await request.read()
    key = _bearer_key(request)
    if key is None:
        return _with_cors(
            error_response(
                401,
                "You didn't provide an API key. Give the ephemeral key as 'Authorization: Bearer ek_…'.",
                None,
            )
        )
    refusal = _offer_problem(request, body)
    if refusal is not None:
        return _with_cors(refusal)
    if state.is_api_key(key):
        return _with_cors(
            error_response(
                401,
                "This stand-in's WebRTC calls take an ephemeral key (ek_…) from "
                "POST …/realtime/client_secrets, not the API key.",
                "invalid_api_key",
            )
        )
    claimed = claim_ephemeral_key(state, key)
    if isinstance(claimed, web.Response):
        return _with_cors(claimed)
    call = Call(state, request.path, claimed, ice_address)
    try:
        answer = await call.answer(body.decode("utf-8", "replace"))
    except Exception as exc:  # aiortc refuses offers it cannot answer with ValueError and friends
        await call.close()
        logger.info("WebRTC offer refused: %s", exc)
        return _with_cors(
            error_response(400, f"The SDP offer could not be answered: {exc}", "invalid_offer", param="sdp")
        )
    response = web.Response(status=201, body=answer.encode(), headers={"Content-Type": SDP})
    response.headers["Location"] = f"{request.path}/{call.id}"
    return _with_cors(response)


# ------------------------------------------------------------------------------------------------ a call


class Call:
    """One WebRTC call: the peer connection, its realtime session, and the tasks that feed it."""

    def __init__(self, state: StandInState, path: str, session: dict[str, Any], ice_address: str) -> None:
        self.id = wire.call_id()
        self._state = state
        self._ice_address = ice_address
        self._session: RealtimeSession = new_session(state, session)
        self.record = RealtimeConnection(
            path=path,
            credential="ephemeral_key",
            subprotocol=None,
            session=json.loads(json.dumps(self._session.session)),
            transport="webrtc",
            call_id=self.id,
        )
        behaviour, release = state.behaviours.take(socket=True)
        self._channel: Any = None
        self._channel_open = asyncio.Event()
        self._sender = EventSender(
            self.record,
            behaviour,
            release,
            transmit=self._transmit,
            drop=self._drop,
            is_closed=lambda: self._closing,
        )
        # Audio and client events, in arrival order, for the one task that runs the session.
        self._inbox: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session_task: asyncio.Task[Any] | None = None
        self._closing = False
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: nothing leaves this machine
        self._pc.on("track", self._on_track)
        self._pc.on("datachannel", self._on_datachannel)
        self._pc.on("connectionstatechange", self._on_connection_state)
        self._unregister = state.connections.opened(self.record, self.close)

    async def answer(self, offer: str) -> str:
        """Apply the client's offer and return the peer's answer (its candidates gathered, on loopback)."""
        with pinned_ice(self._ice_address):
            loopback_only = _is_loopback(self._ice_address)
            await self._pc.setRemoteDescription(
                RTCSessionDescription(sdp=_candidates_only_from(offer, loopback_only), type="offer")
            )
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        self._session_task = self._spawn(self._run_session())
        return str(self._pc.localDescription.sdp)

    def _drop(self) -> None:
        """``DropSocket``: end the call without a word."""
        self._spawn(self.close())

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --------------------------------------------------------------------------------------- events in

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._read_audio(track))

    def _on_datachannel(self, channel: Any) -> None:
        if channel.label != EVENTS_CHANNEL or self._channel is not None:
            return
        self._channel = channel

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            self._inbox.put_nowait(("event", message))

        @channel.on("close")
        def on_close() -> None:
            self._spawn(self.close())

        if channel.readyState == "open":
            self._channel_open.set()
        else:
            channel.on("open", self._channel_open.set)

    def _on_connection_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._spawn(self.close())

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        """The client's audio (Opus, decoded by aiortc) as 24 kHz mono PCM16, in chunks of BATCH_MS."""
        resampler = AudioResampler(format="s16", layout="mono", rate=INPUT_RATE)
        pending = b""
        try:
            while True:
                frame = await track.recv()
                for resampled in resampler.resample(frame):  # type: ignore[arg-type]
                    pending += resampled.to_ndarray().tobytes()
                if len(pending) >= BATCH_BYTES:
                    self._inbox.put_nowait(("audio", pending))
                    pending = b""
        except MediaStreamError:
            pass  # the track ended: the call is over

    # ------------------------------------------------------------------------------------- the session

    async def _transmit(self, text: str) -> None:
        await self._channel_open.wait()
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(text)

    async def _run_session(self) -> None:
        """The session's opening events, then its events for each input in turn, until the call ends."""
        loop = asyncio.get_running_loop()
        session = self._session
        sender = self._sender
        sender.drop_before_any_event()
        await sender.send_all(session.opening_events())
        if session.has_engine:
            await loop.run_in_executor(None, session.prepare)
        while not sender.dropped:
            item = await self._inbox.get()
            if item is None:
                return
            kind, payload = item
            if kind == "audio":
                self.record.audio_bytes_received += len(payload)
                if not session.has_engine:
                    continue  # said once at the start
                events = await loop.run_in_executor(None, session.feed_audio, payload)
            elif isinstance(payload, str):
                self.record.received.append(recorded_event(payload))
                events = await loop.run_in_executor(None, session.handle, payload)
            else:
                events = [error_event("Send each client event as JSON text on the data channel.")]
            await sender.send_all(events)

    async def close(self) -> None:
        """End the call (idempotent): close the peer, stop the session, record it closed."""
        if self._closing:
            return
        self._closing = True
        self._inbox.put_nowait(None)
        self._channel_open.set()  # an event waiting for the channel is not sent
        current = asyncio.current_task()
        with contextlib.suppress(Exception):
            await self._pc.close()
        for task in list(self._tasks):
            if task not in (current, self._session_task):
                task.cancel()
        session_task = self._session_task
        if session_task is not None and session_task is not current:
            # The session's recognizer may be busy in a worker thread: let that call end before closing it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(session_task), 10)
        self._unregister()
        await asyncio.get_running_loop().run_in_executor(None, self._session.close)
        self.record.closed.set()
