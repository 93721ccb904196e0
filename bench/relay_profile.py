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

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

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
_COMPILED = [(piece, re.compile(pattern)) for piece, pattern in PIECES]


def clean(frame: str) -> str:
    # py-spy writes paths in full: keep "package/module.py:line" after site-packages/ or the repository.
    return re.sub(r"\((?:[^()]*site-packages/|/[^()]*?/(?=bench/)|[^()]*?/lib/python3\.\d+/)", "(", frame)


def piece_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        name = clean(frame)
        for piece, pattern in _COMPILED:
            if pattern.search(name):
                return piece
    return OUTSIDE


def summarise(path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        counts[piece_of(frames)] += int(number)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", help="PROFILE[:CPU_US] (CPU_US: the relay's CPU per frame)")
    args = parser.parse_args(argv)
    columns = []
    for spec in args.profiles:
        path_text, _, cpu_text = spec.partition(":")
        path = Path(path_text)
        if not path.is_file():
            print(f"no such profile: {path}", file=sys.stderr)
            return 2
        columns.append((path.stem, summarise(path), float(cpu_text) if cpu_text else None))
    order = list(dict.fromkeys([*(piece for piece, _ in PIECES), OUTSIDE]))
    width = max(len(p) for p in order)
    print(f"{'piece of work':{width}} " + " ".join(f"{name[:24]:>24}" for name, _, _ in columns))
    print(f"{'':{width}} " + " ".join(f"{'share   µs/frame':>24}" for _ in columns))
    for piece in order:
        if not any(counts[piece] for _, counts, _ in columns):
            continue
        cells = []
        for _, counts, cpu in columns:
            share = counts[piece] / max(1, sum(counts.values()))
            value = f"{share * cpu:8.1f}" if cpu is not None else f"{'-':>8}"
            cells.append(f"{share * 100:14.1f}% {value}")
        print(f"{piece:{width}} " + " ".join(cells))
    totals = [f"{sum(c.values()):>9} samples {cpu if cpu is not None else '-':>6}" for _, c, cpu in columns]
    print(f"{'total':{width}} " + " ".join(f"{t:>24}" for t in totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
