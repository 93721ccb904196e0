"""The issuing service on its own, without HTTP: what `issue_session`, `issue_from_body` and `prepare`
return, raise and record (docs/http-api.md, "Issuing without HTTP"). The upstream is the stand-in over a
real loopback socket."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.contrib.auth.models import Group

from django_rt_sessions import signals
from django_rt_sessions.errors import IssueError
from django_rt_sessions.issuing import IssueContext, issue_from_body, issue_session, prepare
from django_rt_sessions.issuing.payload import RawBody
from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.testing import Error

from ..conftest import set_rt

pytestmark = pytest.mark.django_db


def context(user: Any) -> IssueContext:
    return IssueContext(user=user, client_ip="192.0.2.7", user_agent="tests/issuing")


def test_a_key_comes_back_with_its_one_audit_row(user: Any, preset: SessionPreset, upstream: Any) -> None:
    issued = issue_session(context(user), {"language": "de"})

    secret = issued.body["client_secret"]["value"]
    assert secret in upstream.issued
    assert issued.body["preset"] == "meetings-fr"
    assert issued.body["input_audio_transcription"]["language"] == "de"
    assert issued.body["connect"]["api"] == "ga"
    row = TokenRequest.objects.get()
    assert row == issued.token_request
    assert (row.outcome, row.status_code, row.username, row.preset_name) == (
        "issued",
        201,
        "alice",
        "meetings-fr",
    )
    assert row.secret_fingerprint == hashlib.sha256(secret.encode()).hexdigest()
    assert row.session_config == upstream.requests[-1].json  # what was sent, as the stand-in got it
    assert (row.client_ip, row.user_agent) == ("192.0.2.7", "tests/issuing")
    assert secret not in repr(issued)  # the dataclass keeps the key out of its repr


@pytest.mark.parametrize(
    ("payload", "code", "outcome"),
    [
        ({"preset": "nope"}, "preset_not_found", "not_found"),
        ({"keywords": ["ACME"]}, "override_not_allowed", "invalid"),
        ({"language": "French"}, "invalid", "invalid"),
        (["not", "an", "object"], "invalid", "invalid"),
    ],
)
def test_each_refusal_raises_with_its_audit_row_and_calls_no_upstream(
    user: Any, preset: SessionPreset, upstream: Any, payload: Any, code: str, outcome: str
) -> None:
    with pytest.raises(IssueError) as info:
        issue_session(context(user), payload)
    assert info.value.code == code
    row = TokenRequest.objects.get()
    assert info.value.token_request == row
    assert (row.outcome, row.status_code, row.error_code) == (outcome, info.value.status, code)
    assert upstream.requests == []


def test_a_user_outside_the_presets_groups_is_refused(
    user: Any, preset: SessionPreset, upstream: Any
) -> None:
    preset.groups.add(Group.objects.create(name="staff-only"))
    with pytest.raises(IssueError) as info:
        issue_session(context(user), {})
    assert (info.value.code, info.value.status) == ("preset_forbidden", 403)
    assert TokenRequest.objects.get().outcome == "forbidden"

    user.groups.add(Group.objects.get(name="staff-only"))
    assert issue_session(context(user), {}).token_request.outcome == "issued"


def test_an_undecodable_body_is_audited_and_signalled(
    user: Any, preset: SessionPreset, upstream: Any
) -> None:
    received: list[dict[str, Any]] = []

    def requested(**kwargs: Any) -> None:
        received.append(kwargs)

    signals.token_requested.connect(requested)
    try:
        with pytest.raises(IssueError) as info:
            issue_from_body(context(user), RawBody(b'{"preset": ', media_type="application/json"))
    finally:
        signals.token_requested.disconnect(requested)
    assert (info.value.code, info.value.detail) == ("invalid", "The body is not valid JSON.")
    assert [call["payload"] for call in received] == [None]
    assert TokenRequest.objects.get().error_message.startswith("The body is not valid JSON.")


def test_an_upstream_error_is_kept_for_staff(user: Any, preset: SessionPreset, upstream: Any) -> None:
    upstream.enqueue(Error(status=400, code="invalid_value", message="Bad session."))
    with pytest.raises(IssueError) as info:
        issue_session(context(user), {})
    assert (info.value.code, info.value.status) == ("upstream_error", 502)
    assert info.value.detail == "The transcription service could not create a session."  # the user's text
    row = TokenRequest.objects.get()
    assert (row.upstream_status, row.error_code, row.error_message) == (400, "invalid_value", "Bad session.")


def test_without_a_request_only_the_user_limit_counts(
    user: Any, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, USER_RATE="1/m", IP_RATE="1/m")
    issue_session(IssueContext(user=user), {})
    with pytest.raises(IssueError) as info:
        issue_session(IssueContext(user=user), {})
    assert info.value.code == "rate_limited"
    assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 60
    assert list(TokenRequest.objects.order_by("id").values_list("outcome", flat=True)) == [
        "issued",
        "rate_limited",
    ]


def test_prepare_plans_without_sending_counting_or_recording(
    user: Any, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, USER_RATE="1/m")
    for _ in range(3):  # never counted against the limit
        plan = prepare(context(user), {"prompt": "Names: Ada, Grace."})
    assert plan.body["session"]["audio"]["input"]["transcription"]["prompt"] == "Names: Ada, Grace."
    assert plan.body["expires_after"] == {"anchor": "created_at", "seconds": 60}
    assert upstream.requests == []
    assert not TokenRequest.objects.exists()
    assert issue_session(context(user), {}).token_request.outcome == "issued"
