"""A fast local stand-in for OpenAI's GA `POST /v1/realtime/client_secrets`, for load tests.

    python bench/fast_upstream.py [--port 8790] [--delay-ms 0]

Plain asyncio (no dependency): HTTP/1.1 with keep-alive, answers every POST whose path ends in
`/realtime/client_secrets` after the configured delay with a body the app accepts:
`{"value": "ek_…", "expires_at": …, "session": {"type": "transcription", "id": "sess_…", …}}` (the request's
`session` echoed back with an id). The delay can be changed while it runs, without a restart:

    POST /__bench/delay?ms=300        (answers 204)
    GET  /__bench/stats               (answers {"requests": N, "by_caller": {"ours": N, …}, "delay_ms": D})

Each server under test is given its own base URL, `http://127.0.0.1:PORT/<caller>/v1`: `by_caller` counts
the keys handed out to each, so that bench/load.py can compare them with the audit rows written.

Unlike `django_rt_sessions.testing` (the stand-in the tests use), it validates nothing: it exists to be
cheap, so that the load generator and the servers under test get the CPU. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import time
from urllib.parse import parse_qs, urlsplit

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024


class State:
    def __init__(self, delay_ms: float) -> None:
        self.delay = delay_ms / 1000
        self.requests = 0
        self.by_caller: dict[str, int] = {}

    def count(self, path: str) -> None:
        """Count one key handed out, under the path's first segment when the base URL has one."""
        self.requests += 1
        first = path.lstrip("/").split("/", 1)[0]
        caller = "" if first == "v1" else first
        self.by_caller[caller] = self.by_caller.get(caller, 0) + 1


def _response(status: str, body: bytes, keep_alive: bool, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-request-id: req_{secrets.token_hex(8)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def client_secret_body(request_body: bytes) -> bytes:
    try:
        sent = json.loads(request_body or b"{}")
    except ValueError:
        sent = {}
    session = sent.get("session") if isinstance(sent, dict) else None
    session = dict(session) if isinstance(session, dict) else {"type": "transcription"}
    session["id"] = f"sess_{secrets.token_hex(12)}"
    session.setdefault("type", "transcription")
    session["object"] = "realtime.transcription_session"
    seconds = 60
    expires_after = sent.get("expires_after") if isinstance(sent, dict) else None
    if isinstance(expires_after, dict) and isinstance(expires_after.get("seconds"), int):
        seconds = expires_after["seconds"]
    return json.dumps(
        {
            "value": f"ek_{secrets.token_hex(16)}",
            "expires_at": int(time.time()) + seconds,
            "session": session,
        },
        separators=(",", ":"),
    ).encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: State) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                return
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                writer.write(_response("413 Payload Too Large", b"{}", False))
                await writer.drain()
                return
            body = await reader.readexactly(length) if length else b""
            connection = headers.get("connection", "").lower()
            keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
            url = urlsplit(target)
            if method == "POST" and url.path.endswith("/realtime/client_secrets"):
                if state.delay > 0:
                    await asyncio.sleep(state.delay)
                state.count(url.path)  # when answered: a key handed out
                writer.write(_response("200 OK", client_secret_body(body), keep_alive))
            elif method == "POST" and url.path == "/__bench/delay":
                state.delay = float(parse_qs(url.query).get("ms", ["0"])[0]) / 1000
                writer.write(_response("204 No Content", b"", keep_alive))
            elif method == "GET" and url.path == "/__bench/stats":
                stats = {
                    "requests": state.requests,
                    "by_caller": state.by_caller,
                    "delay_ms": state.delay * 1000,
                    "pid": os.getpid(),
                }
                writer.write(_response("200 OK", json.dumps(stats).encode(), keep_alive))
            else:
                error = {"error": {"message": "Not found", "type": "invalid_request_error", "code": None}}
                writer.write(_response("404 Not Found", json.dumps(error).encode(), keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    finally:
        writer.close()


async def serve(host: str, port: int, delay_ms: float) -> None:
    state = State(delay_ms)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, state), host, port, backlog=2048, limit=MAX_HEADER_BYTES
    )
    address = server.sockets[0].getsockname()
    print(f"fast upstream on http://{address[0]}:{address[1]}/v1 (delay {delay_ms:g} ms)", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("loopback only")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.delay_ms))


if __name__ == "__main__":
    main()
