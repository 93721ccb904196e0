"""The relay benchmark's consumer: Channels' AsyncWebsocketConsumer with the relay's per-frame work.

Per session, at connect: a session row (async ORM), one upstream socket with the server's key and the
planned `session.update`, the `realtime` subprotocol accepted, a task forwarding upstream → client. Per
client frame: an append is recognised and its audio counted without parsing (frames.py), checked against
the session's audio limit (one integer comparison: exact however fast the client streams) and forwarded
unchanged; anything else is parsed, checked against the allowed types and forwarded or answered with an
`error` event. Beside it, one ticker per process (not a timer per session): every second it ends
sessions that went idle or reached their wall-clock limit and those staff asked to end (one query), and
every 5 s it saves the counters that changed (one executemany, off the event loop).

Knobs, environment variables read once when the process starts (bench/relay.py sets them per
configuration; the defaults are the design the measurements favour, each alternative one knob away):

  RT_BENCH_RELAY_DISPATCH  loop      frames go straight to receive() (below), and Channels' __call__ is
                                     a plain receive() loop: without a channel layer, Channels'
                                     await_many_dispatch makes a task and an asyncio.wait per message
                           direct    frames go straight to receive(): Channels' dispatch() runs
                                     `close_old_connections` in the sync thread before every message
                                     (a thread hop per frame, all sessions queued on one thread); the
                                     relay touches the database only in the ticker, which uses
                                     database_sync_to_async (that closes old connections itself)
                           channels  Channels' own __call__ and dispatch() for every message
  RT_BENCH_RELAY_LAYER     none      no channel layer (staff's end reaches the session through the ticker)
                           redis     channels-redis: each consumer in a group of its own (Channels then
                                     waits on the socket and the layer for every message)
  RT_BENCH_RELAY_UPSTREAM  websockets | aiohttp   the upstream client
  RT_BENCH_RELAY_PARSE     prefix    frames.append_audio_bytes, json only for other events
                           json      json.loads of every frame (and its audio counted from the dict)
  RT_BENCH_RELAY_TIMERS    shared    one ticker per process
                           session   a task per session waking every second, saving its own row every 5 s
                           frame     an idle timer per session re-armed on every frame (call_later)
  RT_BENCH_RELAY_SAVE      many      the ticker saves the changed counters with one executemany of plain
                                     UPDATEs (psycopg pipelines them)
                           bulk      with Django's bulk_update (one UPDATE with a CASE per column): its
                                     SQL is built in Python, holding the GIL for tens of ms every 5 s
                                     at 300 sessions, and the event loop stalls (a p99 of 50-85 ms)
                           none      not at all (to see what saving costs)
  (RT_BENCH_RELAY_GC       tuned: gc.freeze() after start-up and thresholds 50000,20,100, as
                           example_project/gunicorn.conf.py does; default: Python's; read in asgi.py)
  RT_BENCH_RELAY_UPSTREAM_URL  the upstream's ws:// base (the sink: bench/relay_sink.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import connection

from bench.channels_relay.frames import APPEND, append_audio_bytes, audio_bytes_of, parse_event
from bench.channels_relay.models import BenchRelaySession

DISPATCH = os.environ.get("RT_BENCH_RELAY_DISPATCH", "loop")
LAYER = os.environ.get("RT_BENCH_RELAY_LAYER", "none")
UPSTREAM = os.environ.get("RT_BENCH_RELAY_UPSTREAM", "websockets")
PARSE = os.environ.get("RT_BENCH_RELAY_PARSE", "prefix")
TIMERS = os.environ.get("RT_BENCH_RELAY_TIMERS", "shared")
SAVE = os.environ.get("RT_BENCH_RELAY_SAVE", "many")
UPSTREAM_URL = os.environ.get("RT_BENCH_RELAY_UPSTREAM_URL", "ws://127.0.0.1:8791").rstrip("/")

API_KEY = "sk-bench-not-a-real-key"
MAX_MESSAGE = 16 * 1024 * 1024
FORWARDED = frozenset({APPEND, "input_audio_buffer.commit", "input_audio_buffer.clear"})
BYTES_PER_SECOND = 48_000  # PCM16 24 kHz mono
MAX_SESSION_SECONDS = 900
IDLE_TIMEOUT_SECONDS = 60
TICK_SECONDS = 1.0
SAVE_EVERY_TICKS = 5
PLANNED_SESSION = json.dumps(
    {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                    "turn_detection": {"type": "server_vad"},
                }
            },
        },
    }
)


# ----------------------------------------------------------------------------------------- upstream


class Upstream:
    """One upstream socket: send text, iterate the text it sends, close."""

    async def send(self, text: str) -> None:
        raise NotImplementedError

    def texts(self) -> AsyncIterator[str]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class WebsocketsUpstream(Upstream):
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.send = connection.send  # type: ignore[method-assign] - one attribute lookup less per frame

    @classmethod
    async def open(cls, url: str) -> WebsocketsUpstream:
        from websockets.asyncio.client import connect

        connection = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {API_KEY}"},
            compression=None,  # base64 audio gains little; zlib would cost CPU on every frame
            max_size=MAX_MESSAGE,
            open_timeout=10,
        )
        return cls(connection)

    async def texts(self) -> AsyncIterator[str]:
        async for message in self.connection:
            if isinstance(message, str):
                yield message

    async def close(self) -> None:
        await self.connection.close()


class AiohttpUpstream(Upstream):
    _session: Any = None

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.send = ws.send_str  # type: ignore[method-assign]

    @classmethod
    async def open(cls, url: str) -> AiohttpUpstream:
        import aiohttp

        if cls._session is None:  # one ClientSession per process (its connector and DNS cache)
            # limit=0: the connector's default limit (100 connections) holds a WebSocket for its whole
            # life, so the 101st session's upstream would wait for one to end.
            cls._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        ws = await cls._session.ws_connect(
            url,
            headers={"Authorization": f"Bearer {API_KEY}"},
            compress=0,
            max_msg_size=MAX_MESSAGE,
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
        )
        return cls(ws)

    async def texts(self) -> AsyncIterator[str]:
        import aiohttp

        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                yield message.data

    async def close(self) -> None:
        await self.ws.close()


async def open_upstream(path: str) -> Upstream:
    url = f"{UPSTREAM_URL}{path}"
    if UPSTREAM == "aiohttp":
        return await AiohttpUpstream.open(url)
    return await WebsocketsUpstream.open(url)


# ----------------------------------------------------------------------------------------- the ticker


class Ticker:
    """One task per process for every session's clock: idle, wall-clock limit, staff's end, saving."""

    def __init__(self) -> None:
        self.sessions: set[RelayConsumer] = set()
        self.ending: set[asyncio.Task[None]] = set()  # the ends it started (asyncio keeps weak references)
        self.task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.staff_checked_at = datetime.now(timezone.utc)

    def add(self, consumer: RelayConsumer) -> None:
        self.sessions.add(consumer)
        if TIMERS == "shared" and (self.task is None or self.task.done()):
            self.task = asyncio.get_running_loop().create_task(self.run())

    def discard(self, consumer: RelayConsumer) -> None:
        self.sessions.discard(consumer)

    def end_soon(self, consumer: RelayConsumer, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(consumer.end(reason))
        self.ending.add(task)
        task.add_done_callback(self.ending.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.sessions:
            next_at += TICK_SECONDS
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.ticks += 1
            now = loop.time()
            for consumer in list(self.sessions):
                reason = consumer.clock_check(now)
                if reason:
                    self.end_soon(consumer, reason)
            with contextlib.suppress(Exception):  # a database hiccup must not stop the clock
                for session_id in await staff_ended(self.staff_checked_at):
                    for consumer in list(self.sessions):
                        if consumer.row_id == session_id:
                            self.end_soon(consumer, "ended_by_staff")
                self.staff_checked_at = datetime.now(timezone.utc) - _CLOCK_SLACK
            if self.ticks % SAVE_EVERY_TICKS == 0 and SAVE != "none":
                changed = [c.counters() for c in self.sessions if c.audio_bytes != c.saved_bytes]
                if changed:
                    with contextlib.suppress(Exception):
                        await save_counters(changed)
                        for consumer in list(self.sessions):
                            consumer.saved_bytes = consumer.saved_at_tick


_CLOCK_SLACK = timedelta(seconds=2)  # rows asked to end around the last look
TICKER = Ticker()


@database_sync_to_async
def staff_ended(since: datetime) -> list[int]:
    return list(
        BenchRelaySession.objects.filter(end_requested_at__gte=since, ended_at__isnull=True).values_list(
            "pk", flat=True
        )
    )


@database_sync_to_async
def save_counters(rows: list[tuple[int, int]]) -> None:
    """The counters that changed: one executemany of an UPDATE per session, or one UPDATE for all of them
    (Django's bulk_update: a CASE per column) with RT_BENCH_RELAY_SAVE=bulk."""
    now = datetime.now(timezone.utc)
    if SAVE != "bulk":
        table = BenchRelaySession._meta.db_table  # the model's own table name, not input
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET audio_bytes = %s, last_seen_at = %s WHERE id = %s",  # noqa: S608
                [(audio, now, pk) for pk, audio in rows],
            )
        return
    objects = [BenchRelaySession(pk=pk, audio_bytes=audio, last_seen_at=now) for pk, audio in rows]
    BenchRelaySession.objects.bulk_update(objects, ["audio_bytes", "last_seen_at"], batch_size=1000)


# ----------------------------------------------------------------------------------------- the consumer


class RelayConsumer(AsyncWebsocketConsumer):
    row_id: int = 0
    upstream: Upstream | None = None
    ended = False

    async def connect(self) -> None:
        offered = self.scope.get("subprotocols") or []
        loop = asyncio.get_running_loop()
        self.audio_bytes = self.saved_bytes = self.saved_at_tick = 0
        self.audio_limit = MAX_SESSION_SECONDS * BYTES_PER_SECOND
        self.started = loop.time()
        self.idle_since_bytes, self.idle_since = 0, self.started
        self.idle_handle: asyncio.TimerHandle | None = None
        self.clock_task: asyncio.Task[None] | None = None
        row = await BenchRelaySession.objects.acreate()
        self.row_id = row.pk
        try:
            self.upstream = await open_upstream(f"/realtime?intent=transcription&session={row.pk}")
        except Exception:  # refused, unreachable, timed out: an upstream failure
            await self.close(code=4011)
            return
        await self.upstream.send(PLANNED_SESSION)
        if LAYER == "redis":
            await self.channel_layer.group_add(f"rt-bench-relay-{row.pk}", self.channel_name)
        await self.accept(subprotocol="realtime" if "realtime" in offered else None)
        self.pump = loop.create_task(self.upstream_to_client())
        TICKER.add(self)
        if TIMERS == "session":
            self.clock_task = loop.create_task(self.own_clock())
        elif TIMERS == "frame":
            self.idle_handle = loop.call_later(IDLE_TIMEOUT_SECONDS, self.idle_fired)

    # ------------------------------------------------------------------ the hot path

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if DISPATCH != "loop" or LAYER != "none":
            await super().__call__(scope, receive, send)
            return
        # AsyncConsumer.__call__ without a channel layer, minus await_many_dispatch's task per message.
        self.scope, self.channel_layer, self.base_send = scope, None, send
        with contextlib.suppress(StopConsumer):
            while True:
                await self.dispatch(await receive())

    async def dispatch(self, message: dict[str, Any]) -> None:
        if DISPATCH != "channels" and message["type"] == "websocket.receive":
            # No database work follows a frame: skip Channels' close_old_connections (a hop to the sync
            # thread, shared by every session of the process) for the one message type that is hot.
            text = message.get("text")
            if text is not None:
                await self.receive(text_data=text)
            else:
                await self.receive(bytes_data=message.get("bytes"))
            return
        await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None and PARSE == "prefix":
            audio = append_audio_bytes(text_data)
            if audio is not None:
                await self.forward_audio(text_data, audio)
                return
        await self.receive_other(text_data, bytes_data)

    async def forward_audio(self, text: str, audio: int) -> None:
        self.audio_bytes += audio
        if self.audio_bytes > self.audio_limit:
            await self.end("session_limit")
            return
        if self.idle_handle is not None:  # RT_BENCH_RELAY_TIMERS=frame
            self.idle_handle.cancel()
            self.idle_handle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT_SECONDS, self.idle_fired)
        assert self.upstream is not None
        await self.upstream.send(text)

    async def receive_other(self, text: str | None, data: bytes | None) -> None:
        event = parse_event(text) if text is not None else None
        kind = event.get("type") if event is not None else None
        if event is None or kind not in FORWARDED:
            event_id = event.get("event_id") if event is not None else None
            await self.send_error("event_not_allowed", "This event is not forwarded by the relay.", event_id)
            return
        if kind == APPEND:
            await self.forward_audio(text or "", audio_bytes_of(event))
            return
        assert self.upstream is not None and text is not None
        await self.upstream.send(text)

    # ------------------------------------------------------------------ the other direction and the end

    async def upstream_to_client(self) -> None:
        assert self.upstream is not None
        try:
            async for text in self.upstream.texts():
                await self.send(text_data=text)
        except Exception:  # noqa: S110 - the upstream failed: the end below says so
            pass
        if not self.ended:
            await self.end("upstream_closed", code=1011)

    async def send_error(self, code: str, message: str, event_id: str | None = None) -> None:
        error = {"type": "invalid_request_error", "code": code, "message": message, "event_id": event_id}
        await self.send(text_data=json.dumps({"type": "error", "error": error}))

    async def end(self, reason: str, code: int = 1000) -> None:
        if self.ended:
            return
        self.ended = True
        with contextlib.suppress(Exception):
            if reason != "client_closed":
                await self.send_error(reason, f"The relay ended the session: {reason}.")
                await self.close(code=code)
        await self.finish(reason)

    async def disconnect(self, code: int) -> None:
        if not self.ended:
            self.ended = True
            await self.finish("client_closed")

    async def finish(self, reason: str) -> None:
        TICKER.discard(self)
        for task in (getattr(self, "pump", None), self.clock_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                await self.upstream.close()
        if self.row_id:
            await BenchRelaySession.objects.filter(pk=self.row_id).aupdate(
                ended_at=datetime.now(timezone.utc), end_reason=reason, audio_bytes=self.audio_bytes
            )
        if LAYER == "redis" and self.row_id:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(f"rt-bench-relay-{self.row_id}", self.channel_name)

    async def relay_end(self, event: dict[str, Any]) -> None:
        """Staff's end through the channel layer (RT_BENCH_RELAY_LAYER=redis)."""
        await self.end("ended_by_staff")

    # ------------------------------------------------------------------ clocks

    def clock_check(self, now: float) -> str | None:
        if now - self.started >= MAX_SESSION_SECONDS:
            return "session_limit"
        if self.audio_bytes != self.idle_since_bytes:
            self.idle_since_bytes, self.idle_since = self.audio_bytes, now
        elif now - self.idle_since >= IDLE_TIMEOUT_SECONDS:
            return "idle"
        return None

    def counters(self) -> tuple[int, int]:
        self.saved_at_tick = self.audio_bytes
        return self.row_id, self.audio_bytes

    async def own_clock(self) -> None:
        """RT_BENCH_RELAY_TIMERS=session: this session's own task, its own row saved every 5 s."""
        loop = asyncio.get_running_loop()
        ticks = 0
        while not self.ended:
            await asyncio.sleep(TICK_SECONDS)
            ticks += 1
            reason = self.clock_check(loop.time())
            if reason:
                await self.end(reason)
                return
            if ticks % SAVE_EVERY_TICKS == 0 and self.audio_bytes != self.saved_bytes:
                audio = self.audio_bytes
                await BenchRelaySession.objects.filter(pk=self.row_id).aupdate(
                    audio_bytes=audio, last_seen_at=datetime.now(timezone.utc)
                )
                self.saved_bytes = audio

    def idle_fired(self) -> None:
        TICKER.end_soon(self, "idle")
