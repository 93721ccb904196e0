"""The relay's Origin check and its settings' checks (relay/origins.py), in-process.

The end-to-end tests open the relay from real pages and clients; here each case of the rule is named, so
that a change to it shows which browsers it lets in or keeps out."""

from __future__ import annotations

from typing import Any

import pytest

from django_rt_sessions.relay.origins import origin_allowed, origin_problem, relay_url_problem

pytestmark = pytest.mark.no_database


@pytest.fixture
def allowed_origins(settings: Any) -> None:
    settings.RT_SESSIONS = {"RELAY_ALLOWED_ORIGINS": ["https://app.example.com", "http://localhost:3000"]}


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        # Not a browser (an SDK, a server): the ticket alone authenticates it.
        (None, "www.example.com", True),
        # The site's own pages, either scheme (TLS may end at a proxy), any case.
        ("https://www.example.com", "www.example.com", True),
        ("http://www.example.com", "www.example.com", True),
        ("HTTPS://WWW.EXAMPLE.COM", "www.example.com", True),
        # A port in the Host header must match the page's (its default port filled in).
        ("https://www.example.com", "www.example.com:443", True),
        ("https://www.example.com:8443", "www.example.com:443", False),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", False),
        # Other sites, look-alikes and opaque origins.
        ("https://evil.example.net", "www.example.com", False),
        ("https://www.example.com.evil.net", "www.example.com", False),
        ("https://evilwww.example.com", "www.example.com", False),
        ("https://sub.www.example.com", "www.example.com", False),
        ("https://evil.net/www.example.com", "www.example.com", False),
        ("null", "www.example.com", False),
        ("file://", "www.example.com", False),
        ("not an origin", "www.example.com", False),
        ("https://www.example.com:99999", "www.example.com", False),
        # RELAY_ALLOWED_ORIGINS, the default port filled in on both sides.
        ("https://app.example.com", "www.example.com", True),
        ("https://app.example.com:443", "www.example.com", True),
        ("http://app.example.com", "www.example.com", False),
        ("http://localhost:3000", "www.example.com", True),
        ("http://localhost:3001", "www.example.com", False),
        # No Host header (or a malformed one): only the allowed list decides.
        ("https://www.example.com", None, False),
        ("https://app.example.com", "www.example.com:notaport", True),
    ],
)
def test_which_pages_may_open_the_relay(
    allowed_origins: None, origin: str | None, host: str | None, allowed: bool
) -> None:
    assert origin_allowed(origin, host) is allowed


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("wss://www.example.com/rt/relay", None),
        ("ws://127.0.0.1:8000/rt/relay", None),
        ("ws://www.example.com/rt/relay", "ws:// (unencrypted) is only for loopback; use wss://"),
        ("https://www.example.com/rt/relay", "not an absolute wss:// URL"),
        ("/rt/relay", "not an absolute wss:// URL"),
        ("wss://www.example.com/rt/relay?x=1", "it must not have a query or a fragment"),
        (["wss://www.example.com"], "not a string"),
    ],
)
def test_relay_url_problems(value: Any, problem: str | None) -> None:
    found = relay_url_problem(value)
    assert found == problem if problem is None else found is not None and found.startswith(problem)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://app.example.com", None),
        ("http://localhost:3000", None),
        ("app.example.com", "not an origin like https://app.example.com"),
        ("wss://app.example.com", "not an origin like https://app.example.com"),
        ("https://app.example.com/", "an origin has a scheme, a host and a port only"),
        ("https://user@app.example.com", "an origin has a scheme, a host and a port only"),
        (3000, "not a string"),
    ],
)
def test_allowed_origin_problems(value: Any, problem: str | None) -> None:
    assert origin_problem(value) == problem
