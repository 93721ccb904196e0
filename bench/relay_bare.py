"""The relay benchmark's reference: a bare asyncio forwarder, no Django, no parsing.

    python bench/relay_bare.py --port 8000 --upstream ws://127.0.0.1:8791 [--parse json|prefix]

One process on uvloop (as the relay under uvicorn), websockets' asyncio server for the clients and
websockets' asyncio client (the library the relay's upstream client uses) for one upstream socket per
session: each text frame is forwarded as it came, in both directions, by two tasks; the `finally` closes
the other side. No compression on either side (the relay configurations turn it off too: see
bench/relay.py).

--parse json adds what a forwarder that looks at its frames adds: `json.loads` of every frame and a check
of its type (bench/relay.py's "bare-json"); --parse prefix the relay's recognition of an append
(bench/channels_relay/frames.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.channels_relay.frames import append_audio_bytes

ALLOWED = frozenset({"input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear"})
MAX_MESSAGE = 16 * 1024 * 1024


async def pump_to_upstream(client: ServerConnection, upstream: ClientConnection, parse: str) -> None:
    async for message in client:
        if parse == "json":
            event = json.loads(message)
            if not isinstance(event, dict) or event.get("type") not in ALLOWED:
                continue
        elif parse == "prefix" and (not isinstance(message, str) or append_audio_bytes(message) is None):
            continue
        await upstream.send(message)


async def pump_to_client(upstream: ClientConnection, client: ServerConnection) -> None:
    async for message in upstream:
        await client.send(message)


def handler_for(upstream_url: str, parse: str):
    async def handler(client: ServerConnection) -> None:
        async with connect(
            upstream_url + (client.request.path if client.request else "/"),
            additional_headers={"Authorization": "Bearer sk-bench-not-a-real-key"},
            compression=None,
            max_size=MAX_MESSAGE,
        ) as upstream:
            tasks = [
                asyncio.create_task(pump_to_upstream(client, upstream, parse)),
                asyncio.create_task(pump_to_client(upstream, client)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except ConnectionClosed:
                pass
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await client.close()

    return handler


async def main_async(host: str, port: int, upstream: str, parse: str) -> None:
    async with serve(
        handler_for(upstream.rstrip("/"), parse),
        host,
        port,
        subprotocols=[Subprotocol("realtime")],
        compression=None,
        max_size=MAX_MESSAGE,
        backlog=2048,
    ) as server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the sink's ws:// base URL")
    parser.add_argument("--parse", choices=("none", "json", "prefix"), default="none")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; plain asyncio otherwise
        asyncio.run(main_async(args.host, args.port, args.upstream, args.parse))
    else:
        uvloop.run(main_async(args.host, args.port, args.upstream, args.parse))
    return 0


if __name__ == "__main__":
    sys.exit(main())
