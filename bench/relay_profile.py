"""Where a relay's CPU goes per frame: py-spy's collapsed stacks (bench/relay.py --profile) in pieces.

    .venv/bin/python bench/relay_profile.py /tmp/prof/uvicorn-wsproto-200.txt:90 /tmp/prof/daphne-200.txt:125

Each sample goes to the piece of the deepest frame on its stack that names one (PIECES below): a sample
in the websockets client's send counts for "upstream sends", one in uvicorn's protocol for "ASGI
server". CPU_US, the relay's CPU per frame measured in the same run (bench/relay.py
prints CPU s per session-minute: times 1e6 / 1,500), turns each piece's share of the samples into µs per
frame. py-spy samples every thread that is not waiting (no --gil: a socket call made after releasing the
GIL, as asyncio's selector loop does, would otherwise be missing while uvloop's, made holding it, counts).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.profile_summary import Pieces

# (piece, pattern of a frame "function (path:line)"). The deepest matching frame of a sample decides.
PIECES: list[tuple[str, str]] = [
    (
        "ASGI server: socket reads, WebSocket parsing, ASGI messages",
        r"\((uvicorn|daphne|autobahn|twisted|wsproto|h11|httptools)/",
    ),
    (
        "ASGI server: socket reads, WebSocket parsing, ASGI messages",
        r"\(websockets/(server|protocol|streams|frames|http11|legacy/\w+)\.py",
    ),
    ("Channels: routing, dispatch, await_many_dispatch", r"\(channels/"),
    ("Channels: close_old_connections in the sync thread", r"\(asgiref/sync"),
    ("Channels: close_old_connections in the sync thread", r"^close_old_connections \(django/"),
    ("relay: append recognised, audio counted", r"\(bench/channels_relay/frames"),
    ("relay: consumer code", r"\(bench/channels_relay/consumer"),
    # The sink sends nothing back: the upstream socket's work is the sends (framing, masking, the write
    # syscall, which uvloop makes holding the GIL). In bare, the client side's reads are here too.
    ("upstream sends (websockets/aiohttp client), socket write", r"\((websockets/asyncio|aiohttp)/"),
    ("socket reads and writes (asyncio's selector loop)", r"\(asyncio/selector_events"),
    ("database (ticker, connect/end)", r"\((django/db|psycopg|psycopg_pool)/"),
    ("asyncio: tasks, futures, wait", r"\(asyncio/(tasks|futures|locks|queues|base_events|events)"),
    ("bare forwarder", r"\(bench/relay_bare"),
]
OUTSIDE = "event loop and other (uvloop's C code, startup)"
RELAY_PIECES = Pieces(PIECES, OUTSIDE)


def main(argv: list[str] | None = None) -> int:
    return RELAY_PIECES.main(argv, __doc__.split("\n\n")[0], "µs/frame", 1)


if __name__ == "__main__":
    sys.exit(main())
