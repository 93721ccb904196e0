"""What each ASGI server lets a WebSocket application do: refusals, close codes, message sizes, pings.

    .venv/bin/python bench/asgi_probe.py
    .venv/bin/python bench/asgi_probe.py --servers daphne,uvicorn-wsproto

Serves a small raw ASGI application (below) under each server, with the server's defaults unless a
probe says otherwise, and asks it from a WebSocket client built on websockets' Sans-I/O protocol over a
plain socket (so that every frame the server sends, pings included, is seen):

  refuse       the app answers the upgrade with `websocket.http.response.start` 401 and a JSON body when
               the server offers the `websocket.http.response` extension, else with `websocket.close`:
               the status line and body the client gets
  close        the app accepts, then closes with 1000, 1008, 1011, 3000, 4008, 4011: the code the client
               gets, and what the server logged
  size         the client sends one text message of 1 MiB - 1 KiB, 1 MiB + 1, 2 MiB and 16 MiB + 1: whether
               the app got it, or how the server ended the connection
  ping         the server's keepalive pings: with the servers' ping interval set to 1 s, the pings the
               client sees in 3.5 s while streaming a frame every 40 ms, then in 3.5 s idle (a ping the
               client sends is answered with a pong either way)

Servers: uvicorn with each WebSocket implementation (websockets, websockets-sansio, wsproto; uvloop,
httptools), daphne.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.relay import HOST, free_port, start, stop, tail, venv_python, wait_port

SERVERS = ("uvicorn-websockets", "uvicorn-websockets-sansio", "uvicorn-wsproto", "daphne")
SIZES = (1024 * 1024 - 1024, 1024 * 1024 + 1, 2 * 1024 * 1024, 16 * 1024 * 1024 + 1)
CLOSE_CODES = (1000, 1008, 1011, 3000, 4008, 4011)


# --------------------------------------------------------------------------------------- the application


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/refuse, /close/<code>, /echo-size: one behaviour per path."""
    if scope["type"] != "websocket":
        return
    path = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect"
    if path == "/refuse":
        if "websocket.http.response" in scope.get("extensions", {}):
            body = json.dumps(
                {"error": {"code": "invalid_api_key", "message": "Refused by the app."}}
            ).encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    if path.startswith("/close/"):
        code = int(path.rsplit("/", 1)[1])
        try:
            await send({"type": "websocket.close", "code": code})
        except Exception as exc:  # what the server said about the code
            print(f"PROBE close {code}: the server raised {type(exc).__name__}: {exc}", flush=True)
            raise
        return
    while True:  # /echo-size (and /stream): say the size of each text message
        message = await receive()
        if message["type"] == "websocket.disconnect":
            print(f"PROBE disconnect {message.get('code')}", flush=True)
            return
        text = message.get("text")
        if text is not None and len(text) > 100:
            await send({"type": "websocket.send", "text": json.dumps({"received": len(text)})})


# --------------------------------------------------------------------------------------- the client


class Client:
    """A blocking WebSocket client that reports every frame it gets."""

    def __init__(self, port: int, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.ws = ClientProtocol(parse_uri(f"ws://{HOST}:{port}{path}"), max_size=None)
        self.ws.send_request(self.ws.connect())
        self.flush()
        self.response: Response | None = None
        self.frames: list[Frame] = []
        self.eof = False
        self.send_failed = False

    def flush(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.sock.sendall(chunk)

    def pump(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        """Read for up to `seconds` (until the connection ends, or `until()`)."""
        deadline = time.monotonic() + seconds
        while not self.eof and time.monotonic() < deadline and not until():
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                data = b""
            if data:
                self.ws.receive_data(data)
            else:
                self.ws.receive_eof()
                self.eof = True
            for event in self.ws.events_received():
                if isinstance(event, Response):
                    self.response = event
                elif isinstance(event, Frame):
                    self.frames.append(event)
            try:
                self.flush()  # pongs, the closing handshake
            except OSError:
                self.eof = True

    def handshake(self) -> Response:
        self.pump(5, until=lambda: self.response is not None)
        if self.response is None:
            raise RuntimeError("no handshake response")
        return self.response

    def send_text(self, text: str) -> None:
        self.ws.send_text(text.encode())
        try:
            self.flush()
        except OSError:
            self.send_failed = True  # the server stopped reading: what it sent before is still readable

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------------------- the probes


def probe_refuse(port: int) -> str:
    client = Client(port, "/refuse")
    response = client.handshake()
    body = bytes(response.body or b"")[:80].decode(errors="replace")
    client.close()
    return f"{response.status_code} {response.reason_phrase}" + (f", body {body}" if body else ", no body")


def probe_close(port: int, code: int) -> str:
    client = Client(port, f"/close/{code}")
    client.handshake()
    client.pump(3)
    closes = [f for f in client.frames if f.opcode is Opcode.CLOSE]
    client.close()
    if not closes:
        return "no close frame" + (" (connection dropped)" if client.eof else "")
    got = int.from_bytes(closes[0].data[:2], "big") if len(closes[0].data) >= 2 else None
    return str(got)


def probe_size(port: int, size: int) -> str:
    client = Client(port, "/echo-size")
    client.handshake()
    client.send_text("a" * size)
    client.pump(5)
    texts = [json.loads(f.data) for f in client.frames if f.opcode is Opcode.TEXT]
    closes = [f for f in client.frames if f.opcode is Opcode.CLOSE]
    client.close()
    if texts:
        return "received"
    if closes:
        data = closes[0].data
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        return f"closed {code}"
    return "connection dropped, no close frame" if client.eof or client.send_failed else "no answer"


def probe_ping(port: int) -> str:
    client = Client(port, "/echo-size")
    client.handshake()
    streaming_pings = 0
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        client.send_text("x" * 1708)
        client.pump(0.04)
    streaming_pings = sum(1 for f in client.frames if f.opcode is Opcode.PING)
    client.frames.clear()
    client.pump(3.5)
    idle_pings = sum(1 for f in client.frames if f.opcode is Opcode.PING)
    client.ws.send_ping(b"probe")
    client.flush()
    client.frames.clear()
    client.pump(1)
    pong = any(f.opcode is Opcode.PONG and f.data == b"probe" for f in client.frames)
    open_ = client.ws.state is State.OPEN and not client.eof
    client.close()
    answered = "answered" if pong else "NOT answered"
    return f"{streaming_pings} while streaming, {idle_pings} idle; our ping {answered}" + (
        "" if open_ else "; connection closed"
    )


# --------------------------------------------------------------------------------------- the servers


def server_argv(server: str, python: str, port: int, ping: bool) -> list[str]:
    app = "bench.asgi_probe:application"
    if server == "daphne":
        return [
            python,
            "-m",
            "daphne",
            "-b",
            HOST,
            "-p",
            str(port),
            "-v",
            "1",
            *(["--ping-interval", "1"] if ping else []),
            app,
        ]
    return [
        python,
        "-m",
        "uvicorn",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--ws",
        server.removeprefix("uvicorn-"),
        "--lifespan",
        "off",
        "--log-level",
        "info",
        *(["--ws-ping-interval", "1", "--ws-ping-timeout", "5"] if ping else []),
    ]


def with_server(
    server: str, ping: bool, work: Callable[[int], dict[str, str]], log_dir: Path
) -> tuple[dict[str, str], str]:
    python = venv_python()
    port = free_port()
    log = log_dir / f"{server}{'-ping' if ping else ''}.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = start(server_argv(server, python, port, ping), env, log)
    try:
        wait_port(port, proc, log)
        return work(port), tail(log, 200)
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args(argv)
    servers = [s for s in args.servers.split(",") if s]
    log_dir = Path(tempfile.mkdtemp(prefix="rt-asgi-probe-"))
    rows: dict[str, dict[str, str]] = {}
    for server in servers:

        def probes(port: int) -> dict[str, str]:
            row = {"refused upgrade": probe_refuse(port)}
            for code in CLOSE_CODES:
                row[f"close {code}"] = probe_close(port, code)
            for size in SIZES:
                row[f"message of {size:,} bytes"] = probe_size(port, size)
            return row

        row, log = with_server(server, False, probes, log_dir)
        raised = sorted({line.split("PROBE ", 1)[1] for line in log.splitlines() if "PROBE close" in line})
        row["server said"] = "; ".join(raised) or "-"
        pings, _ = with_server(server, True, lambda port: {"pings (interval 1 s)": probe_ping(port)}, log_dir)
        row.update(pings)
        rows[server] = row
        print(f"{server}:", flush=True)
        for key, value in row.items():
            print(f"  {key:32} {value}", flush=True)
    print(f"\nServer logs in {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
