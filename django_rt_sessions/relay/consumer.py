"""The relay's ASGI WebSocket: OpenAI's realtime protocol on the site's own socket (docs/relay.md).

At the upgrade: the Origin check and the ticket (single-use: one conditional UPDATE). After accepting: the
user's concurrency and minutes (an `error` event and close 1008 when refused), the session's row, the
upstream session with the server's credentials, then both directions until an end, after which the
upstream socket is closed on every path.

The hot path is one client frame: an append is recognised and counted without parsing (rules.py), checked
against the session's audio limit (one integer comparison: exact however fast the client streams) and
forwarded unchanged. The consumer is Channels' AsyncWebsocketConsumer driven by a plain receive() loop:
Channels' own dispatch makes a task and an asyncio.wait per message to listen to a channel layer as well,
and runs `close_old_connections` in the sync thread before each one (bench/relay_pieces.py measured both);
the relay needs neither per frame (staff's end arrives through the process's one listener, metering.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.views.decorators.debug import sensitive_variables

from ..errors import RELAY_EVENTS, RELAY_REFUSALS
from ..issuing.service import fingerprint, safety_identifier
from ..issuing.tickets import redeem
from ..models import RelaySession
from ..upstreams import get_config, get_upstream
from . import rules, sessions
from .metering import RelayProcess
from .origins import origin_allowed
from .upstream import UpstreamSocket, open_upstream

logger = logging.getLogger("django_rt_sessions.relay")

SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL = "openai-insecure-api-key."
COMPLETED = '"conversation.item.input_audio_transcription.completed"'
_ERROR_OPENINGS = ('{"type":"error"', '{"type": "error"')
Reason = RelaySession.EndReason

# Each end: the `error` event's code the client gets, and the close code.
ENDS: dict[str, tuple[str | None, int]] = {
    Reason.CLIENT_CLOSED: (None, 1000),
    Reason.SESSION_LIMIT: ("session_limit_reached", 1000),
    Reason.QUOTA_EXCEEDED: ("quota_exceeded", 1008),
    Reason.IDLE: ("idle_timeout", 1000),
    Reason.ENDED_BY_STAFF: ("session_ended", 1000),
    Reason.UPSTREAM_CLOSED: ("upstream_error", 1011),
    Reason.UPSTREAM_ERROR: ("upstream_error", 1011),
}
# Servers that let the app close only with 1000 and 3000-4999 (daphne: autobahn refuses the others and the
# client gets 1011): the private-use codes that stand for 1008 and 1011.
RESTRICTED_CODES = {1008: 4008, 1011: 4011}


class RelayConsumer(AsyncWebsocketConsumer):
    session_id = ""
    user_id: Any = None
    preset_id: Any = None
    upstream: UpstreamSocket | None = None
    pump: asyncio.Task[None] | None = None
    ended = False
    cleaned = False
    shares_quota = False  # several open sessions may draw on the same minutes: refreshed every 5 s

    # ------------------------------------------------------------------ the ASGI loop

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # AsyncConsumer.__call__ without a channel layer: a plain loop over receive() (see the module).
        self.scope, self.channel_layer, self.base_send = scope, None, send
        self.full_codes = "websocket.http.response" in (scope.get("extensions") or {})
        try:
            with contextlib.suppress(StopConsumer):
                while True:
                    message = await receive()
                    if message["type"] == "websocket.receive":
                        text = message.get("text")
                        if text is not None:
                            await self.receive_text(text)
                        else:
                            await self.receive_other(None)
                    else:
                        await self.dispatch(message)
        finally:
            if self.session_id and not self.ended:
                await asyncio.shield(self.end(Reason.CLIENT_CLOSED))

    # ------------------------------------------------------------------ the upgrade

    @sensitive_variables("ticket", "redeemed")
    async def connect(self) -> None:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self.scope["headers"]
        }
        offered = list(self.scope.get("subprotocols") or [])
        if not origin_allowed(headers.get("origin"), headers.get("host")):
            await self.refuse("origin_not_allowed")
            return
        ticket = _presented_ticket(headers, offered)
        try:
            redeemed = await database_sync_to_async(redeem)(ticket, fingerprint)
        except Exception as exc:  # the database is down
            logger.warning("The relay could not check a ticket (%s): refused with 503.", type(exc).__name__)
            await self.refuse("relay_unavailable")
            return
        if isinstance(redeemed, str):
            await self.refuse(redeemed)
            return
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await self.start(redeemed, headers)

    async def refuse(self, code: str) -> None:
        """An HTTP 4xx with OpenAI's error body where the server lets the app answer one, else its 403."""
        refusal = RELAY_REFUSALS[code]
        if self.full_codes:
            body = json.dumps(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": code,
                        "message": refusal.message,
                        "param": None,
                    }
                }
            ).encode()
            await self.base_send(
                {
                    "type": "websocket.http.response.start",
                    "status": refusal.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await self.base_send({"type": "websocket.http.response.body", "body": body})
        else:
            await self.close()

    async def start(self, ticket: Any, headers: dict[str, str]) -> None:
        """The session's row (or the refusal), the upstream session, then the forwarding."""
        process = RelayProcess.current()
        await process.start()
        client = self.scope.get("client") or (None, None)
        try:
            opened = await database_sync_to_async(sessions.open_session)(
                ticket,
                client_ip=client[0],
                user_agent=headers.get("user-agent", ""),
                relay_process=process.name,
                channel_name=process.channel_name,
            )
        except Exception as exc:
            logger.warning("The relay could not write a session's row (%s).", type(exc).__name__)
            await self.send_error("upstream_error", "The relay is unavailable right now; try again shortly.")
            await self.close(self.code(1011))
            return
        if isinstance(opened, str):
            preset = ticket.preset
            message = (
                f"You already have {preset.max_concurrent_sessions} open session(s) on this preset."
                if opened == "session_limit_reached"
                else f"Today's {preset.daily_audio_minutes:g} minutes of audio on this preset are used up."
            )
            await self.send_error(opened, message)
            await self.close(self.code(1008))
            return
        row, preset = opened.row, ticket.preset
        self.session_id, self.user_id, self.preset_id = row.pk, row.user_id, preset.pk
        self.session = ticket.session
        self.overridable = list(preset.overridable or [])
        self.bytes_per_second = rules.bytes_per_second(self.session)
        self.session_bytes = preset.max_session_seconds * self.bytes_per_second
        self.shares_quota = preset.daily_audio_minutes is not None and preset.max_concurrent_sessions > 1
        self.audio_bytes = 0
        self.set_quota(opened.audio_seconds_left)
        self.max_session_seconds = preset.max_session_seconds
        self.idle_timeout_seconds = preset.idle_timeout_seconds
        self.upstream_audio_seconds, self.upstream_tokens, self.turns = 0.0, 0, 0
        self.upstream_error_passed = False
        self.adapter = get_upstream()
        try:
            self.upstream = await open_upstream(
                self.adapter,
                get_config(),
                self.session,
                expires_after_seconds=preset.expires_after_seconds,
                safety_identifier=safety_identifier(ticket.user),
            )
        except Exception as exc:  # refused, unreachable, timed out, a failed mint: an upstream failure
            logger.warning("The relay could not open the upstream session (%s).", type(exc).__name__)
            await self.end(Reason.UPSTREAM_ERROR)
            return
        loop = asyncio.get_running_loop()
        self.started = self.idle_since = loop.time()
        self.idle_since_bytes = 0
        self.upstream_send = self.upstream.send
        process.add(self)
        self.pump = loop.create_task(self.upstream_to_client())

    # ------------------------------------------------------------------ client -> upstream

    async def receive_text(self, text: str) -> None:
        if len(text) > rules.MAX_FRAME_BYTES:  # characters <= bytes: the slow path checks the bytes
            await self.send_error("event_not_allowed", "The event is over 1 MiB: not forwarded.")
            return
        audio = rules.append_audio_bytes(text)
        if audio is not None:
            await self.forward_audio(text, audio)
            return
        await self.receive_other(text)

    async def forward_audio(self, text: str, audio: int) -> None:
        if self.upstream is None or self.ended:
            return
        total = self.audio_bytes + audio
        if total > self.limit_bytes:
            await self.end(self.limit_reason)
            return
        self.audio_bytes = total
        # try/except, not contextlib.suppress: no object made per frame on the hot path.
        try:  # noqa: SIM105
            await self.upstream_send(text)
        except Exception:  # noqa: S110 - the upstream is gone: its pump ends the session
            pass

    async def receive_other(self, text: str | None) -> None:
        if text is None:
            await self.send_error(
                "event_not_allowed",
                "Binary frames are not forwarded: send each event as JSON in a text frame.",
            )
            return
        if len(text) > rules.MAX_FRAME_BYTES // 4 and len(text.encode()) > rules.MAX_FRAME_BYTES:
            await self.send_error("event_not_allowed", "The event is over 1 MiB: not forwarded.")
            return
        event = rules.parse_event(text)
        if event is None:
            await self.send_error(
                "event_not_allowed", "Not one JSON object (or a key given twice): not forwarded."
            )
            return
        kind, event_id = event.get("type"), rules.event_id_of(event)
        if self.upstream is None or self.ended:
            return
        if kind == rules.APPEND:
            audio = rules.audio_bytes_of(event)
            if audio is None:
                await self.send_error("event_not_allowed", "The append's audio is not base64 text.", event_id)
                return
            await self.forward_audio(rules.append_frame(event), audio)
        elif kind in (rules.COMMIT, rules.CLEAR):
            await self._forward(rules.buffer_frame(event))
        elif kind in (rules.GA_UPDATE, rules.BETA_UPDATE):
            try:
                update = rules.check_update(event, self.session, self.overridable, self.adapter)
            except rules.Refused as refused:
                await self.send_error(refused.code, refused.message, event_id, param=refused.param)
                return
            self.session = update.session
            await self._forward(update.upstream_event)
        else:
            shown = kind if isinstance(kind, str) and len(kind) <= 64 else "this event"
            await self.send_error("event_not_allowed", f"The relay does not forward {shown}.", event_id)

    async def _forward(self, text: str) -> None:
        assert self.upstream is not None
        with contextlib.suppress(Exception):  # the upstream is gone: its pump ends the session
            await self.upstream_send(text)

    # ------------------------------------------------------------------ upstream -> client

    async def upstream_to_client(self) -> None:
        assert self.upstream is not None
        send = self.base_send
        with contextlib.suppress(Exception):  # a failed upstream: the end below says so
            async for text in self.upstream.texts():
                if text.startswith(_ERROR_OPENINGS):
                    self.upstream_error_passed = True
                elif COMPLETED in text:
                    self.count_usage(text)
                await send({"type": "websocket.send", "text": text})
        if not self.ended:
            closed = self.upstream.closed_cleanly
            await self.end(Reason.UPSTREAM_CLOSED if closed else Reason.UPSTREAM_ERROR)

    def count_usage(self, text: str) -> None:
        """A completed turn's `usage`, summed beside the relay's own count (docs/relay.md#metering)."""
        try:
            usage = json.loads(text).get("usage") or {}
        except (ValueError, AttributeError):
            return
        self.turns += 1
        if usage.get("type") == "duration":
            self.upstream_audio_seconds += float(usage.get("seconds") or 0)
        elif usage.get("type") == "tokens":
            self.upstream_tokens += int(usage.get("total_tokens") or 0)

    # ------------------------------------------------------------------ limits, clocks, counters

    def set_quota(self, seconds_left: float | None) -> None:
        """The session's audio limit: its own length, or the user's minutes left today if fewer."""
        if seconds_left is not None and seconds_left * self.bytes_per_second < self.session_bytes:
            self.limit_bytes = self.audio_bytes + int(seconds_left * self.bytes_per_second)
            self.limit_reason = Reason.QUOTA_EXCEEDED
        else:
            self.limit_bytes, self.limit_reason = self.session_bytes, Reason.SESSION_LIMIT

    def clock_check(self, now: float) -> str | None:
        """Called every second by the process's clock: the end this session has reached, if any."""
        if now - self.started >= self.max_session_seconds:
            return Reason.SESSION_LIMIT
        if self.audio_bytes != self.idle_since_bytes:
            self.idle_since_bytes, self.idle_since = self.audio_bytes, now
        elif now - self.idle_since >= self.idle_timeout_seconds:
            return Reason.IDLE
        return None

    def counters(self) -> tuple[float, float, int, int, str]:
        return (
            self.audio_bytes / self.bytes_per_second,
            self.upstream_audio_seconds,
            self.upstream_tokens,
            self.turns,
            self.session_id,
        )

    # ------------------------------------------------------------------ the end

    def code(self, code: int) -> int:
        return code if self.full_codes else RESTRICTED_CODES.get(code, code)

    async def send_error(
        self, code: str, message: str | None = None, event_id: str | None = None, *, param: str | None = None
    ) -> None:
        spec = RELAY_EVENTS[code]
        error = {
            "type": spec.type,
            "code": code,
            "message": message or spec.message,
            "param": param,
            "event_id": event_id,
        }
        with contextlib.suppress(Exception):
            await self.send(text_data=json.dumps({"type": "error", "error": error}))

    async def end(self, reason: str) -> None:
        """End the session: its `error` event and close (unless the client closed), the upstream socket
        closed, the row closed with its counters."""
        if self.ended:
            return
        self.ended = True
        RelayProcess.current().discard(self)
        code, close = ENDS[reason]
        if reason != Reason.CLIENT_CLOSED:
            upstream_said = (
                reason in (Reason.UPSTREAM_CLOSED, Reason.UPSTREAM_ERROR) and self.upstream_error_passed
            )
            if code is not None and not upstream_said:
                await self.send_error(code)
            with contextlib.suppress(Exception):
                await self.close(self.code(close))
        await self.cleanup(reason)

    async def cleanup(self, reason: str) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        if self.pump is not None and self.pump is not asyncio.current_task():
            self.pump.cancel()
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                await self.upstream.close()
        if self.session_id:
            audio, upstream_audio, tokens, turns, _ = self.counters()
            try:
                await database_sync_to_async(sessions.finish)(
                    self.session_id, reason, (audio, upstream_audio, tokens, turns)
                )
            except Exception as exc:  # the database is down: the sweep closes the row (relay_lost)
                logger.warning(
                    "The relay could not close session %s's row (%s).", self.session_id, type(exc).__name__
                )

    async def disconnect(self, code: int) -> None:
        if self.session_id:
            await self.end(Reason.CLIENT_CLOSED)


def _presented_ticket(headers: dict[str, str], offered: list[str]) -> str | None:
    """The ticket as an SDK sends a key (`Authorization: Bearer`) or a browser (the key subprotocol)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for protocol in offered:
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
    return None
