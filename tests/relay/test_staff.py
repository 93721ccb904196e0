"""The staff side of the relay: the admin's list and links, the "End session" action and its permission,
the 30-day minutes, the sweep command, and the relay's signals (docs/relay.md#staff)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from django_rt_sessions import signals
from django_rt_sessions.issuing.service import fingerprint
from django_rt_sessions.issuing.tickets import redeem
from django_rt_sessions.models import RelaySession, RelayTicket, SessionPreset, TokenRequest
from django_rt_sessions.relay import sessions

from ..conftest import post
from .test_minting import RELAY_SESSION

pytestmark = pytest.mark.django_db
LIST = "/admin/django_rt_sessions/relaysession/"


@pytest.fixture
def relay_preset(db: Any) -> SessionPreset:
    return SessionPreset.objects.create(
        name="relayed", session=RELAY_SESSION, relay=True, max_concurrent_sessions=2
    )


def opened(api: Client, preset: SessionPreset) -> RelaySession:
    ticket = post(api, {"preset": preset.name}).json()["client_secret"]["value"]
    redeemed = redeem(ticket, fingerprint)
    assert isinstance(redeemed, RelayTicket)
    result = sessions.open_session(
        redeemed, client_ip="127.0.0.1", user_agent="t", relay_process="h:1", channel_name=""
    )
    assert isinstance(result, sessions.Opened)
    return result.row


def test_the_relay_rows_their_signals_and_the_concurrency_slots(
    api: Client, user: Any, relay_preset: SessionPreset
) -> None:
    seen: list[tuple[str, str, str]] = []

    def started(sender: Any, relay_session: RelaySession, **kwargs: Any) -> None:
        seen.append(("started", relay_session.pk, relay_session.end_reason))

    def ended(sender: Any, relay_session: RelaySession, **kwargs: Any) -> None:
        seen.append(("ended", relay_session.pk, relay_session.end_reason))

    signals.relay_session_started.connect(started)
    signals.relay_session_ended.connect(ended)
    try:
        first, second = opened(api, relay_preset), opened(api, relay_preset)
        ticket = post(api, {"preset": "relayed"}).json()["client_secret"]["value"]
        third = redeem(ticket, fingerprint)
        assert isinstance(third, RelayTicket)
        refused = sessions.open_session(
            third, client_ip=None, user_agent="", relay_process="", channel_name=""
        )
        assert refused == "session_limit_reached"  # max_concurrent_sessions 2
        sessions.finish(first.pk, "client_closed", (12.5, 12.0, 0, 2))
        sessions.finish(first.pk, "idle", (99, 99, 0, 0))  # closed once: the second finish changes nothing
    finally:
        signals.relay_session_started.disconnect(started)
        signals.relay_session_ended.disconnect(ended)
    assert seen == [
        ("started", first.pk, ""),
        ("started", second.pk, ""),
        ("ended", first.pk, "client_closed"),
    ]
    row = RelaySession.objects.get(pk=first.pk)
    assert (row.end_reason, row.audio_seconds, row.turns, row.slot) == ("client_closed", 12.5, 2, None)
    assert row.token_request == TokenRequest.objects.filter(outcome="issued").order_by("id").first()


def test_the_admin_lists_open_sessions_first_with_minutes_and_links(
    admin_client: Client, api: Client, user: Any, relay_preset: SessionPreset
) -> None:
    ended, open_row = opened(api, relay_preset), opened(api, relay_preset)
    sessions.finish(ended.pk, "idle", (90.0, 0, 0, 0))
    RelaySession.objects.filter(pk=open_row.pk).update(audio_seconds=30.0)
    page = admin_client.get(LIST).content.decode()
    assert page.index(open_row.pk) < page.index(ended.pk)  # open first, though started later
    assert "1.50" in page and "idle" in page
    # Minutes per user and per preset over 30 days (the open session's saved counter included).
    assert '<tr class="rt-minutes-user"><td>alice</td><td>2.00</td></tr>' in page
    assert '<tr class="rt-minutes-preset"><td>relayed</td><td>2.00</td></tr>' in page
    audit_url = f"/admin/django_rt_sessions/tokenrequest/{open_row.token_request_id}/change/"
    assert audit_url in page
    audit_page = admin_client.get(audit_url).content.decode()
    assert f"/admin/django_rt_sessions/relaysession/{open_row.pk}/change/" in audit_page
    detail = admin_client.get(f"{LIST}{open_row.pk}/change/").content.decode()
    assert "relayed" in detail and "rts_" not in detail


def test_end_session_needs_its_own_permission(
    client: Client, api: Client, user: Any, relay_preset: SessionPreset, django_user_model: Any
) -> None:
    row = opened(api, relay_preset)
    staff = django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_relaysession"))
    client.force_login(staff)
    assert "end_sessions" not in client.get(LIST).content.decode()
    staff.user_permissions.add(Permission.objects.get(codename="end_relay_session"))
    staff = django_user_model.objects.get(pk=staff.pk)  # a fresh permission cache
    client.force_login(staff)
    assert "end_sessions" in client.get(LIST).content.decode()
    response = client.post(LIST, {"action": "end_sessions", "_selected_action": [row.pk]}, follow=True)
    assert "Asked 1 session to end" in response.content.decode()
    assert RelaySession.objects.get(pk=row.pk).end_requested_at is not None
    # The relay processes' poll finds it (the channel layer usually gets there first).
    assert sessions.ended_elsewhere([row.pk], timezone.now() - dt.timedelta(seconds=5)) == [row.pk]


def test_the_sweep_closes_rows_of_dead_processes_as_relay_lost(
    api: Client, relay_preset: SessionPreset
) -> None:
    lost, alive = opened(api, relay_preset), opened(api, relay_preset)
    last_save = timezone.now() - dt.timedelta(seconds=40)
    RelaySession.objects.filter(pk=lost.pk).update(last_seen_at=last_save, audio_seconds=42.0)
    RelayTicket.objects.update(expires_at=timezone.now() - dt.timedelta(hours=2))
    ended: list[str] = []

    def on_end(sender: Any, relay_session: RelaySession, **kwargs: Any) -> None:
        ended.append(relay_session.end_reason)

    signals.relay_session_ended.connect(on_end)
    out = io.StringIO()
    try:
        call_command("rt_sessions_relay_sweep", stdout=out)
    finally:
        signals.relay_session_ended.disconnect(on_end)
    assert "Closed 1 relay session(s)" in out.getvalue()
    row = RelaySession.objects.get(pk=lost.pk)
    assert (row.end_reason, row.ended_at, row.audio_seconds, row.slot) == (
        "relay_lost",
        last_save,
        42.0,
        None,
    )
    assert RelaySession.objects.get(pk=alive.pk).ended_at is None
    assert ended == ["relay_lost"]
    assert not RelayTicket.objects.exists()  # long expired: gone
