"""The audit invariant (docs/audit.md): exactly one committed TokenRequest per authenticated request, no
secrets."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.testing import Error, Hang, RateLimit
from django_rt_sessions.upstreams.openai import OpenAIUpstream

from ..conftest import post, set_rt


@pytest.mark.django_db
def test_issued_row_has_every_field(api: Client, preset: SessionPreset, upstream: Any, user: Any) -> None:
    response = post(api, {"language": "de"}, HTTP_USER_AGENT="pytest-agent/1", REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 201
    body = response.json()
    row = TokenRequest.objects.get()
    assert row.outcome == "issued" and row.status_code == 201
    assert (row.user, row.username, row.preset, row.preset_name) == (user, "alice", preset, "meetings-fr")
    assert row.upstream == "openai" and row.upstream_status == 200
    assert row.upstream_request_id.startswith("req_")
    assert row.upstream_session_id == body["id"]
    assert int(row.expires_at.timestamp()) == body["client_secret"]["expires_at"]
    assert row.secret_fingerprint == hashlib.sha256(body["client_secret"]["value"].encode()).hexdigest()
    assert row.session_config == upstream.requests[-1].json  # the body actually sent
    assert (row.client_ip, row.user_agent) == ("192.0.2.7", "pytest-agent/1")
    assert row.upstream_ms is not None and row.upstream_ms >= 0
    assert row.error_code == row.error_message == ""


@pytest.mark.django_db(transaction=True)  # outside a transaction: the preset cache is used, as in production
def test_editing_a_preset_does_not_rewrite_history(api: Client, preset: SessionPreset, upstream: Any) -> None:
    """Each row keeps the body sent for its own request: after an edit, the next request sends (and records)
    the edited preset, and the earlier row still shows what was sent then."""
    assert post(api).status_code == 201
    first = TokenRequest.objects.get()
    before = upstream.requests[-1].json
    assert first.session_config == before
    assert before["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    preset.session = {**preset.session, "input_audio_format": "g711_alaw"}
    preset.save()
    assert post(api).status_code == 201
    after = upstream.requests[-1].json
    assert after["session"]["audio"]["input"]["format"] == {"type": "audio/pcma"}
    second = TokenRequest.objects.exclude(pk=first.pk).get()
    assert second.session_config == after
    first.refresh_from_db()
    assert first.session_config == before


FAILURES = [
    ("invalid", lambda up: None, {"language": "xx-long"}, 400),
    ("not_found", lambda up: None, {"preset": "missing"}, 404),
    ("upstream_error", lambda up: up.always(Error(400, "invalid_value", "bad")), {}, 502),
    ("upstream_unavailable", lambda up: up.always(RateLimit(retry_after=3)), {}, 503),
    ("upstream_timeout", lambda up: up.always(Hang(max_seconds=5)), {}, 504),
    ("issued", lambda up: None, {}, 201),
]


@pytest.mark.parametrize("atomic_requests", [False, True], ids=["autocommit", "ATOMIC_REQUESTS"])
@pytest.mark.parametrize(("outcome", "arrange", "payload", "status"), FAILURES, ids=[f[0] for f in FAILURES])
@pytest.mark.django_db(transaction=True)
def test_exactly_one_committed_row_per_request(
    api: Client,
    preset: SessionPreset,
    upstream: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    atomic_requests: bool,
    outcome: str,
    arrange: Any,
    payload: dict,
    status: int,
) -> None:
    """transaction=True: real commits, so a rolled-back request transaction would lose the row."""
    set_rt(settings, READ_TIMEOUT=0.3, MAX_RETRIES=0)
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    arrange(upstream)
    response = post(api, payload)
    assert response.status_code == status
    rows = list(TokenRequest.objects.all())
    assert len(rows) == 1
    assert (rows[0].outcome, rows[0].status_code) == (outcome, status)


class ExplodingUpstream(OpenAIUpstream):
    """A plug-in upstream with a bug: the request ends in a 500 after the service has started."""

    def build_body(self, session: dict, expires_after_seconds: int) -> dict:
        raise RuntimeError("bug in a third-party adapter")


@pytest.mark.parametrize("atomic_requests", [False, True], ids=["autocommit", "ATOMIC_REQUESTS"])
@pytest.mark.django_db(transaction=True)
def test_row_survives_an_unexpected_error_even_in_a_request_transaction(
    user: Any, preset: SessionPreset, settings: Any, monkeypatch: pytest.MonkeyPatch, atomic_requests: bool
) -> None:
    """ATOMIC_REQUESTS rolls a failed request's transaction back: the view must not be in one."""
    set_rt(settings, UPSTREAM=f"{__name__}.ExplodingUpstream")
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    assert post(client).status_code == 500
    row = TokenRequest.objects.get()
    assert (row.outcome, row.status_code, row.preset_name) == ("upstream_error", 500, "meetings-fr")


@pytest.mark.django_db
def test_no_secret_in_logs_audit_or_error_bodies(
    api: Client, preset: SessionPreset, upstream: Any, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    set_rt(settings, MAX_RETRIES=1)
    responses = [post(api)]
    upstream.enqueue(Error(401, "invalid_api_key", f"Incorrect API key provided: {upstream.api_key}"))
    responses.append(post(api))
    upstream.enqueue(Error(500), Error(500))
    responses.append(post(api))
    upstream.enqueue(RateLimit(2))
    responses.append(post(api))
    responses.append(post(api, {"preset": "nope"}))
    assert [r.status_code for r in responses] == [201, 502, 502, 503, 404]
    secrets = [upstream.api_key, *upstream.issued]
    assert len(upstream.issued) == 1
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}" for record in caplog.records
    )
    assert caplog.records, "the failures above should have logged something"
    for secret in secrets:
        assert secret not in logged
        for response in responses[1:]:
            assert secret not in response.content.decode()
        for row in TokenRequest.objects.all():
            assert secret not in repr(row.__dict__) and secret not in str(row)
    # The one error message that echoed the key was redacted, not dropped.
    assert "[redacted]" in TokenRequest.objects.get(upstream_status=401).error_message


@pytest.mark.django_db
def test_deleting_user_and_preset_keeps_the_trail(
    api: Client, preset: SessionPreset, upstream: Any, user: Any
) -> None:
    post(api)
    user.delete()
    preset.delete()
    row = TokenRequest.objects.get()
    assert (row.user, row.preset, row.username, row.preset_name) == (None, None, "alice", "meetings-fr")
