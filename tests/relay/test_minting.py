"""Minting a relay ticket: the same service, limits and audit row as a key, no upstream call, and 429
quota_exceeded once the day's audio minutes are used (docs/relay.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from django_rt_sessions.issuing.service import fingerprint
from django_rt_sessions.issuing.tickets import redeem
from django_rt_sessions.models import RelaySession, RelayTicket, SessionPreset, TokenRequest

from ..conftest import MINIMAL_SESSION, post, set_rt

pytestmark = pytest.mark.django_db

RELAY_SESSION = {
    "input_audio_format": "pcm16",
    "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "en"},
    "turn_detection": None,
}


@pytest.fixture
def relay_preset(db: Any) -> SessionPreset:
    return SessionPreset.objects.create(
        name="relayed",
        session=RELAY_SESSION,
        expires_after_seconds=30,
        overridable=["language"],
        relay=True,
        daily_audio_minutes=1.5,
    )


def test_a_relay_preset_gets_a_ticket_its_audit_row_and_no_upstream_call(
    api: Client, user: Any, relay_preset: SessionPreset, upstream: Any
) -> None:
    response = post(api, {"preset": "relayed", "language": "fr"})
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    ticket = body["client_secret"]["value"]
    assert ticket.startswith("rts_") and len(ticket) == 47  # 256 random bits
    assert body["connect"] == {
        "api": "relay",
        "webrtc_url": None,
        # The test client's host is not loopback: wss only.
        "websocket_url": "wss://testserver/rt/relay/realtime?intent=transcription",
        "transports": ["websocket"],
        "client_turns": {"silence_duration_ms": 600, "max_turn_ms": 15000},
    }
    assert body["input_audio_transcription"] == {"model": "gpt-live-transcribe", "language": "fr"}
    assert body["turn_detection"] is None and body["preset"] == "relayed"
    assert upstream.requests == []  # no upstream call

    row = TokenRequest.objects.get()
    assert (row.outcome, row.status_code, row.user, row.preset) == ("issued", 201, user, relay_preset)
    assert row.secret_fingerprint == hashlib.sha256(ticket.encode()).hexdigest()
    assert abs(row.expires_at.timestamp() - body["client_secret"]["expires_at"]) < 1
    assert ticket not in str(TokenRequest.objects.values().get())

    stored = RelayTicket.objects.get()
    assert (stored.session_id, stored.user, stored.preset, stored.token_request) == (
        body["id"],
        user,
        relay_preset,
        row,
    )
    assert stored.session["input_audio_transcription"]["language"] == "fr"  # the planned session
    assert ticket not in str(RelayTicket.objects.values().get())


def test_relay_url_and_loopback(api: Client, relay_preset: SessionPreset, settings: Any) -> None:
    local = post(api, {"preset": "relayed"}, HTTP_HOST="127.0.0.1:8000").json()
    assert local["connect"]["websocket_url"] == "ws://127.0.0.1:8000/rt/relay/realtime?intent=transcription"
    set_rt(settings, RELAY_URL="wss://relay.example.com/rt/relay/")
    body = post(api, {"preset": "relayed"}).json()
    assert (
        body["connect"]["websocket_url"] == "wss://relay.example.com/rt/relay/realtime?intent=transcription"
    )


def test_the_overrides_and_limits_of_a_key_apply_to_a_ticket(
    api: Client, relay_preset: SessionPreset, settings: Any
) -> None:
    assert post(api, {"preset": "relayed", "prompt": "x"}).json()["code"] == "override_not_allowed"
    set_rt(settings, USER_RATE="1/m")
    assert post(api, {"preset": "relayed"}).status_code == 201
    refused = post(api, {"preset": "relayed"})
    assert (refused.status_code, refused.json()["code"]) == (429, "rate_limited")
    assert list(TokenRequest.objects.order_by("id").values_list("outcome", flat=True)) == [
        "invalid",
        "issued",
        "rate_limited",
    ]


def test_used_audio_minutes_refuse_a_ticket_until_midnight_utc(
    api: Client, user: Any, relay_preset: SessionPreset
) -> None:
    # Yesterday's minutes do not count; today's do, an open session's included.
    yesterday = timezone.now() - dt.timedelta(days=1)
    RelaySession.objects.create(
        id="relay_old",
        user=user,
        preset=relay_preset,
        audio_seconds=500,
        started_at=yesterday,
        ended_at=yesterday,
    )
    RelaySession.objects.create(
        id="relay_a", user=user, preset=relay_preset, audio_seconds=60, ended_at=timezone.now()
    )
    assert post(api, {"preset": "relayed"}).status_code == 201
    RelaySession.objects.create(id="relay_b", user=user, preset=relay_preset, audio_seconds=30)  # open
    refused = post(api, {"preset": "relayed"})
    assert (refused.status_code, refused.json()["code"]) == (429, "quota_exceeded")
    assert "1.5 minutes" in refused.json()["detail"]
    tomorrow = (timezone.now().astimezone(dt.timezone.utc) + dt.timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    assert abs(int(refused["Retry-After"]) - (tomorrow - timezone.now()).total_seconds()) < 5
    row = TokenRequest.objects.latest("id")
    assert (row.outcome, row.error_code, row.secret_fingerprint) == ("rate_limited", "quota_exceeded", "")
    assert RelayTicket.objects.count() == 1


def test_a_ticket_is_redeemed_once_and_not_after_it_expires(api: Client, relay_preset: SessionPreset) -> None:
    tickets = [post(api, {"preset": "relayed"}).json()["client_secret"]["value"] for _ in range(2)]
    assert redeem("rts_" + "A" * 43, fingerprint) == "invalid_api_key"  # forged
    assert redeem("ek_" + "a" * 32, fingerprint) == "invalid_api_key"
    assert redeem(None, fingerprint) == "invalid_api_key"
    redeemed = redeem(tickets[0], fingerprint)
    assert isinstance(redeemed, RelayTicket) and redeemed.redeemed_at is not None
    assert redeem(tickets[0], fingerprint) == "ticket_used"
    RelayTicket.objects.filter(redeemed_at__isnull=True).update(expires_at=timezone.now())
    assert redeem(tickets[1], fingerprint) == "ticket_expired"


def test_relay_limits_on_a_preset_without_relay_are_refused_in_the_admin(admin_client: Client) -> None:
    data = {
        "name": "plain",
        "active": "on",
        "expires_after_seconds": 60,
        "model": "gpt-live-transcribe",
        "turn_detection": "off",
        "max_session_seconds": 600,
    }
    response = admin_client.post("/admin/django_rt_sessions/sessionpreset/add/", data)
    assert response.status_code == 200
    assert "Only a relay preset enforces max_session_seconds" in response.content.decode()
    data.update(relay="on", daily_audio_minutes="2.5")
    response = admin_client.post("/admin/django_rt_sessions/sessionpreset/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    saved = SessionPreset.objects.get(name="plain")
    assert (
        saved.relay,
        saved.max_session_seconds,
        saved.daily_audio_minutes,
        saved.idle_timeout_seconds,
    ) == (
        True,
        600,
        2.5,
        60,
    )
    page = admin_client.get(f"/admin/django_rt_sessions/sessionpreset/{saved.pk}/change/").content.decode()
    assert 'name="max_session_seconds" value="600"' in page


def test_import_and_export_keep_relay_options(relay_preset: SessionPreset) -> None:
    from django_rt_sessions.presets.files import export_presets, import_presets

    SessionPreset.objects.create(name="plain", session=MINIMAL_SESSION)
    exported = {p["name"]: p for p in export_presets()}
    assert "relay" not in exported["plain"] and "max_session_seconds" not in exported["plain"]
    assert {k: exported["relayed"][k] for k in ("relay", "max_session_seconds", "daily_audio_minutes")} == {
        "relay": True,
        "max_session_seconds": 900,
        "daily_audio_minutes": 1.5,
    }
    exported["relayed"]["max_concurrent_sessions"] = 3
    import_presets(list(exported.values()))
    assert SessionPreset.objects.get(name="relayed").max_concurrent_sessions == 3


WITHOUT_CHANNELS = """
import sys
sys.modules["channels"] = None  # a site without the relay extra: `import channels` fails
import django; django.setup()
from django.test.utils import setup_test_environment; setup_test_environment()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("check")
call_command("rt_sessions_relay_sweep")
from django.contrib.auth.models import User
from django_rt_sessions.models import SessionPreset
session = {"input_audio_transcription": {"model": "gpt-live-transcribe"}}
SessionPreset.objects.create(name="p", session=session, relay=True)
admin = User.objects.create_superuser("staff", password="pw")
from django.test import Client
client = Client(); client.force_login(admin)
pages = [client.get(url).status_code for url in ("/rt/presets/", "/admin/django_rt_sessions/relaysession/",
         "/admin/django_rt_sessions/sessionpreset/1/change/")]
ticket = client.post("/rt/transcription-sessions/", '{"preset": "p"}', content_type="application/json").json()
loaded = sorted(m for m in ("channels", "websockets", "uvicorn", "daphne") if sys.modules.get(m) is not None)
print(pages, ticket["connect"]["api"], loaded)
"""


@pytest.mark.no_database
def test_a_site_without_the_relay_extra_never_imports_channels() -> None:
    """Settings, checks, the API (a relay ticket included), the admin and the sweep command load none of
    Channels, websockets or an ASGI server: only the relay's consumer does."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OPENAI_", "RT_"))}
    environ.update(DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(root))
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", WITHOUT_CHANNELS],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[200, 200, 200] relay []"
