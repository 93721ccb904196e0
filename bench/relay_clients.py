"""The relay benchmark's clients: N sessions streaming 40 ms of PCM16 audio every 40 ms, as browsers do.

    python bench/relay_clients.py --url ws://127.0.0.1:8000/relay/realtime?intent=transcription \\
        --sessions 100 --start NS --ramp 3 --window T0 T1 --end NS

Each session opens one WebSocket (subprotocols `realtime` and `openai-insecure-api-key.rts_…` and
permessage-deflate offered, like a browser) at its turn in the ramp, then writes one
`input_audio_buffer.append` frame every 40 ms (bench/relay_wire.py) until END. The sessions are spread
evenly over the 40 ms (one timer for all of them, 2 ms slots), so the relay sees a steady stream, not
bursts. Each frame carries the time it was written; what the clients report is what the latency needs
besides the sink's side: the frames they wrote in the measured window [T0, T1), how late their own timer
ran (a client that cannot keep up would otherwise pass for a slow relay), the sessions that could not open
or were closed by the server. Times are `time.monotonic_ns()`, the machine's clock.

websockets' Sans-I/O protocol on asyncio transports (uvloop when installed), to leave the CPU to the relay.
Prints one JSON line when done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.relay_wire import FRAME_BYTES, FRAME_NS, audio_frames, client_frame, quantile

SLOTS = 20  # the 40 ms period cut in 2 ms slots: session i writes in slot i % SLOTS
SLOT_NS = FRAME_NS // SLOTS
MAX_BUFFERED = 256 * 1024  # a relay that stopped reading: frames are dropped (and count as lost)
TICKET = "rts_bench-not-a-real-ticket"


class Session(asyncio.Protocol):
    def __init__(self, index: int, ws: ClientProtocol, stats: Stats) -> None:
        self.index = index
        self.ws = ws
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.frame_number = index  # where in the audio loop it starts
        self.closing = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's transports are not asyncio's
        request = self.ws.connect()
        request.headers["User-Agent"] = "rt-sessions-relay-bench"
        self.ws.send_request(request)
        self.flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.ws.state is State.OPEN:
                    self.opened.set_result(True)
                else:
                    self.opened.set_exception(
                        ConnectionError(f"handshake answered {event.status_code} {event.reason_phrase}")
                    )
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.stats.server_events += 1
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))
        elif not self.closing:
            self.stats.closed_by_server[str(self.ws.close_code)] += 1
        self.transport = None

    # ------------------------------------------------------------------ ours

    @property
    def open(self) -> bool:
        return self.transport is not None and self.ws.state is State.OPEN and not self.closing

    def flush(self) -> None:
        if self.transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()
                return

    def send_audio(self, audio: bytes, now: int) -> bool:
        assert self.transport is not None
        if self.transport.get_write_buffer_size() > MAX_BUFFERED:
            return False
        self.ws.send_text(client_frame(audio, self.index, now))
        self.flush()
        return True

    def close(self) -> None:
        if self.open:
            self.closing = True
            self.ws.send_close(1000)
            self.flush()


class Stats:
    def __init__(self) -> None:
        self.opened = 0
        self.failed: Counter[str] = Counter()
        self.closed_by_server: Counter[str] = Counter()
        self.server_events = 0
        self.sent_window = 0
        self.dropped_window = 0  # frames the clients could not write: the relay had stopped reading
        self.open_at_window = 0
        self.lags_ms: list[float] = []


async def open_session(
    index: int, url: str, deflate: bool, stats: Stats, origin: str, ticket: str = TICKET
) -> Session | None:
    uri = parse_uri(url)
    ws = ClientProtocol(
        uri,
        origin=Origin(origin),
        extensions=[ClientPerMessageDeflateFactory(client_max_window_bits=True)] if deflate else None,
        subprotocols=[Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{ticket}")],
        max_size=None,
    )
    loop = asyncio.get_running_loop()
    session: Session | None = None
    try:
        _transport, session = await asyncio.wait_for(
            loop.create_connection(lambda: Session(index, ws, stats), uri.host, uri.port), 10
        )
        await asyncio.wait_for(session.opened, 10)
    except (OSError, asyncio.TimeoutError) as exc:
        stats.failed[type(exc).__name__ + (f": {exc}" if isinstance(exc, ConnectionError) else "")] += 1
        if session is not None and session.transport is not None:
            session.transport.abort()
        return None
    stats.opened += 1
    return session


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    audio = audio_frames(frame_bytes=args.frame_bytes)
    slots: list[list[Session]] = [[] for _ in range(SLOTS)]
    origin = f"http://{parse_uri(args.url).host}:{parse_uri(args.url).port}"
    opening: list[asyncio.Task[Session | None]] = []
    # The real relay (bench/real_relay/) checks tickets: one single-use ticket per session, by number.
    tickets = Path(args.tickets).read_text().split() if args.tickets else []

    def opened(slot: int, task: asyncio.Task[Session | None]) -> None:
        if not task.cancelled() and task.result() is not None:
            slots[slot].append(task.result())

    async def opener() -> None:
        for i in range(args.sessions):
            at = args.start + int(i * args.ramp * 1e9 / max(1, args.sessions))
            delay = (at - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            ticket = tickets[args.first + i] if tickets else TICKET
            task = asyncio.create_task(
                open_session(args.first + i, args.url, args.deflate, stats, origin, ticket)
            )
            task.add_done_callback(partial(opened, (args.first + i) % SLOTS))
            opening.append(task)

    opener_task = asyncio.create_task(opener())
    window_start, window_end = args.window
    tick = 0
    next_at = args.start
    counted_open = False
    while next_at < args.end:
        delay = (next_at - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic_ns()
        in_window = window_start <= now < window_end
        if in_window:
            stats.lags_ms.append((now - next_at) / 1e6)
            if not counted_open:
                counted_open = True
                stats.open_at_window = sum(1 for slot in slots for s in slot if s.open)
        for session in slots[tick % SLOTS]:
            if not session.open:
                continue
            now = time.monotonic_ns()
            session.frame_number += 1
            written = session.send_audio(audio[session.frame_number % len(audio)], now)
            if window_start <= now < window_end:
                stats.sent_window += 1
                if not written:
                    stats.dropped_window += 1
        tick += 1
        next_at = args.start + tick * SLOT_NS
    opener_task.cancel()
    for slot in slots:
        for session in slot:
            session.close()
    await asyncio.sleep(1.0)  # the closing handshakes
    for slot in slots:
        for session in slot:
            if session.transport is not None:
                session.transport.abort()
    for task in opening:
        task.cancel()
    lags = sorted(stats.lags_ms)
    return {
        "sessions": args.sessions,
        "opened": stats.opened,
        "failed": dict(stats.failed),
        "open_at_window": stats.open_at_window,
        "closed_by_server": dict(stats.closed_by_server),
        "server_events": stats.server_events,
        "sent_window": stats.sent_window,
        "dropped_window": stats.dropped_window,
        "lag_p99_ms": quantile(lags, 0.99) if lags else None,
        "lag_max_ms": lags[-1] if lags else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="number of the first session (several clients)")
    parser.add_argument("--start", type=int, required=True, help="monotonic ns of the first connection")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds over which the sessions open")
    parser.add_argument("--window", type=int, nargs=2, required=True, metavar=("T0", "T1"))
    parser.add_argument("--end", type=int, required=True, help="monotonic ns when the sessions stop")
    parser.add_argument("--frame-bytes", type=int, default=FRAME_BYTES, help="PCM bytes per 40 ms frame")
    parser.add_argument("--no-deflate", dest="deflate", action="store_false", help="offer no compression")
    parser.add_argument("--tickets", help="a file of relay tickets, one per session number (the real relay)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
