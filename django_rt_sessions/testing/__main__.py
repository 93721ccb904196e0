"""Run the OpenAI stand-in in the foreground: ``python -m django_rt_sessions.testing [--port 8765]``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from . import extras

PROG = "python -m django_rt_sessions.testing"
# The modules of the `testing` extra (and what they pull in) whose absence means "install the extra".
TESTING_EXTRA_MODULES = frozenset({"aiohttp", "jsonschema", "referencing", "multidict", "yarl"})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve a local stand-in for OpenAI's Realtime transcription token endpoints, its "
        "realtime WebSocket and its WebRTC calls.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind, 0 for any (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key", default=None, help="the one API key accepted (default: sk-standin-test-key)"
    )
    parser.add_argument(
        "--beta-disabled",
        action="store_true",
        help="answer the beta transcription_sessions path with 400 beta_api_shape_disabled",
    )
    parser.add_argument(
        "--speech",
        choices=("auto", "whisper", "pocketsphinx", "none"),
        default="auto",
        help="the speech engine: whisper (the standin-speech extra), pocketsphinx (standin-speech-lite), "
        "none, or auto: Whisper when installed, else PocketSphinx; auto follows the RT_STANDIN_SPEECH "
        "environment variable when it is set (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    try:
        from .server import DEFAULT_API_KEY, OpenAIStandIn, webrtc_unavailable
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in TESTING_EXTRA_MODULES:
            raise
        print(
            f"{PROG} needs the testing extra (missing: {missing}): {extras.install_hint(extras.TESTING)}",
            file=sys.stderr,
        )
        return 2

    # The access log (one line per request: address, request line, status, size; never headers or bodies).
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    api_key = args.api_key or DEFAULT_API_KEY
    standin = OpenAIStandIn(
        host=args.host,
        port=args.port,
        api_key=api_key,
        beta_disabled=args.beta_disabled,
        log_requests=True,
        speech=None if args.speech == "none" else args.speech,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    # SIGTERM too, so a supervisor (or a test's terminate()) stops it as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, on_signal)
    standin.start()
    try:
        print(f"OpenAI stand-in listening on {standin.url}", flush=True)
        print(f"  UPSTREAM openai / openai-beta: BASE_URL={standin.base_url}", flush=True)
        print(f"  UPSTREAM azure:                BASE_URL={standin.azure_base_url}", flush=True)
        shown_key = standin.api_key if standin.api_key == DEFAULT_API_KEY else "<the --api-key value>"
        print(f"  API_KEY={shown_key}", flush=True)
        print(f"  Realtime WebSocket: {standin.realtime_url}", flush=True)
        if standin.speech_engine is not None:
            print(f"  Transcription: {standin.speech_engine.description}", flush=True)
        else:
            print(f"  Transcription is off: {standin.speech_problem}", flush=True)
        webrtc_problem = webrtc_unavailable()
        if webrtc_problem is None:
            print(f"  WebRTC calls: {standin.webrtc_url}", flush=True)
        else:
            print(f"  WebRTC calls are off: {webrtc_problem}", flush=True)
        # Load the speech model now rather than when the first session opens.
        warm_up = getattr(standin.speech_engine, "warm_up", None)
        if warm_up is not None:
            warm_up()
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
        print("OpenAI stand-in stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
