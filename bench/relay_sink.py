"""The relay benchmark's upstream: a WebSocket server that only counts what arrives.

    python bench/relay_sink.py --port 8791

It stands where OpenAI's realtime socket stands behind a relay, and does as little as it can so that the
relay under test gets the CPU: websockets' Sans-I/O protocol on plain asyncio transports (uvloop when it is
installed), no task per connection, nothing sent back but the handshake, pongs and closes, unless
--events-every N asks for a transcription delta after every N appends (OpenAI's direction of a session).
For each text frame it records the send time the client wrote in the frame (bench/relay_wire.py) and its
own arrival time, taken when the bytes are read from the socket.

Controlled on stdin, one command a line, each answered with one JSON line on stdout:

    report T0 T1 EXPECTED   latencies of the frames sent in [T0, T1) (monotonic ns), EXPECTED of them sent
                            (frames that never arrived count as infinitely late); forgets every frame
    stats                   connections opened, open now, frames that were not the clients' (session.update…)

Loopback only: it accepts any handshake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from pathlib import Path

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.relay_wire import END, quantile


class Counts:
    def __init__(self) -> None:
        self.sent = array("q")
        self.arrived = array("q")
        self.opened = 0
        self.open = 0
        self.other_frames = 0

    def report(self, start_ns: int, end_ns: int, expected: int) -> dict[str, object]:
        latencies = []
        worst: dict[int, float] = {}  # 100 ms of send time -> the worst latency of its frames
        for sent, arrived in zip(self.sent, self.arrived, strict=True):
            if start_ns <= sent < end_ns:
                latency = (arrived - sent) / 1e6
                latencies.append(latency)
                bucket = (sent - start_ns) // 100_000_000
                if latency > worst.get(bucket, 0.0):
                    worst[bucket] = latency
        latencies.sort()
        self.sent, self.arrived = array("q"), array("q")
        # When the slowest frames were sent (s after T0): periodic stalls (a saver, the collector) show.
        spikes = sorted(worst.items(), key=lambda item: -item[1])[:8]
        received = len(latencies)
        total = max(expected, received)
        return {
            "received": received,
            "expected": expected,
            "p50_ms": quantile(latencies, 0.50, total),
            "p90_ms": quantile(latencies, 0.90, total),
            "p99_ms": quantile(latencies, 0.99, total),
            "p999_ms": quantile(latencies, 0.999, total),
            "max_ms": latencies[-1] if latencies else float("nan"),
            "spikes": [[round(bucket / 10, 1), round(latency, 1)] for bucket, latency in sorted(spikes)],
        }


# What OpenAI sends back while someone speaks, in size: a transcription delta of a few words.
DELTA = json.dumps(
    {
        "type": "conversation.item.input_audio_transcription.delta",
        "event_id": "event_BenchSinkDelta0000001",
        "item_id": "item_BenchSinkItem00000001",
        "content_index": 0,
        "delta": " and then the",
    }
).encode()


class SinkConnection(asyncio.Protocol):
    def __init__(self, counts: Counts, events_every: int = 0) -> None:
        self.counts = counts
        self.ws = ServerProtocol(max_size=None)
        self.transport: asyncio.Transport | None = None
        self.partial: list[bytes] = []
        self.events_every = events_every
        self.appends = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's transports are not asyncio's
        self.counts.opened += 1
        self.counts.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts.open -= 1

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Request):
                ws.send_response(ws.accept(event))
            elif isinstance(event, Frame):
                self.frame(event, now)
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None

    def frame(self, frame: Frame, now: int) -> None:
        if frame.opcode is Opcode.TEXT or (frame.opcode is Opcode.CONT and self.partial):
            if not frame.fin:
                self.partial.append(bytes(frame.data))
                return
            data = b"".join([*self.partial, frame.data]) if self.partial else bytes(frame.data)
            self.partial = []
            if data.endswith(END):
                try:
                    sent = int(data[data.rindex(b"_") + 1 : -len(END)])
                except ValueError:
                    self.counts.other_frames += 1
                    return
                self.counts.sent.append(sent)
                self.counts.arrived.append(now)
                self.appends += 1
                if self.events_every and self.appends % self.events_every == 0:
                    self.ws.send_text(DELTA)  # flushed with the rest of this read
                return
            self.counts.other_frames += 1

    def flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()
                return
        if self.ws.state is State.CLOSED:
            self.transport.close()


async def control(counts: Counts) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        if not words:
            continue
        if words[0] == "report" and len(words) == 4:
            answer: dict[str, object] = counts.report(int(words[1]), int(words[2]), int(words[3]))
        elif words[0] == "stats":
            answer = {"opened": counts.opened, "open": counts.open, "other_frames": counts.other_frames}
        else:
            answer = {"error": f"unknown command {line.decode().strip()!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


async def serve(host: str, port: int, events_every: int) -> None:
    counts = Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkConnection(counts, events_every), host, port, backlog=2048)
    async with server:
        await control(counts)  # until stdin closes: the benchmark is over


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--events-every",
        type=int,
        default=0,
        help="send a transcription delta (about 200 bytes) back after every N appends (0: nothing)",
    )
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.events_every))
    else:
        uvloop.run(serve(args.host, args.port, args.events_every))
    return 0


if __name__ == "__main__":
    sys.exit(main())
