"""Signals, the POLICY hook and per-preset daily quotas."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.utils import timezone

from django_rt_sessions import signals
from django_rt_sessions.errors import IssueError
from django_rt_sessions.issuing import IssueContext, issue_session, prepare, quotas
from django_rt_sessions.models import QuotaUsage, SessionPreset, TokenRequest
from django_rt_sessions.policy import Deny, PolicyContext
from django_rt_sessions.testing import Error

from ..conftest import MINIMAL_SESSION, post, set_rt

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------------------------------------ signals


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def receiver_for(name: str) -> Any:
        def receiver(sender: Any, **kwargs: Any) -> None:
            row = kwargs.get("token_request")
            # Sent after the row is saved: it is in the database already.
            kwargs["row_saved"] = row is not None and TokenRequest.objects.filter(pk=row.pk).exists()
            calls.append((name, {"sender": sender, **kwargs}))

        return receiver

    receivers = {name: receiver_for(name) for name in ("requested", "issued", "denied")}
    signals.token_requested.connect(receivers["requested"])
    signals.token_issued.connect(receivers["issued"])
    signals.token_denied.connect(receivers["denied"])
    yield calls
    signals.token_requested.disconnect(receivers["requested"])
    signals.token_issued.disconnect(receivers["issued"])
    signals.token_denied.disconnect(receivers["denied"])


def test_signals_on_issue(
    api: Client, preset: SessionPreset, upstream: Any, user: Any, received: list
) -> None:
    assert post(api, {"language": "de"}).status_code == 201
    assert [name for name, _ in received] == ["requested", "issued"]
    requested, issued = received[0][1], received[1][1]
    assert requested["sender"] is TokenRequest
    assert requested["user"] == user and requested["payload"] == {"language": "de"}
    assert requested["request"] is not None
    assert issued["token_request"] == TokenRequest.objects.get() and issued["row_saved"]
    assert issued["preset"] == preset and issued["user"] == user


def test_signals_on_denial(api: Client, preset: SessionPreset, upstream: Any, received: list) -> None:
    assert post(api, {"preset": "nope"}).status_code == 404
    assert [name for name, _ in received] == ["requested", "denied"]
    denied = received[1][1]
    assert (denied["code"], denied["status"], denied["row_saved"]) == ("preset_not_found", 404, True)


def test_a_failing_receiver_does_not_change_the_answer(
    api: Client, preset: SessionPreset, upstream: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.token_issued.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="django_rt_sessions.issuing"):
            assert post(api).status_code == 201
    finally:
        signals.token_issued.disconnect(broken)
    assert "receiver of a django-rt-sessions signal failed" in caplog.text
    assert "receiver bug" in caplog.text


def test_no_signals_when_only_planning(preset: SessionPreset, user: Any, received: list) -> None:
    plan = prepare(IssueContext(user=user), {})
    assert plan.body["session"]["type"] == "transcription"
    assert received == []
    assert not TokenRequest.objects.exists()


# ------------------------------------------------------------------------------------------------- policy

POLICY_CALLS: list[PolicyContext] = []


def deny_suspended(context: PolicyContext) -> None:
    POLICY_CALLS.append(context)
    if context.user.last_name == "suspended":
        raise Deny("account_suspended", "Your account is suspended.")
    if context.user.last_name == "unpaid":
        raise Deny("payment_required", "Renew your plan to transcribe.", status=402)


def language_from_profile_and_short_ttl_for_free_tier(context: PolicyContext) -> None:
    # A site keeps the language in a profile; here the user's first name stands for it.
    if context.user.first_name:
        context.session.setdefault("input_audio_transcription", {})["language"] = context.user.first_name
    if context.user.last_name == "free":
        context.expires_after_seconds = min(context.expires_after_seconds, 15)


def breaks_the_session(context: PolicyContext) -> None:
    context.session["turn_detection"] = {"type": "server_vad", "threshold": 7}


@pytest.fixture(autouse=True)
def _reset_policy_calls() -> None:
    POLICY_CALLS.clear()


@pytest.mark.parametrize(
    ("last_name", "status", "code"),
    [("suspended", 403, "account_suspended"), ("unpaid", 402, "payment_required")],
)
def test_policy_denies_with_its_own_code(
    api: Client,
    preset: SessionPreset,
    upstream: Any,
    user: Any,
    settings: Any,
    last_name: str,
    status: int,
    code: str,
) -> None:
    set_rt(settings, POLICY=f"{__name__}.deny_suspended")
    user.last_name = last_name
    user.save()
    response = post(api)
    assert response.status_code == status
    assert response.json() == {"detail": response.json()["detail"], "code": code}
    assert upstream.requests == []
    row = TokenRequest.objects.get()
    assert (row.outcome, row.status_code, row.error_code) == ("forbidden", status, code)


def test_policy_lets_others_through_and_sees_the_request(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, POLICY=f"{__name__}.deny_suspended")
    assert post(api, {"language": "de"}).status_code == 201
    (context,) = POLICY_CALLS
    assert context.preset == preset and context.overrides == {"language": "de"}
    assert context.session["input_audio_transcription"]["language"] == "de"
    assert context.request is not None and context.expires_after_seconds == 60


def test_policy_adjusts_language_and_ttl(
    api: Client, preset: SessionPreset, upstream: Any, user: Any, settings: Any
) -> None:
    set_rt(settings, POLICY=f"{__name__}.language_from_profile_and_short_ttl_for_free_tier")
    user.first_name, user.last_name = "nl", "free"
    user.save()
    assert post(api).status_code == 201
    sent = upstream.requests[-1].json
    assert sent["session"]["audio"]["input"]["transcription"]["language"] == "nl"
    assert sent["expires_after"]["seconds"] == 15
    preset.refresh_from_db()
    assert preset.session["input_audio_transcription"]["language"] == "fr"  # the preset is untouched


def test_policy_runs_before_rate_limits(
    api: Client, preset: SessionPreset, upstream: Any, user: Any, settings: Any
) -> None:
    """A refused request does not consume the user's limit."""
    set_rt(settings, POLICY=f"{__name__}.deny_suspended", USER_RATE="1/m")
    user.last_name = "suspended"
    user.save()
    assert post(api).status_code == 403
    user.last_name = ""
    user.save()
    assert post(api).status_code == 201


def test_a_policy_that_breaks_the_session_is_a_site_error(
    user: Any, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, POLICY=f"{__name__}.breaks_the_session")
    with pytest.raises(IssueError) as info:
        issue_session(IssueContext(user=user), {})
    assert (info.value.code, info.value.status) == ("misconfigured", 503)
    assert upstream.requests == []
    row = TokenRequest.objects.get()
    assert (row.outcome, row.error_code) == ("misconfigured", "misconfigured")
    assert re.search(r"RT_SESSIONS\['POLICY'\].*threshold", row.error_message)


def test_an_unimportable_policy_names_the_setting(user: Any, preset: SessionPreset, settings: Any) -> None:
    set_rt(settings, POLICY="nowhere.policy")
    with pytest.raises(ImproperlyConfigured, match=r"RT_SESSIONS\['POLICY'\] 'nowhere.policy'"):
        prepare(IssueContext(user=user), {})


@pytest.mark.parametrize(("code", "status"), [("Bad Code", 403), ("ok_code", 500), ("ok_code", 302)])
def test_deny_refuses_codes_and_statuses_that_would_break_the_contract(code: str, status: int) -> None:
    with pytest.raises(ValueError):
        Deny(code, "no", status=status)


# -------------------------------------------------------------------------------------------------- quotas


@pytest.fixture
def quota_preset(preset: SessionPreset) -> SessionPreset:
    preset.daily_quota = 2
    preset.save()
    return preset


def test_daily_quota_counts_issued_sessions(
    api: Client, quota_preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    settings.TIME_ZONE = "Pacific/Auckland"
    assert [post(api).status_code for _ in range(2)] == [201, 201]
    response = post(api)
    assert response.status_code == 429
    assert response.json()["code"] == "quota_exceeded"
    now = timezone.localtime()
    midnight = timezone.make_aware(dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time.min))
    assert abs(int(response["Retry-After"]) - (midnight - now).total_seconds()) <= 2
    assert len(upstream.requests) == 2
    row = TokenRequest.objects.order_by("-pk").first()
    assert (row.outcome, row.status_code, row.error_code) == ("rate_limited", 429, "quota_exceeded")
    assert QuotaUsage.objects.get().day == now.date()


def test_a_failed_upstream_call_does_not_use_the_quota(
    api: Client, quota_preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    set_rt(settings, MAX_RETRIES=0)
    upstream.enqueue(Error(400, "invalid_value", "no"))
    assert post(api).status_code == 502
    assert [post(api).status_code for _ in range(3)] == [201, 201, 429]


def test_quota_is_per_user_and_per_preset(
    api: Client, quota_preset: SessionPreset, upstream: Any, django_user_model: Any
) -> None:
    SessionPreset.objects.create(name="other", daily_quota=1, session=MINIMAL_SESSION)
    assert [post(api).status_code for _ in range(3)] == [201, 201, 429]
    assert [post(api, {"preset": "other"}).status_code for _ in range(2)] == [201, 429]
    bob = Client()
    bob.force_login(django_user_model.objects.create_user("bob"))
    assert post(bob).status_code == 201


def test_yesterdays_usage_does_not_count(
    api: Client, quota_preset: SessionPreset, upstream: Any, user: Any
) -> None:
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    QuotaUsage.objects.create(user=user, preset=quota_preset, day=yesterday, count=2)
    assert post(api).status_code == 201


def test_seconds_until_midnight() -> None:
    noon = timezone.make_aware(dt.datetime(2026, 3, 1, 12, 0, 0))
    assert quotas.seconds_until_midnight(noon) == 12 * 3600


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_quota_is_exact_under_concurrency(quota_preset: SessionPreset, user: Any, upstream: Any) -> None:
    """Twenty threads, each on its own database connection, race for a quota of 5."""
    assert connection.vendor == "postgresql"
    quota_preset.daily_quota = 5
    quota_preset.save()
    barrier = threading.Barrier(20)

    def one() -> int:
        try:
            barrier.wait()
            try:
                issue_session(IssueContext(user=user), {})
                return 201
            except IssueError as error:
                return error.status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda _: one(), range(20)))
    assert sorted(statuses) == [201] * 5 + [429] * 15
    assert TokenRequest.objects.filter(outcome="issued").count() == 5
    assert QuotaUsage.objects.get().count == 5
