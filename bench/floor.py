"""The floor of the load benchmark: a minimal WSGI token forwarder (no Django, no audit, no rate limit).

    FLOOR_UPSTREAM_URL=http://127.0.0.1:8790/v1 gunicorn -c example_project/gunicorn.conf.py bench.floor

Every POST reads the body, makes the same upstream call as the app (`POST {base}/realtime/client_secrets`
with the GA body of the benchmark's preset, Bearer key, a pooled keep-alive `requests.Session` per thread,
the same timeouts) and answers 201 with the upstream's JSON. It is what any Python token route must do at
least, served by the same gunicorn configuration as the app, so ours/floor measures what Django, DRF, the
audit row and the rate limits cost.
"""

from __future__ import annotations

import json
import os
import threading

import requests
from requests.adapters import HTTPAdapter

BASE_URL = os.environ.get("FLOOR_UPSTREAM_URL", "http://127.0.0.1:8790/v1").rstrip("/")
API_KEY = os.environ.get("OPENAI_API_KEY", "sk-bench")
URL = f"{BASE_URL}/realtime/client_secrets"
BODY = {
    "expires_after": {"anchor": "created_at", "seconds": 60},
    "session": {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "noise_reduction": {"type": "near_field"},
                "transcription": {"model": "gpt-transcribe", "language": "en", "prompt": ""},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
            }
        },
    },
}
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "Authorization": f"Bearer {API_KEY}",
}

_local = threading.local()


def pooled_session() -> requests.Session:
    """This thread's keep-alive `requests.Session` (one per thread: it is not documented as thread-safe)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.trust_env = False  # no proxy/netrc lookups per request: a minimal forwarder
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=4)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def application(environ, start_response):  # type: ignore[no-untyped-def]
    if environ["REQUEST_METHOD"] != "POST":
        start_response("405 Method Not Allowed", [("Content-Type", "application/json")])
        return [b'{"detail":"Method not allowed.","code":"method_not_allowed"}']
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(min(length, 8192))
    try:
        upstream = pooled_session().post(
            URL, json=BODY, headers=HEADERS, timeout=(3.05, 10), allow_redirects=False
        )
        status = "201 Created" if upstream.status_code == 200 else "502 Bad Gateway"
        body = upstream.content
    except requests.RequestException:
        status, body = (
            "503 Service Unavailable",
            b'{"detail":"Upstream unavailable.","code":"upstream_unavailable"}',
        )
    if status.startswith("201"):
        data = json.loads(body)
        body = json.dumps(
            {"client_secret": {"value": data["value"], "expires_at": data["expires_at"]}}
        ).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
