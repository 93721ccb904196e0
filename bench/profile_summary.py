"""Where a token's CPU goes: py-spy's collapsed stacks (bench/load.py --profile) summed into pieces of work.

    .venv/bin/python bench/profile_summary.py PROFILE[:CPU_MS] [PROFILE[:CPU_MS] ...]

    .venv/bin/python bench/profile_summary.py /tmp/prof/ours-0ms-64c.txt:10.1 \\
        /tmp/prof/django-gevent-0ms-64c.txt:5.8

Each sample goes to the piece of work of the deepest frame on its stack that names one (PIECES below): a
sample in psycopg under the user query counts for "user query", one in psycopg under the pool's checkout
for "pool checkout". CPU_MS, the server's CPU per issued token measured in the same run (load.py prints
it), turns each piece's share of the samples into milliseconds per token. With several profiles (ours and
the hand-written peer), the pieces are printed side by side.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# (piece, pattern of a frame "function (path:line)"). The deepest matching frame of a sample decides.
PIECES: list[tuple[str, str]] = [
    ("django: handler, middleware, URL resolving", r"^WSGIHandler\.__call__ \(django/"),
    ("session read (cache)", r"^SessionStore\._get_session \(django/contrib/sessions/"),
    ("session read (cache)", r"^SessionStore\.load \(django/contrib/sessions/"),
    ("CSRF check", r"^CsrfViewMiddleware\.\w+ \(django/middleware/csrf"),
    ("user query (auth)", r"^get_user \(django/contrib/auth/__init__"),
    ("DRF: request, negotiation, response", r"^APIView\.dispatch \(rest_framework/"),
    ("DRF: request, negotiation, response", r"^\w+\.finalize_response \(rest_framework/"),
    ("DRF: its own CSRF check", r"^SessionAuthentication\.enforce_csrf \(rest_framework/"),
    ("DRF: JSON rendering", r"^JSONRenderer\.render \(rest_framework/"),
    ("view: body, context", r"^TranscriptionSessionView\.post \(django_rt_sessions/api/views"),
    ("issuing: service (validation, overrides, body)", r"^issue_session \(django_rt_sessions/issuing"),
    ("issuing: signals", r"^_send \(django_rt_sessions/issuing"),
    ("issuing: preset cache", r"^resolve \(django_rt_sessions/presets/cache"),
    ("issuing: access check", r"^check_access \(django_rt_sessions/presets/access"),
    ("rate limits (django-ratelimit, Redis)", r"^check_limits \(django_rt_sessions/issuing/throttling"),
    ("quota", r"^reserve \(django_rt_sessions/issuing/quotas"),
    ("pool release before the upstream call", r"^_release_pooled_connections \("),
    ("upstream adapter (outside requests)", r"^\w+\.create_session \(django_rt_sessions/upstreams"),
    ("upstream call (requests, urllib3)", r"^Session\.request \(requests/sessions"),
    ("upstream call (requests, urllib3)", r"^LeanSession\.request \(django_rt_sessions/upstreams"),
    ("audit row insert", r"^QuerySet\.create \(django/db/models/query"),
    ("hand-written view (outside requests)", r"^token \(bench/handwritten/views"),
    ("pool checkout (+ health check)", r"^ConnectionPool\.getconn \(psycopg_pool/"),
    ("pool return", r"^ConnectionPool\.putconn \(psycopg_pool/"),
]
OUTSIDE = "server: gunicorn, gevent (HTTP parsing, sockets, switching)"
# py-spy writes paths in full or from site-packages; keep "package/module.py:line" after the last
# "site-packages/", the repository root or the standard library, so the patterns read the same everywhere.
_PATH_PREFIX = re.compile(
    r"\((?:[^()]*site-packages/|/[^()]*?/(?=django_rt_sessions/|bench/)|[^()]*?/lib/python3\.\d+/)"
)


class Pieces:
    """A table of pieces of work: each sample goes to the deepest frame of its stack that one names."""

    def __init__(self, pieces: list[tuple[str, str]], outside: str) -> None:
        self.pieces = pieces
        self.outside = outside
        self._compiled = [(piece, re.compile(pattern)) for piece, pattern in pieces]

    def piece_of(self, stack: list[str]) -> str:
        for frame in reversed(stack):
            name = _PATH_PREFIX.sub("(", frame)
            for piece, pattern in self._compiled:
                if pattern.search(name):
                    return piece
        return self.outside

    def summarise(self, path: Path) -> Counter[str]:
        """Samples per piece of work in one py-spy raw (collapsed) profile (threads and processes merged)."""
        counts: Counter[str] = Counter()
        for line in path.read_text().splitlines():
            stack, _, number = line.rpartition(" ")
            if not stack or not number.isdigit():
                continue
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            counts[self.piece_of(frames)] += int(number)
        return counts

    def main(self, argv: list[str] | None, description: str, unit: str, digits: int) -> int:
        """Print the pieces of PROFILE[:CPU] arguments side by side; CPU (in `unit`) turns shares into
        costs."""
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument(
            "profiles", nargs="+", help=f"PROFILE[:CPU] (CPU: {unit}, measured in the same run)"
        )
        args = parser.parse_args(argv)
        columns = []
        for spec in args.profiles:
            path_text, _, cpu_text = spec.partition(":")
            path = Path(path_text)
            if not path.is_file():
                print(f"no such profile: {path}", file=sys.stderr)
                return 2
            columns.append((path.stem, self.summarise(path), float(cpu_text) if cpu_text else None))
        order = list(dict.fromkeys([*(piece for piece, _ in self.pieces), self.outside]))
        width = max(len(p) for p in order)
        print(f"{'piece of work':{width}} " + " ".join(f"{name[:24]:>24}" for name, _, _ in columns))
        print(f"{'':{width}} " + " ".join(f"{'share   ' + unit:>24}" for _ in columns))
        for piece in order:
            if not any(counts[piece] for _, counts, _ in columns):
                continue
            cells = []
            for _, counts, cpu in columns:
                share = counts[piece] / max(1, sum(counts.values()))
                value = f"{share * cpu:8.{digits}f}" if cpu is not None else f"{'-':>8}"
                cells.append(f"{share * 100:14.1f}% {value}")
            print(f"{piece:{width}} " + " ".join(cells))
        totals = [
            f"{sum(c.values()):>9} samples {cpu if cpu is not None else '-':>6}" for _, c, cpu in columns
        ]
        print(f"{'total':{width}} " + " ".join(f"{t:>24}" for t in totals))
        return 0


TOKEN_PIECES = Pieces(PIECES, OUTSIDE)
piece_of = TOKEN_PIECES.piece_of
summarise = TOKEN_PIECES.summarise


def main(argv: list[str] | None = None) -> int:
    return TOKEN_PIECES.main(argv, __doc__.split("\n\n")[0], "ms/token", 2)


if __name__ == "__main__":
    sys.exit(main())
