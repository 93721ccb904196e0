"""The relay under each upstream shape (Azure: a key minted server-side; the beta shape's update) and under
daphne, whose differences from uvicorn the deployment guide names (docs/deployment.md#asgi-servers):
every refused upgrade answered 403 without a body, close codes only 1000 and 3000-4999 (4008 and 4011 stand
for 1008 and 1011), and messages over 1 MiB cut by the server itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from django_rt_sessions.testing.audio import base64_frames, silence

from ..realtime_support import COFFEE, COMPLETED, WORDS, has_words, speech
from ..relay_support import (
    RelaySite,
    append_until_closed,
    errors,
    events_until_closed,
    next_event,
    opened,
    receive,
    send,
)
from .conftest import check_site_log, start_site

pytestmark = pytest.mark.no_database


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory, openai_standin_server: Any, prepared_database: Path
) -> Iterator[dict[str, RelaySite]]:
    started: dict[str, RelaySite] = {}
    try:
        for name, options in {
            "azure": {"upstream": "azure"},
            "openai-beta": {"upstream": "openai-beta"},
            "daphne": {"server": "daphne"},
        }.items():
            started[name] = start_site(
                tmp_path_factory, openai_standin_server, prepared_database, name=name, **options
            )
        yield started
    finally:
        for site in started.values():
            site.stop()
    for site in started.values():
        check_site_log(site, openai_standin_server)


@pytest.mark.parametrize("shape", ["azure", "openai-beta"])
def test_each_upstream_shape_transcribes_through_the_relay(
    sites: dict[str, RelaySite], openai_standin: Any, shape: str
) -> None:
    site = sites[shape]
    body = site.mint(site.login("user0"), {"preset": "relay-dictation"})
    with site.open(body["client_secret"]["value"]) as ws:
        if shape == "azure":  # the key minted server-side carries the session: no update
            created = receive(ws)
            assert created["session"]["audio"]["input"]["transcription"]["language"] == "en"
        else:
            opened(ws, "transcription_session.updated")
        # The allowed override, sent by the client in the beta vocabulary, reaches the upstream in its own.
        send(
            ws,
            {
                "type": "transcription_session.update",
                "session": {"input_audio_transcription": {"model": "gpt-live-transcribe", "language": "de"}},
            },
        )
        updated = next_event(
            ws, "transcription_session.updated" if shape == "openai-beta" else "session.updated"
        )
        assert updated["session"]["audio"]["input"]["transcription"]["language"] == "de"
        for frame in base64_frames(speech(COFFEE)):
            send(ws, {"type": "input_audio_buffer.append", "audio": frame})
        send(ws, {"type": "input_audio_buffer.commit"})
        assert has_words(next_event(ws, COMPLETED)["transcript"], WORDS[COFFEE])
    (upstream,) = openai_standin.realtime
    if shape == "azure":
        assert upstream.credential == "ephemeral_key" and upstream.path.startswith("/openai/v1/")
        assert [r.shape for r in openai_standin.requests if r.shape != "realtime"] == ["azure"]
        assert upstream.received[0]["type"] == "session.update"  # the override, in the GA shape
    else:
        assert upstream.credential == "api_key"
        kinds = [e["type"] for e in upstream.received if e["type"] != "input_audio_buffer.append"]
        assert kinds == [
            "transcription_session.update",
            "transcription_session.update",
            "input_audio_buffer.commit",
        ]
        assert upstream.received[1]["session"]["input_audio_transcription"]["language"] == "de"
    assert upstream.wait_closed() and upstream.close_code == 1000


def test_daphne_refuses_with_403_and_closes_with_4008_and_4011(
    sites: dict[str, RelaySite], openai_standin: Any
) -> None:
    from django_rt_sessions.testing import DropSocket

    site = sites["daphne"]
    with pytest.raises(InvalidStatus) as caught:
        site.open("rts_" + "A" * 43).close()
    assert caught.value.response.status_code == 403  # daphne answers every refusal 403, without a body

    # The day's minutes (0.1 = 6 s) run out mid-session: quota_exceeded, then 4008 for 1008.
    body = site.mint(site.login("user1"), {"preset": "relay-minutes"})
    with site.open(body["client_secret"]["value"]) as ws:
        opened(ws)
        append_until_closed(ws, silence(8_000))  # the relay closes after 6 s of it
        events, code = events_until_closed(ws)
    assert (errors(events), code) == (["quota_exceeded"], 4008)
    assert site.wait_row(body["id"])["end_reason"] == "quota_exceeded"

    # An upstream failure: its error, then 4011 for 1011.
    openai_standin.enqueue(DropSocket(after_events=2))
    body = site.mint(site.login("user2"), {"preset": "relay-dictation"})
    with site.open(body["client_secret"]["value"]) as ws:
        events, code = events_until_closed(ws)
    assert (errors(events), code) == (["upstream_error"], 4011)

    # A frame over 1 MiB: daphne drops the connection itself; nothing of it reaches the upstream.
    body = site.mint(site.login("user3"), {"preset": "relay-dictation"})
    with site.open(body["client_secret"]["value"]) as ws:
        opened(ws)
        with pytest.raises(ConnectionClosed):
            ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (2 * 1024 * 1024)}))
            receive(ws, timeout=10)
    assert site.wait_row(body["id"])["end_reason"] == "client_closed"
    assert all(r.wait_closed() for r in openai_standin.realtime)
    assert not any(e.get("audio_bytes", 0) > 1024 * 1024 for r in openai_standin.realtime for e in r.received)
