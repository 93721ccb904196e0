"""The relay's per-frame path, piece by piece: CPU per frame of each piece and of its alternatives.

    .venv/bin/python bench/relay_pieces.py                   # every section, about 2 minutes
    .venv/bin/python bench/relay_pieces.py --sections parse,dispatch

bench/relay.py measures whole configurations; this measures the pieces of one frame's work in one
process, with the process's CPU time (all its threads: asgiref's sync thread included) and, for the
database, the PostgreSQL backend's. Each figure is the best of --repeats runs (the machine is shared: the
best run is the one the least disturbed). Per piece it prints µs of CPU per frame (or per operation) and
what that costs per session-minute at 25 frames a second (1,500 frames a minute).

Sections:
  parse     recognising an append: frames.append_audio_bytes against json.loads (+ the type check), the
            slow path's duplicate-key check, a regular expression of the whole frame; counting its audio
            from the base64 length against decoding it
  dispatch  Channels between the ASGI server's receive() and the consumer's receive(): a plain loop over
            receive() (the floor), AsyncWebsocketConsumer as shipped (dispatch() runs
            close_old_connections in the sync thread before every message), with dispatch() skipping
            that for websocket.receive, each with and without a channel layer (in memory; channels-redis
            with --redis)
  upstream  forwarding a frame on the upstream client: websockets' asyncio client against aiohttp's, to
            the benchmark's sink (bench/relay_sink.py) in its own process
  timers    an idle timer re-armed on every frame (call_later), a task per session waking every second,
            one ticker for all sessions; under uvloop
  database  the counters: a save per session every 2 s, an UPDATE per session every 5 s, one bulk UPDATE
            of every session every 5 s (Django's bulk_update; and psycopg's executemany); client and
            PostgreSQL CPU (RT_BENCH_RELAY_DATABASE_URL)
  deflate   permessage-deflate: what decompressing each client frame costs a relay that accepts it
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.channels_relay.settings")

from bench.channels_relay.frames import append_audio_bytes, parse_event
from bench.probes import process_cpu_seconds
from bench.relay_wire import FRAMES_PER_SECOND, audio_frames, client_frame

FRAMES_PER_MINUTE = FRAMES_PER_SECOND * 60
SECTIONS = ("parse", "dispatch", "upstream", "timers", "database", "deflate")
ROWS: list[tuple[str, str, float, str]] = []  # (section, variant, µs, unit)


def record(section: str, variant: str, micros: float, unit: str = "frame") -> None:
    ROWS.append((section, variant, micros, unit))
    per_minute = micros * FRAMES_PER_MINUTE / 1000 if unit == "frame" else None
    extra = f"  {per_minute:8.2f} ms CPU per session-minute" if per_minute is not None else ""
    print(f"  {section:9} {variant:62} {micros:9.2f} µs per {unit}{extra}", flush=True)


def best_of(repeats: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeats))


def cpu_per_call(function: Callable[[], object], calls: int) -> float:
    """µs of process CPU per call of `function`."""
    start = time.process_time()
    for _ in range(calls):
        function()
    return (time.process_time() - start) / calls * 1e6


def sample_frames() -> dict[str, str]:
    audio = audio_frames(1)[0].decode()
    browser = client_frame(audio.encode(), 7, time.monotonic_ns()).decode()
    python_sdk = json.dumps({"type": "input_audio_buffer.append", "audio": audio, "event_id": "event_abc123"})
    return {"browser": browser, "python-sdk": python_sdk, "audio": audio}


# --------------------------------------------------------------------------------------------- parse


def section_parse(args: argparse.Namespace) -> None:
    frames = sample_frames()
    browser, sdk, audio = frames["browser"], frames["python-sdk"], frames["audio"]
    calls = 20000
    grammar = re.compile(
        r'\{"type": ?"input_audio_buffer\.append", ?"audio": ?"([A-Za-z0-9+/]*)={0,2}"'
        r'(?:, ?"event_id": ?"[A-Za-z0-9_.:-]{1,64}")?\}'
    )
    assert append_audio_bytes(browser) == append_audio_bytes(sdk) == 1280

    def json_type() -> bool:
        return json.loads(browser).get("type") == "input_audio_buffer.append"

    cases: list[tuple[str, Callable[[], object]]] = [
        ("json.loads + type check (browser frame)", json_type),
        ("frames.append_audio_bytes (browser frame: JSON.stringify)", lambda: append_audio_bytes(browser)),
        ("frames.append_audio_bytes (openai-python's json.dumps frame)", lambda: append_audio_bytes(sdk)),
        ("slow path: frames.parse_event (json.loads, duplicate keys refused)", lambda: parse_event(browser)),
        (
            "a regular expression of the whole frame (base64 alphabet checked)",
            lambda: grammar.fullmatch(browser),
        ),
        (
            'startswith(\'{"type":"input_audio_buffer.append"\') alone (unsafe)',
            lambda: browser.startswith('{"type":"input_audio_buffer.append"'),
        ),
    ]
    for name, function in cases:
        record("parse", name, best_of(args.repeats, lambda f=function: cpu_per_call(f, calls)))
    record(
        "parse",
        "count audio: base64.b64decode + len",
        best_of(args.repeats, lambda: cpu_per_call(lambda: len(base64.b64decode(audio)), calls)),
    )
    record(
        "parse",
        "count audio: len * 3 // 4 - padding",
        best_of(
            args.repeats,
            lambda: cpu_per_call(
                lambda: (
                    len(audio) * 3 // 4 - (2 if audio.endswith("==") else 1 if audio.endswith("=") else 0)
                ),
                calls,
            ),
        ),
    )


# --------------------------------------------------------------------------------------------- dispatch


async def drive(app: Callable[..., Awaitable[None]], consumers: int, rounds: int, text: str) -> float:
    """µs of process CPU per websocket.receive message through `app`, `consumers` connections each getting
    `rounds` messages, one at a time as a server would deliver them (each wakes its consumer)."""
    loop = asyncio.get_running_loop()
    queues: list[asyncio.Queue[dict[str, Any]]] = [asyncio.Queue() for _ in range(consumers)]
    done = {"count": 0, "target": 0}
    everything_processed = asyncio.Event()
    accepted = asyncio.Event()
    accepted_count = {"n": 0}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            accepted_count["n"] += 1
            if accepted_count["n"] == consumers:
                accepted.set()

    def processed() -> None:
        done["count"] += 1
        if done["count"] >= done["target"]:
            everything_processed.set()

    tasks = []
    for queue in queues:
        scope = {
            "type": "websocket",
            "path": "/relay/realtime",
            "query_string": b"",
            "headers": [],
            "subprotocols": ["realtime"],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
            "processed": processed,
        }
        tasks.append(loop.create_task(app(scope, queue.get, send)))
        queue.put_nowait({"type": "websocket.connect"})
    await asyncio.wait_for(accepted.wait(), 30)
    message = {"type": "websocket.receive", "text": text}
    start = time.process_time()
    for _ in range(rounds):
        everything_processed.clear()
        done["target"] = done["count"] + consumers
        for queue in queues:
            queue.put_nowait(message)
        await everything_processed.wait()
    cpu = time.process_time() - start
    for queue in queues:
        queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.gather(*tasks, return_exceptions=True)
    return cpu / (rounds * consumers) * 1e6


def section_dispatch(args: argparse.Namespace) -> None:
    import django
    from django.conf import settings

    django.setup()
    import uvloop
    from channels.exceptions import StopConsumer
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.layers import channel_layers

    text = sample_frames()["browser"]

    async def plain_loop(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The floor: what a bare ASGI app does per message."""
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept", "subprotocol": "realtime"})
            elif message["type"] == "websocket.receive":
                scope["processed"]()
            else:
                return

    class Stock(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept("realtime")

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            self.scope["processed"]()

    class Direct(Stock):
        async def dispatch(self, message: dict[str, Any]) -> None:
            if message["type"] == "websocket.receive":
                text = message.get("text")
                await self.receive(text_data=text) if text is not None else await self.receive(
                    bytes_data=message.get("bytes")
                )
                return
            await super().dispatch(message)

    class OwnLoop(Direct):
        """Channels' AsyncConsumer.__call__ without await_many_dispatch (no channel layer): one plain loop."""

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            self.scope, self.channel_layer, self.base_send = scope, None, send
            with contextlib.suppress(StopConsumer):
                while True:
                    await self.dispatch(await receive())

    layers: list[tuple[str, dict[str, Any] | None]] = [("no channel layer", None)]
    layers.append(("in-memory channel layer", {"BACKEND": "channels.layers.InMemoryChannelLayer"}))
    if args.redis:
        layers.append(
            (
                "channels-redis layer",
                {
                    "BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {
                        "hosts": [os.environ.get("RT_BENCH_RELAY_REDIS_URL", "redis://127.0.0.1:6379/12")]
                    },
                },
            )
        )
    consumers, rounds = 100, args.dispatch_rounds
    variants: list[tuple[str, Any, str]] = [("a plain receive() loop (the floor)", plain_loop, "none")]
    for layer_name, _config in layers:
        variants.append((f"AsyncWebsocketConsumer as shipped, {layer_name}", Stock.as_asgi(), layer_name))
        variants.append((f"dispatch() straight to receive(), {layer_name}", Direct.as_asgi(), layer_name))
    variants.append(
        ("the same in a plain loop (no await_many_dispatch), no layer", OwnLoop.as_asgi(), "none")
    )
    for name, app, layer_name in variants:
        config = dict(layers)[layer_name] if layer_name != "none" else None
        settings.CHANNEL_LAYERS = {"default": config} if config else {}
        channel_layers.backends = {}
        micros = best_of(args.repeats, lambda app=app: uvloop.run(drive(app, consumers, rounds, text)))
        record("dispatch", name, micros)
    settings.CHANNEL_LAYERS = {}
    channel_layers.backends = {}


# --------------------------------------------------------------------------------------------- upstream


async def forward_frames(client: str, url: str, connections: int, frames: int, text: str) -> float:
    """µs of process CPU per frame sent on `connections` upstream sockets (round robin, each awaited)."""
    if client == "websockets":
        from websockets.asyncio.client import connect

        sockets = [await connect(url, compression=None, max_size=2**24) for _ in range(connections)]
        sends = [s.send for s in sockets]
    else:
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # 100 by default
        sockets = [await session.ws_connect(url, compress=0, max_msg_size=2**24) for _ in range(connections)]
        sends = [s.send_str for s in sockets]
    await asyncio.sleep(0.2)
    start = time.process_time()
    for i in range(frames):
        await sends[i % connections](text)
        if i % connections == connections - 1:
            await asyncio.sleep(0)  # let the loop write and read like a server would between frames
    cpu = time.process_time() - start
    for sock in sockets:
        await sock.close()
    if client != "websockets":
        await session.close()
    return cpu / frames * 1e6


def section_upstream(args: argparse.Namespace) -> None:
    import tempfile

    import uvloop

    from bench.relay import Sink, venv_python

    text = sample_frames()["browser"]
    sink = Sink(venv_python(), Path(tempfile.mkdtemp(prefix="rt-bench-relay-pieces-")))
    try:
        for client in ("websockets", "aiohttp"):
            micros = best_of(
                args.repeats,
                lambda client=client: uvloop.run(
                    forward_frames(client, sink.url + "/realtime", 50, 20000, text)
                ),
            )
            record("upstream", f"send one frame: {client} client (uvloop)", micros)
    finally:
        sink.close()


# --------------------------------------------------------------------------------------------- timers


async def timer_cost(kind: str, sessions: int, seconds: float) -> float:
    """µs of process CPU per session-second that a timer design adds (frames simulated at 25 a second)."""
    loop = asyncio.get_running_loop()
    state = [{"bytes": 0, "seen": 0, "since": loop.time(), "handle": None} for _ in range(sessions)]

    def check(s: dict[str, Any], now: float) -> None:
        if s["bytes"] != s["seen"]:
            s["seen"], s["since"] = s["bytes"], now

    def idle() -> None:
        pass

    tasks: list[asyncio.Task[None]] = []
    if kind == "frame":
        for s in state:
            s["handle"] = loop.call_later(60, idle)
    elif kind == "session":

        async def own(s: dict[str, Any]) -> None:
            while True:
                await asyncio.sleep(1)
                check(s, loop.time())

        tasks = [loop.create_task(own(s)) for s in state]
    elif kind == "shared":

        async def ticker() -> None:
            while True:
                await asyncio.sleep(1)
                now = loop.time()
                for s in state:
                    check(s, now)

        tasks = [loop.create_task(ticker())]
    start = time.process_time()
    ticks = int(seconds * FRAMES_PER_SECOND)
    for _ in range(ticks):  # every 40 ms each session gets a frame
        for s in state:
            s["bytes"] += 1280
            if kind == "frame":
                s["handle"].cancel()
                s["handle"] = loop.call_later(60, idle)
        await asyncio.sleep(1 / FRAMES_PER_SECOND)
    cpu = time.process_time() - start
    for task in tasks:
        task.cancel()
    for s in state:
        if s["handle"] is not None:
            s["handle"].cancel()
    return cpu / (sessions * seconds) * 1e6


def section_timers(args: argparse.Namespace) -> None:
    import uvloop

    sessions, seconds = 500, args.timer_seconds
    floor = best_of(args.repeats, lambda: uvloop.run(timer_cost("none", sessions, seconds)))
    for kind, name in (
        ("frame", "an idle timer per session re-armed on every frame (cancel + call_later)"),
        ("session", "a task per session waking every second"),
        ("shared", "one ticker for every session, every second"),
    ):
        cost = best_of(args.repeats, lambda kind=kind: uvloop.run(timer_cost(kind, sessions, seconds)))
        # per session-second → per frame (25 frames a second), above the simulation's own floor
        record("timers", name, max(0.0, cost - floor) / FRAMES_PER_SECOND)


# --------------------------------------------------------------------------------------------- database


def section_database(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from channels.db import database_sync_to_async
    from django.db import connection

    from bench.channels_relay.models import BenchRelaySession
    from bench.relay import PREPARE_SCRIPT

    exec(PREPARE_SCRIPT.replace('print("prepared", cfg["NAME"])', ""), {})  # noqa: S102 - our own script
    sessions = 500
    rows = BenchRelaySession.objects.bulk_create([BenchRelaySession() for _ in range(sessions)])
    backend = connection.cursor().connection.info.backend_pid  # the main thread's connection

    def measure(label: str, work: Callable[[int], None], per_session_minute: float, rounds: int = 5) -> None:
        """CPU (this process + its PostgreSQL backend) per session-minute of `work`."""

        def once() -> float:
            before = time.process_time(), process_cpu_seconds(backend)
            for r in range(rounds):
                work(r)
            after = time.process_time(), process_cpu_seconds(backend)
            cpu = (after[0] - before[0]) + (after[1] - before[1])
            return cpu / (rounds * sessions) * per_session_minute

        cost = best_of(args.repeats, once)  # seconds of CPU per session-minute
        # As µs per frame (1,500 frames a session-minute) so that the table adds up.
        record("database", label, cost * 1e6 / FRAMES_PER_MINUTE)

    now = django.utils.timezone.now

    def save_each(r: int) -> None:
        for row in rows:
            row.audio_bytes += 1280 * 50
            row.last_seen_at = now()
            row.save(update_fields=["audio_bytes", "last_seen_at"])

    def update_each(r: int) -> None:
        for row in rows:
            BenchRelaySession.objects.filter(pk=row.pk).update(
                audio_bytes=1280 * 125 * (r + 1), last_seen_at=now()
            )

    def bulk(r: int) -> None:
        stamp = now()
        objects = [
            BenchRelaySession(pk=row.pk, audio_bytes=1280 * 125 * (r + 1), last_seen_at=stamp) for row in rows
        ]
        BenchRelaySession.objects.bulk_update(objects, ["audio_bytes", "last_seen_at"], batch_size=1000)

    def bulk_async(r: int) -> None:
        async_to_sync(database_sync_to_async(bulk))(r)

    def executemany(r: int) -> None:
        stamp = now()
        table = BenchRelaySession._meta.db_table  # a model's own table name, not input
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET audio_bytes = %s, last_seen_at = %s WHERE id = %s",  # noqa: S608
                [(1280 * 125 * (r + 1), stamp, row.pk) for row in rows],
            )

    measure("save() per session every 2 s (30 a session-minute)", save_each, 30)
    measure("UPDATE per session every 5 s (12 a session-minute)", update_each, 12)
    measure("one bulk_update of 500 sessions every 5 s, sync", bulk, 12)
    if backend:
        # database_sync_to_async runs in asgiref's thread: its own connection (and backend), whose CPU is
        # not counted here; the client side is.
        measure("the same through database_sync_to_async (client CPU only)", bulk_async, 12)
    measure("one executemany of 500 UPDATEs every 5 s (psycopg pipeline)", executemany, 12)
    # How long one save holds its thread (and, for its Python part, the GIL the event loop needs).
    for label, work in (("bulk_update", bulk), ("executemany", executemany)):

        def wall(work: Callable[[int], None] = work) -> float:
            start = time.perf_counter()
            work(0)
            return (time.perf_counter() - start) * 1e6

        record(
            "database", f"one {label} of 500 sessions: wall time", best_of(args.repeats, wall), unit="save"
        )
    BenchRelaySession.objects.all().delete()


# --------------------------------------------------------------------------------------------- deflate


def section_deflate(args: argparse.Namespace) -> None:
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode

    # 2 s of distinct audio in a loop, as the clients send it: a 32 KiB window never reaches the repeat.
    audio = audio_frames()
    texts = [client_frame(audio[i % len(audio)], 7, time.monotonic_ns()) for i in range(2000)]
    # A browser's offer as websockets' server accepts it: context takeover on both sides, 15-bit windows.
    client_side = PerMessageDeflate(False, False, 15, 15)
    frames = [client_side.encode(Frame(Opcode.TEXT, text)) for text in texts]
    ratio = sum(len(f.data) for f in frames) / sum(len(t) for t in texts)

    def decode_all() -> float:
        decoder = PerMessageDeflate(False, False, 15, 15)
        start = time.process_time()
        for frame in frames:
            decoder.decode(frame)
        return (time.process_time() - start) / len(frames) * 1e6

    record(
        "deflate",
        f"decompress one client frame (compressed to {ratio:.0%} of its size)",
        best_of(args.repeats, decode_all),
    )


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"any of {','.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each piece; the best is kept")
    parser.add_argument("--redis", action="store_true", help="also measure the channels-redis layer")
    parser.add_argument(
        "--dispatch-rounds", type=int, default=100, help="messages per consumer (x100 consumers)"
    )
    parser.add_argument("--timer-seconds", type=float, default=4.0, help="simulated seconds per timer run")
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; best of {args.repeats}")
    for section in sections:
        globals()[f"section_{section}"](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
