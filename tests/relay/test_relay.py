"""The relay end to end (docs/relay.md): a ticket minted through the API, the official openai SDK and a
plain WebSocket client on the site's relay, the stand-in as upstream (checked on its side)."""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from openai import OpenAI
from websockets.exceptions import InvalidStatus

from django_rt_sessions.testing.audio import base64_frames

from ..realtime_support import COFFEE, COMPLETED, DOOR, WORDS, has_words, speech
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

pytestmark = pytest.mark.no_database


def sdk_client(site: RelaySite, ticket: str) -> OpenAI:
    """The official SDK pointed at the relay as at OpenAI: base_url https://<site>/<prefix>/relay."""
    return OpenAI(api_key=ticket, base_url=f"{site.url}/rt/relay", max_retries=0)


def refusal(site: RelaySite, ticket: str, **options: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as caught:
        site.open(ticket, **options).close()
    response = caught.value.response
    return response.status_code, json.loads(response.body or b"{}")


def test_the_openai_sdk_transcribes_through_the_relay(site: RelaySite, openai_standin: Any) -> None:
    body = site.mint(site.login("user0"), {"preset": "relay-dictation"})
    ticket = body["client_secret"]["value"]
    assert body["connect"]["websocket_url"] == site.relay_url  # ws:// on loopback
    sent = recorded = 0
    transcripts = []
    with sdk_client(site, ticket).realtime.connect(
        model="gpt-live-transcribe", extra_query={"intent": "transcription"}
    ) as connection:
        created = connection.recv()
        assert created.type == "session.created"
        for wav in (COFFEE, DOOR):
            for frame in base64_frames(speech(wav)):
                connection.input_audio_buffer.append(audio=frame)
                sent += len(base64.b64decode(frame))
                recorded += len(frame) * 3 // 4  # the stand-in's count (padding included)
            connection.input_audio_buffer.commit()
            for event in connection:
                if event.type == COMPLETED:
                    transcripts.append(event.transcript)  # type: ignore[union-attr]
                    break
    assert has_words(transcripts[0], WORDS[COFFEE]) and has_words(transcripts[1], WORDS[DOOR]), transcripts

    # The stand-in saw the site's API key, the planned session, the audio, and its socket closed.
    (upstream,) = openai_standin.realtime
    assert upstream.credential == "api_key"
    update = upstream.received[0]
    assert update["type"] == "session.update"
    assert update["session"]["audio"]["input"]["transcription"] == {
        "model": "gpt-live-transcribe",
        "language": "en",
    }
    assert sum(e.get("audio_bytes", 0) for e in upstream.received) == recorded
    assert upstream.wait_closed() and upstream.close_code == 1000

    row = site.wait_row(body["id"])
    assert row["end_reason"] == "client_closed" and row["username"] == "user0"
    assert row["audio_seconds"] == pytest.approx(sent / 48_000, rel=0.01)
    # The provider's own count (the `usage` of each completed turn) is summed beside the relay's.
    usage = sum(e["usage"]["seconds"] for e in upstream.sent if e["type"] == COMPLETED)
    assert row["turns"] == 2 and row["upstream_audio_seconds"] == pytest.approx(usage) and usage > 0
    assert row["token_request_id"] is not None

    # The ticket opened its one session: presented again, it is refused at the upgrade like a used key.
    status, refused = refusal(site, ticket)
    assert (status, refused["error"]["code"]) == (401, "ticket_used")


def test_forged_expired_and_missing_tickets_are_refused_at_the_upgrade(
    site: RelaySite, openai_standin: Any
) -> None:
    genuine = site.mint(site.login("user1"), {"preset": "relay-dictation"})
    ticket = genuine["client_secret"]["value"]
    forged = "rts_" + "".join("A" if c != "A" else "B" for c in ticket[4:])
    assert refusal(site, forged)[1]["error"]["code"] == "invalid_api_key"
    assert refusal(site, forged, browser_style=True)[0] == 401
    with pytest.raises(InvalidStatus) as caught:
        site.open("", browser_style=False).close()
    assert caught.value.response.status_code == 401
    with sqlite3.connect(site.database_path) as db:  # its expiry passes
        db.execute("UPDATE django_rt_sessions_relayticket SET expires_at = '2000-01-01 00:00:00'")
    status, body = refusal(site, ticket)
    assert (status, body["error"]["code"]) == (401, "ticket_expired")
    # A page on another origin is refused too, before its ticket is even looked at.
    other = site.mint(site.login("user1"), {"preset": "relay-dictation"})["client_secret"]["value"]
    status, body = refusal(site, other, browser_style=True, origin="https://evil.example")  # type: ignore[arg-type]
    assert (status, body["error"]["code"]) == (403, "origin_not_allowed")
    with site.open(other, browser_style=True, origin=site.url) as ws:  # type: ignore[arg-type]
        assert receive(ws)["type"] == "session.created"
    assert openai_standin.realtime and all(r.wait_closed() for r in openai_standin.realtime)
    assert len(openai_standin.realtime) == 1  # only the accepted one reached the upstream


def test_fifty_parallel_redemptions_of_one_ticket_open_exactly_one_session(
    site: RelaySite, openai_standin: Any
) -> None:
    body = site.mint(site.login("user2"), {"preset": "relay-dictation"})
    ticket = body["client_secret"]["value"]
    barrier = threading.Barrier(50, timeout=30)

    def redeem(_: int) -> str:
        barrier.wait()
        try:
            ws = site.open(ticket, open_timeout=30)
        except InvalidStatus as refused:
            return json.loads(refused.response.body)["error"]["code"]
        with ws:
            return str(receive(ws)["type"])

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(redeem, range(50)))
    assert sorted(set(outcomes)) == ["session.created", "ticket_used"]
    assert outcomes.count("session.created") == 1
    assert len(site.rows(username="user2")) == 1
    assert len(openai_standin.realtime) == 1


def test_the_preset_is_enforced_and_the_session_goes_on(site: RelaySite, openai_standin: Any) -> None:
    """Refused events reach the client as errors and never the stand-in; an allowed override does."""
    body = site.mint(site.login("user3"), {"preset": "relay-meetings"})
    with site.open(body["client_secret"]["value"]) as ws:
        assert opened(ws)["session"]["audio"]["input"]["transcription"]["language"] == "en"
        model_change = {"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
        send(
            ws,
            {
                "type": "session.update",
                "event_id": "u1",
                "session": {"type": "transcription", **model_change},
            },
        )
        silence_change = {"audio": {"input": {"turn_detection": {"silence_duration_ms": 200}}}}
        send(ws, {"type": "session.update", "event_id": "u2", "session": silence_change})
        send(ws, {"type": "transcription_session.update", "event_id": "u3", "session": {"include": []}})
        send(ws, {"type": "response.create", "event_id": "u4"})
        ws.send("{not json")
        ws.send(b"\x00\x01binary")
        ws.send('{"type": "input_audio_buffer.append", "audio": "' + "A" * (2 * 1024 * 1024) + '"}')
        send(
            ws,
            {
                "type": "session.update",
                "event_id": "u5",
                "session": {"audio": {"input": {"transcription": {"language": "French"}}}},
            },
        )
        refused = [receive(ws)["error"] for _ in range(8)]
        assert [(e["code"], e["event_id"]) for e in refused] == [
            ("event_not_allowed", "u1"),
            ("event_not_allowed", "u2"),
            ("event_not_allowed", "u3"),
            ("event_not_allowed", "u4"),
            ("event_not_allowed", None),
            ("event_not_allowed", None),
            ("event_not_allowed", None),
            ("invalid", "u5"),
        ]
        assert "input_audio_transcription.model" in refused[0]["message"]
        assert "'French' is not an ISO-639-1 code" in refused[7]["message"]
        # An override the preset allows is forwarded: the stand-in's session changes.
        send(
            ws,
            {
                "type": "session.update",
                "event_id": "u6",
                "session": {"audio": {"input": {"transcription": {"language": "fr"}}}},
            },
        )
        updated = next_event(ws, "session.updated")
        assert updated["session"]["audio"]["input"]["transcription"]["language"] == "fr"
        assert updated["session"]["audio"]["input"]["transcription"]["model"] == "gpt-transcribe"
        # And the session goes on: speech is transcribed (server VAD ends the turn).
        for frame in base64_frames(speech(DOOR)):
            send(ws, {"type": "input_audio_buffer.append", "audio": frame})
        assert next_event(ws, COMPLETED)["transcript"]

    (upstream,) = openai_standin.realtime
    updates = [e for e in upstream.received if e["type"] == "session.update"]
    assert len(updates) == 2  # the planned session, then the allowed override: nothing refused got there
    assert all(u["session"]["audio"]["input"]["transcription"]["model"] == "gpt-transcribe" for u in updates)
    assert {e["type"] for e in upstream.received} == {"session.update", "input_audio_buffer.append"}
    assert upstream.wait_closed() and upstream.close_code == 1000


def run_session(site: RelaySite, user: str, preset: str, feed: Any) -> dict[str, Any]:
    """A session of `preset` for `user` fed by `feed(ws)`; its events, close code and row."""
    body = site.mint(site.login(user), {"preset": preset})
    with site.open(body["client_secret"]["value"]) as ws:
        opened(ws)
        feed(ws)
        events, code = events_until_closed(ws, timeout=30)
    return {"errors": errors(events), "code": code, "row": site.wait_row(body["id"])}


def test_the_relay_ends_sessions_at_their_limits(site: RelaySite, openai_standin: Any) -> None:
    """Four sessions at once, each reaching one end: audio faster than real time past max_session_seconds
    (10 s), the wall clock past it, idle (5 s), the day's minutes (0.1 = 6 s) mid-session."""
    import time

    from django_rt_sessions.testing.audio import silence

    def too_much_audio(ws: Any) -> None:
        append_until_closed(ws, silence(12_000))

    def trickle(ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        # An append every 2 s keeps it from idling until the wall clock ends it (the relay closes first).
        with contextlib.suppress(ConnectionClosed):
            for _ in range(8):
                append_until_closed(ws, silence(100))
                time.sleep(2)

    def idle(ws: Any) -> None:
        append_until_closed(ws, silence(200))

    def minutes(ws: Any) -> None:
        append_until_closed(ws, silence(8_000))

    cases = {
        "session_limit (audio)": ("user4", "relay-short", too_much_audio),
        "session_limit (clock)": ("user5", "relay-short", trickle),
        "idle": ("user6", "relay-short", idle),
        "quota_exceeded": ("user7", "relay-minutes", minutes),
    }
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {name: pool.submit(run_session, site, *case) for name, case in cases.items()}
        results = {name: future.result() for name, future in futures.items()}

    audio, clock, idled, quota = (results[name] for name in cases)
    assert (audio["errors"], audio["code"], audio["row"]["end_reason"]) == (
        ["session_limit_reached"],
        1000,
        "session_limit",
    )
    assert audio["row"]["audio_seconds"] == pytest.approx(10.0)  # nothing past the limit was forwarded
    assert (clock["errors"], clock["code"], clock["row"]["end_reason"]) == (
        ["session_limit_reached"],
        1000,
        "session_limit",
    )
    assert clock["row"]["audio_seconds"] < 1
    assert (idled["errors"], idled["code"], idled["row"]["end_reason"]) == (["idle_timeout"], 1000, "idle")
    assert (quota["errors"], quota["code"], quota["row"]["end_reason"]) == (
        ["quota_exceeded"],
        1008,
        "quota_exceeded",
    )
    assert quota["row"]["audio_seconds"] == pytest.approx(6.0)
    # Every upstream socket was closed by the relay, on the stand-in's side.
    assert len(openai_standin.realtime) == 4
    assert all(r.wait_closed() and r.close_code == 1000 for r in openai_standin.realtime)
    # The day's minutes are used up: the next ticket is refused at the API.
    login = site.login("user7")
    import requests

    from ..production_support import transcribe

    with requests.Session() as http:
        refused = transcribe(http, site.url, login, body={"preset": "relay-minutes"})
    assert (refused.status, refused.code) == (429, "quota_exceeded")


def test_an_upstream_drop_ends_the_session_with_1011(site: RelaySite, openai_standin: Any) -> None:
    from django_rt_sessions.testing import DropSocket

    openai_standin.enqueue(DropSocket(after_events=2))
    result = run_session(site, "user8", "relay-dictation", lambda ws: append_until_closed(ws, speech(COFFEE)))
    assert (result["errors"], result["code"], result["row"]["end_reason"]) == (
        ["upstream_error"],
        1011,
        "upstream_error",
    )
    (upstream,) = openai_standin.realtime
    assert upstream.wait_closed()


def test_g711_audio_is_metered_at_8000_bytes_a_second(site: RelaySite, openai_standin: Any) -> None:
    body = site.mint(site.login("user9"), {"preset": "relay-phone"})
    assert body["input_audio_format"] == "g711_ulaw"
    with site.open(body["client_secret"]["value"]) as ws:
        opened(ws)
        for _ in range(150):  # 3 s of μ-law in 20 ms frames (160 bytes each)
            send(
                ws,
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(range(160))).decode()},
            )
    assert site.wait_row(body["id"])["audio_seconds"] == pytest.approx(3.0, rel=0.01)


def test_staff_end_a_session_from_the_admin(site: RelaySite, openai_standin: Any) -> None:
    import time

    body = site.mint(site.login("user10"), {"preset": "relay-dictation"})
    with site.open(body["client_secret"]["value"]) as ws:
        opened(ws)
        append_until_closed(ws, speech(COFFEE))
        assert "Asked 1 session to end" in site.end_from_admin([body["id"]])
        asked = time.monotonic()
        events, code = events_until_closed(ws, timeout=2)  # "within 2 s, wherever it runs"
        assert time.monotonic() - asked <= 2
    assert ("session_ended" in errors(events), code) == (True, 1000)
    assert site.wait_row(body["id"])["end_reason"] == "ended_by_staff"
    (upstream,) = openai_standin.realtime
    assert upstream.wait_closed() and upstream.close_code == 1000
