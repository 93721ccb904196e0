"""The relay process's clock: one task per process (not a timer per session) for every session it relays.

Each second it ends the sessions that reached their wall-clock limit or went idle and those staff asked to
end (one query for all of them; the channel layer usually gets there first); every 5 s it saves the
counters of all of them (one executemany: their audio and that they are alive) and refreshes the minutes
left of users with several open sessions; every 10 s it runs the sweep, which closes the rows of relay
processes that died. Measured in bench/relay_pieces.py: a timer per session, or one re-armed on every frame,
costs more CPU per session-minute than this.

It also listens on the process's own channel of the channel layer (when the site configures one), where
staff's "End session" arrives from any host within a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
from collections.abc import Coroutine
from typing import Any, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from . import sessions

logger = logging.getLogger("django_rt_sessions.relay")

TICK_SECONDS = 1.0
SAVE_EVERY_TICKS = int(sessions.SAVE_EVERY)
SWEEP_EVERY_TICKS = 10
END_MESSAGE = "relay.end"  # what control.end_sessions sends to a process's channel
_STAFF_SLACK = dt.timedelta(seconds=2)  # rows asked to end around the last look are looked at again


class RelayedSession(Protocol):
    """What the clock needs of a session it keeps (the relay's consumer is one)."""

    session_id: str
    user_id: Any
    preset_id: Any
    shares_quota: bool

    def clock_check(self, now: float) -> str | None: ...

    def counters(self) -> tuple[float, float, int, int, str]: ...

    def set_quota(self, seconds_left: float | None) -> None: ...

    def end(self, reason: str) -> Coroutine[Any, Any, None]: ...


class RelayProcess:
    """The sessions one event loop relays, and the tasks that keep their clocks."""

    _by_loop: dict[int, RelayProcess] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sessions: dict[str, RelayedSession] = {}
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.channel_name = ""
        self.layer: Any = None
        self.ticks = 0
        self.staff_checked_at = timezone.now()
        self._tasks: set[asyncio.Task[Any]] = set()  # asyncio keeps only weak references to tasks
        self._started = False
        self._warned: set[str] = set()

    @classmethod
    def current(cls) -> RelayProcess:
        loop = asyncio.get_running_loop()
        process = cls._by_loop.get(id(loop))
        if process is None or process.loop is not loop:
            process = cls._by_loop[id(loop)] = cls(loop)
        return process

    async def start(self) -> None:
        """Start the clock and, with a channel layer, the listener (once per process)."""
        if self._started:
            return
        self._started = True
        try:
            self.layer = get_channel_layer()
        except Exception as exc:  # a malformed CHANNEL_LAYERS: staff's end still arrives by the database
            self._warn("layer", "The channel layer cannot be used (%s): staff's end arrives by polling.", exc)
        if self.layer is not None:
            self.channel_name = await self.layer.new_channel(prefix="rt-relay.")
            self._spawn(self._listen())
        self._spawn(self._run())

    def add(self, consumer: RelayedSession) -> None:
        self.sessions[consumer.session_id] = consumer

    def discard(self, consumer: RelayedSession) -> None:
        self.sessions.pop(consumer.session_id, None)

    def end_soon(self, consumer: RelayedSession, reason: str) -> None:
        self._spawn(consumer.end(reason))

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _warn(self, key: str, message: str, *args: Any) -> None:
        """A problem logged once per process until it goes away (a database or Redis outage)."""
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    async def _run(self) -> None:
        next_at = self.loop.time()
        while True:
            next_at += TICK_SECONDS
            await asyncio.sleep(max(0.0, next_at - self.loop.time()))
            self.ticks += 1
            try:
                await self._tick()
            except Exception as exc:  # the clock must survive anything a tick meets
                self._warn("tick", "The relay's clock failed a tick (%s); it goes on.", exc)

    async def _tick(self) -> None:
        now = self.loop.time()
        for consumer in list(self.sessions.values()):
            reason = consumer.clock_check(now)
            if reason:
                self.end_soon(consumer, reason)
        if self.sessions:
            await self._staff_ends()
        if self.ticks % SAVE_EVERY_TICKS == 0 and self.sessions:
            await self._save()
        if self.ticks % SWEEP_EVERY_TICKS == 0:
            try:
                await database_sync_to_async(sessions.sweep)()
                self._warned.discard("sweep")
            except Exception as exc:
                self._warn("sweep", "The relay's sweep failed (%s); it will try again.", exc)

    async def _staff_ends(self) -> None:
        since = timezone.now() - _STAFF_SLACK
        try:
            asked = await database_sync_to_async(sessions.ended_elsewhere)(
                list(self.sessions), self.staff_checked_at
            )
        except Exception as exc:
            self._warn("staff", "The relay cannot read staff's end requests (%s).", exc)
            return
        self._warned.discard("staff")
        self.staff_checked_at = since
        for pk in asked:
            consumer = self.sessions.get(pk)
            if consumer is not None:
                self.end_soon(consumer, "ended_by_staff")

    async def _save(self) -> None:
        consumers = list(self.sessions.values())
        try:
            await database_sync_to_async(sessions.save_counters)([c.counters() for c in consumers])
            self._warned.discard("save")
        except Exception as exc:
            self._warn("save", "The relay cannot save its sessions' counters (%s); it will try again.", exc)
            return
        for consumer in consumers:
            if consumer.shares_quota:
                try:
                    left = await database_sync_to_async(sessions.audio_seconds_left)(
                        consumer.user_id, consumer.preset_id, consumer.session_id
                    )
                except Exception:  # noqa: S112 - the last figure stands until the database answers
                    continue
                consumer.set_quota(left)

    async def _listen(self) -> None:
        """Staff's "End session" from any host: `{"type": "relay.end", "sessions": [id, ...]}`."""
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: staff's end still arrives by the database poll
                self._warn("listen", "The relay cannot read its channel (%s); retrying.", exc)
                await asyncio.sleep(1.0)
                continue
            self._warned.discard("listen")
            if message.get("type") != END_MESSAGE:
                continue
            for pk in message.get("sessions") or ():
                consumer = self.sessions.get(str(pk))
                if consumer is not None:
                    self.end_soon(consumer, "ended_by_staff")

    async def stop(self) -> None:
        """Cancel the process's tasks (tests that run several servers in one process)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
