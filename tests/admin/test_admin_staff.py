"""The staff admin beyond the basics (docs/admin.md): preview, test token, key lookup, exports, chart,
search and filters, actions, permissions, and a changelist whose query count does not grow with its rows."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import itertools
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.utils import label_for_field
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import escape
from django.utils.text import capfirst

from django_rt_sessions.admin.audit import TokenRequestAdmin
from django_rt_sessions.audit import export as audit_export
from django_rt_sessions.audit import report as audit_report
from django_rt_sessions.issuing import fingerprint
from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.testing import Error

from ..conftest import SESSION, post, set_rt
from .test_admin import form_data

PRESETS = reverse("admin:django_rt_sessions_sessionpreset_changelist")
PRESET_ADD = reverse("admin:django_rt_sessions_sessionpreset_add")
REQUESTS = reverse("admin:django_rt_sessions_tokenrequest_changelist")
EXPORT = reverse("admin:django_rt_sessions_tokenrequest_export")
WHO = reverse("admin:django_rt_sessions_tokenrequest_who_received")
LOGIN = reverse("admin:login")
CHART = re.compile(r'<figure class="rt-audit-chart"><svg.*?</svg>', re.S)
PREVIEW = re.compile(r'<pre id="rt-upstream-preview">(.*?)</pre>', re.S)


def preset_change(preset: SessionPreset) -> str:
    return reverse("admin:django_rt_sessions_sessionpreset_change", args=[preset.pk])


def test_token_url(preset: SessionPreset) -> str:
    return reverse("admin:django_rt_sessions_sessionpreset_test_token", args=[preset.pk])


test_token_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test
CONFIRMED = {"confirm": "yes"}  # the answer to the test token's question


def request_change(row: TokenRequest) -> str:
    return reverse("admin:django_rt_sessions_tokenrequest_change", args=[row.pk])


def make_rows(count: int, when: dt.datetime | None = None, **fields: Any) -> list[TokenRequest]:
    """Audit rows in bulk; created_at (auto_now_add) is set afterwards when `when` is given."""
    values = {"username": "bulk", "outcome": "issued", "status_code": 201, **fields}
    rows = TokenRequest.objects.bulk_create([TokenRequest(**values) for _ in range(count)])
    pks = [row.pk for row in rows]
    assert None not in pks
    if when is not None:
        TokenRequest.objects.filter(pk__in=pks).update(created_at=when)
    return rows


def content(response: Any) -> str:
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def results(response: Any) -> list[TokenRequest]:
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def run_audit(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("rt_sessions_audit", "export", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def viewer(django_user_model: Any) -> Any:
    """Staff with the view permissions, and even delete_tokenrequest: deletion stays superuser-only."""
    user = django_user_model.objects.create_user("viewer", password="pw-viewer", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_rt_sessions",
            codename__in=["view_tokenrequest", "view_sessionpreset", "delete_tokenrequest"],
        )
    )
    return user


@pytest.fixture
def viewer_client(viewer: Any) -> Client:
    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def issued(upstream: Any, api: Client, preset: SessionPreset) -> tuple[TokenRequest, str]:
    """A row written by the real issuing flow, and the ephemeral key it concerns."""
    response = post(api, {}, HTTP_USER_AGENT="Mozilla/5.0 test")
    assert response.status_code == 201, response.content
    key = response.json()["client_secret"]["value"]
    assert key == upstream.issued[-1]
    return TokenRequest.objects.get(), key


# ------------------------------------------------------------------------------------------ access


def test_non_staff_users_are_sent_to_login_for_every_custom_url(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    for url in (EXPORT, EXPORT + "?outcome=issued", WHO, test_token_url(preset), REQUESTS, PRESETS):
        response = api.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(LOGIN), url
    for url, data in ((WHO, {"key": "ek_whatever"}), (test_token_url(preset), {})):
        response = api.post(url, data)
        assert response.status_code == 302, url
        assert response["Location"].startswith(LOGIN), url
    assert not TokenRequest.objects.exists()
    assert upstream.requests == []


def test_view_only_staff_reads_but_cannot_change_or_delete(
    viewer_client: Client, admin_client: Client, preset: SessionPreset, db: Any
) -> None:
    [row] = make_rows(1, username="bob")
    assert viewer_client.get(REQUESTS).status_code == 200
    assert viewer_client.get(PRESETS).status_code == 200
    assert viewer_client.get(WHO).status_code == 200
    assert viewer_client.get(EXPORT).status_code == 200
    detail = viewer_client.get(request_change(row))
    assert detail.status_code == 200
    assert 'name="_save"' not in content(detail)
    change = viewer_client.get(preset_change(preset))
    assert change.status_code == 200
    assert 'name="_save"' not in content(change)

    # Presets: read-only for a viewer.
    assert viewer_client.post(preset_change(preset), {"name": "renamed"}).status_code == 403
    assert viewer_client.get(PRESET_ADD).status_code == 403
    delete_preset = reverse("admin:django_rt_sessions_sessionpreset_delete", args=[preset.pk])
    assert viewer_client.post(delete_preset, {"post": "yes"}).status_code == 403
    preset.refresh_from_db()
    assert preset.name == "meetings-fr"

    # Audit rows: deletion is for superusers only, even with the delete permission.
    delete_row = reverse("admin:django_rt_sessions_tokenrequest_delete", args=[row.pk])
    assert viewer_client.get(delete_row).status_code == 403
    assert viewer_client.post(delete_row, {"post": "yes"}).status_code == 403
    bulk = viewer_client.post(
        REQUESTS, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert TokenRequest.objects.filter(pk=row.pk).exists()
    action_form = viewer_client.get(REQUESTS).context["action_form"]
    choices = [c[0] for c in action_form.fields["action"].choices] if action_form else []
    assert "delete_selected" not in choices

    su_list = admin_client.get(REQUESTS)
    assert "delete_selected" in [c[0] for c in su_list.context["action_form"].fields["action"].choices]
    assert admin_client.get(delete_row).status_code == 200
    assert admin_client.post(delete_row, {"post": "yes"}).status_code == 302
    assert not TokenRequest.objects.filter(pk=row.pk).exists()


def test_superuser_cannot_change_an_audit_row_either(admin_client: Client, db: Any) -> None:
    [row] = make_rows(1, username="bob")
    detail = admin_client.get(request_change(row))
    assert detail.status_code == 200
    assert 'name="_save"' not in content(detail)


# ------------------------------------------------------------------------------- preset list & form


def test_preset_list_shows_every_column(admin_client: Client, admin_user: Any, group: Group) -> None:
    preset = SessionPreset.objects.create(
        name="calls-de",
        title="Calls (German)",
        session={
            **SESSION,
            "input_audio_transcription": {"model": "whisper-1", "language": "de"},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.7,
                "prefix_padding_ms": 200,
                "silence_duration_ms": 800,
            },
        },
        expires_after_seconds=300,
        rate="5/m",
        updated_by=admin_user,
    )
    preset.groups.set([group, Group.objects.create(name="auditors")])
    SessionPreset.objects.create(name="plain", session={"turn_detection": None})
    SessionPreset.objects.create(name="bare", session={})
    page = content(admin_client.get(PRESETS))
    for header in (
        "Name",
        "Title",
        "Active",
        "Default",
        "Model",
        "Language",
        "Turn detection",
        "Token lifetime (seconds)",
        "Rate",
        "Groups",
        "Last changed",
    ):
        assert f">{header}<" in page, header
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*calls-de(?:(?!</tr>).)*</tr>", page, re.S)
    assert row, page
    cells = row.group(0)
    for text in (
        "Calls (German)",
        "whisper-1",
        ">de<",
        "server_vad · Activation threshold: 0.7 · Prefix padding (ms): 200 · Silence duration (ms): 800",
        ">300<",
        ">5/m<",
        "auditors, transcribers",
        admin_user.get_username(),
    ):
        assert text in cells, text
    assert timezone.localtime(preset.updated_at).strftime("%Y-%m-%d %H:%M") in cells
    plain = re.search(r"<tr[^>]*>(?:(?!</tr>).)*plain(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    assert ">off<" in plain
    assert "10/m (USER_RATE)" in plain
    assert "everyone" in plain
    assert ">auto<" in plain
    bare = re.search(r"<tr[^>]*>(?:(?!</tr>).)*bare(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    assert ">default<" in bare


def test_preset_list_language_and_turn_columns_say_what_is_stored(admin_client: Client, db: Any) -> None:
    SessionPreset.objects.create(
        name="bilingual",
        session={
            "input_audio_transcription": {"model": "gpt-transcribe", "languages": ["en", "fr"]},
            "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
        },
    )
    page = content(admin_client.get(PRESETS))
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*bilingual(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    assert ">en, fr<" in row  # not "auto": the preset names its languages
    # Only what the preset stores, labelled; no server-VAD defaults for a semantic_vad preset.
    assert ">semantic_vad · Eagerness: high<" in row


def test_preset_list_filters_and_search(admin_client: Client, group: Group) -> None:
    a = SessionPreset.objects.create(name="alpha", title="Board meetings", active=True)
    b = SessionPreset.objects.create(name="beta", description="support calls", active=False)
    c = SessionPreset.objects.create(name="gamma", default=True)
    b.groups.set([group])
    assert results(admin_client.get(PRESETS, {"active__exact": "0"})) == [b]
    assert results(admin_client.get(PRESETS, {"default__exact": "1"})) == [c]
    assert results(admin_client.get(PRESETS, {"groups__id__exact": group.pk})) == [b]
    assert results(admin_client.get(PRESETS, {"q": "board"})) == [a]
    assert results(admin_client.get(PRESETS, {"q": "support"})) == [b]
    assert results(admin_client.get(PRESETS, {"q": "gamma"})) == [c]


NO_VAD = {"vad_threshold": "", "vad_prefix_padding_ms": "", "vad_silence_duration_ms": ""}


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"default": "on", "active": None}, ["default"]),
        ({"turn_detection": "off"}, ["vad_threshold", "vad_prefix_padding_ms", "vad_silence_duration_ms"]),
        (
            {"turn_detection": "", "vad_prefix_padding_ms": "", "vad_silence_duration_ms": ""},
            ["vad_threshold"],
        ),
        ({"vad_threshold": "-0.1"}, ["vad_threshold"]),
        ({"vad_prefix_padding_ms": "12.5"}, ["vad_prefix_padding_ms"]),
        ({"prompt": "x" * 4001}, ["prompt"]),
        ({"language": "fra"}, ["language"]),
        ({"language": "f1"}, ["language"]),
        ({"input_audio_format": "mp3"}, ["input_audio_format"]),
        ({"noise_reduction": "loud"}, ["noise_reduction"]),
        ({"turn_detection": "semantic_vad", **NO_VAD, "vad_threshold": "0.5"}, ["vad_threshold"]),
        ({"vad_eagerness": "high"}, ["vad_eagerness"]),
        ({"keywords": "Acme\nAcme"}, ["keywords"]),
        ({"keywords": "<b>bold</b>"}, ["keywords"]),
        ({"model": "gpt-4o-transcribe", "keywords": "Acme"}, ["keywords"]),
        ({"languages": "en\nfr"}, ["languages"]),
        ({"delay": "sometime"}, ["delay"]),
        ({"noise_strength": "1.5"}, ["noise_strength"]),
        ({"noise_reduction": "", "noise_strength": "0.5"}, ["noise_strength"]),
        ({"model": ""}, ["model"]),
        ({"model": "gpt-realtime-whisper", "prompt": "Acme", "turn_detection": "off", **NO_VAD}, ["prompt"]),
        ({"expires_after_seconds": ""}, ["expires_after_seconds"]),
        ({"name": ""}, ["name"]),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else None,
)
def test_preset_form_errors_land_on_their_field(
    admin_client: Client, changes: dict[str, Any], fields: list[str]
) -> None:
    response = admin_client.post(PRESET_ADD, form_data(**changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert sorted(errors) == sorted(fields), errors
    assert not SessionPreset.objects.exists()


# ----------------------------------------------------------------------------------------- preview


@pytest.mark.parametrize("name", ["openai", "openai-beta", "azure"])
@pytest.mark.parametrize(
    "session",
    [
        SESSION,
        {
            "input_audio_format": "g711_ulaw",
            "input_audio_noise_reduction": None,
            "input_audio_transcription": {"model": "gpt-live-transcribe"},
            "turn_detection": None,
        },
        {"input_audio_transcription": {"model": "gpt-live-transcribe"}},
    ],
    ids=["full", "nulls", "minimal"],
)
def test_preview_is_what_the_service_sends(
    admin_client: Client, api: Client, upstream: Any, settings: Any, name: str, session: dict[str, Any]
) -> None:
    base = upstream.azure_base_url if name == "azure" else upstream.base_url
    set_rt(settings, UPSTREAM=name, BASE_URL=base)
    preset = SessionPreset.objects.create(
        name="p", default=True, session=dict(session), expires_after_seconds=321
    )
    page = content(admin_client.get(preset_change(preset)))
    match = PREVIEW.search(page)
    assert match, page
    preview = json.loads(html.unescape(match.group(1)))
    assert not upstream.requests  # rendering the preview sends nothing

    response = post(api, {})
    assert response.status_code == 201, response.content
    [sent] = upstream.requests
    assert sent.json == preview
    assert f"POST {upstream.url}{sent.path} ({name})" in page
    assert TokenRequest.objects.get().session_config == preview
    if name != "openai-beta":
        assert preview["expires_after"] == {"anchor": "created_at", "seconds": 321}


def test_editing_a_preset_in_the_admin_keeps_the_body_sent(
    admin_client: Client, issued: tuple[TokenRequest, str], preset: SessionPreset
) -> None:
    row, _key = issued
    sent = row.session_config
    assert sent["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    data = form_data(name="meetings-fr", default="on", input_audio_format="g711_alaw", language="de")
    response = admin_client.post(preset_change(preset), data)
    assert response.status_code == 302
    preset.refresh_from_db()
    assert preset.session["input_audio_format"] == "g711_alaw"
    row.refresh_from_db()
    assert row.session_config == sent
    detail = content(admin_client.get(request_change(row)))
    assert "audio/pcm" in detail
    assert "audio/pcma" not in detail


# -------------------------------------------------------------------------------------- test token


def test_test_token_issues_one_audited_token_without_showing_it(
    admin_client: Client, admin_user: Any, upstream: Any, preset: SessionPreset
) -> None:
    assert 'id="rt-test-token"' in content(admin_client.get(preset_change(preset)))
    response = admin_client.post(test_token_url(preset), CONFIRMED, HTTP_USER_AGENT="staff-browser")
    assert response.status_code == 200
    page = content(response)
    [key] = upstream.issued
    assert len(upstream.requests) == 1
    row = TokenRequest.objects.get()
    assert (row.user, row.username, row.outcome, row.status_code) == (admin_user, "admin", "issued", 201)
    assert row.preset == preset
    assert row.user_agent == "staff-browser"
    assert row.secret_fingerprint == fingerprint(key)
    assert "Issued (201)" in page
    assert fingerprint(key) in page
    # The expiry as a date and the seconds left (the preset's key lives 60 s), not a bare Unix time.
    expiry = re.search(
        r'<td id="rt-test-token-expiry"><time datetime="([^"]+)">([^<]+)</time> \(in (\d+) s;', page
    )
    assert expiry, page
    assert dt.datetime.fromisoformat(expiry.group(1)) == row.expires_at
    assert expiry.group(2) == formats.localize(timezone.template_localtime(row.expires_at))
    assert 0 < int(expiry.group(3)) <= 60
    assert key not in page
    assert key[3:] not in page
    assert upstream.api_key not in page
    assert request_change(row) in page
    for url in (request_change(row), REQUESTS, REQUESTS + f"?q={row.secret_fingerprint}"):
        shown = content(admin_client.get(url))
        assert key not in shown and key[3:] not in shown, url


def staff_with(django_user_model: Any, name: str, *codenames: str) -> Client:
    user = django_user_model.objects.create_user(name, password=f"pw-{name}", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_rt_sessions", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "codenames",
    [("view_sessionpreset",), ("view_sessionpreset", "change_sessionpreset")],
    ids=["view", "view+change"],
)
def test_test_token_needs_its_own_permission(
    django_user_model: Any, upstream: Any, preset: SessionPreset, codenames: tuple[str, ...]
) -> None:
    """It mints a real, billed key: reading (or editing) presets is not enough."""
    client = staff_with(django_user_model, "reader", *codenames)
    page = content(client.get(preset_change(preset)))
    assert client.get(preset_change(preset)).status_code == 200
    assert 'id="rt-test-token"' not in page
    assert client.post(test_token_url(preset)).status_code == 403
    assert upstream.requests == []
    assert not TokenRequest.objects.exists()


def test_the_issue_test_token_permission_allows_it(
    django_user_model: Any, upstream: Any, preset: SessionPreset
) -> None:
    client = staff_with(django_user_model, "tester", "view_sessionpreset", "issue_test_token")
    assert 'id="rt-test-token"' in content(client.get(preset_change(preset)))
    response = client.post(test_token_url(preset), CONFIRMED)
    assert response.status_code == 200
    assert "Issued (201)" in content(response)
    assert TokenRequest.objects.get().username == "tester"
    assert len(upstream.issued) == 1


def test_test_token_shows_the_upstream_message_to_staff_only(
    admin_client: Client, api: Client, upstream: Any, preset: SessionPreset
) -> None:
    message = "Invalid value for session.audio.input.format: very specific words"
    upstream.always(Error(400, "invalid_value", message))
    response = admin_client.post(test_token_url(preset), CONFIRMED)
    assert response.status_code == 200
    page = content(response)
    assert "Refused: 502 upstream_error" in page
    shown = re.search(r'<td id="rt-upstream-message">(.*?)</td>', page, re.S)
    assert shown and html.unescape(shown.group(1)) == message
    assert "invalid_value" in page
    row = TokenRequest.objects.get()
    assert row.outcome == "upstream_error"
    assert row.upstream_status == 400
    assert row.error_message == message
    assert request_change(row) in page
    # The requesting user gets the error, never the upstream's words.
    user_response = post(api, {})
    assert user_response.status_code == 502
    assert "very specific words" not in user_response.content.decode()


def test_test_token_refusal_without_upstream_call(
    admin_client: Client, upstream: Any, preset: SessionPreset
) -> None:
    preset.active = False
    preset.default = False
    preset.save()
    page = content(admin_client.post(test_token_url(preset), CONFIRMED))
    assert "Refused: 404 preset_not_found" in page
    assert upstream.requests == []
    assert TokenRequest.objects.get().outcome == "not_found"


def test_test_token_asks_first(admin_client: Client, upstream: Any, preset: SessionPreset) -> None:
    """A test token is a real, billed key: the button leads to a question, and only its answer issues."""
    change = content(admin_client.get(preset_change(preset)))
    assert re.search(rf'<a href="{re.escape(test_token_url(preset))}" id="rt-test-token">', change)
    for response in (admin_client.get(test_token_url(preset)), admin_client.post(test_token_url(preset))):
        assert response.status_code == 200
        page = content(response)
        assert 'id="rt-test-token-confirm"' in page and "billed like any other" in page
        assert 'name="confirm" value="yes"' in page
    assert not TokenRequest.objects.exists()
    assert upstream.requests == []
    assert admin_client.put(test_token_url(preset)).status_code == 405
    missing = reverse("admin:django_rt_sessions_sessionpreset_test_token", args=[preset.pk + 1000])
    assert admin_client.post(missing, CONFIRMED).status_code == 404


def test_a_test_tokens_audit_row_says_it_came_from_the_admin(
    admin_client: Client, api: Client, upstream: Any, preset: SessionPreset
) -> None:
    admin_client.post(test_token_url(preset), CONFIRMED)
    post(api, {})
    assert dict(TokenRequest.objects.values_list("username", "origin")) == {"admin": "admin", "alice": "api"}
    assert [r.username for r in results(admin_client.get(REQUESTS, {"origin__exact": "admin"}))] == ["admin"]
    assert "admin test token" in content(admin_client.get(REQUESTS))  # the filter's choice


# ------------------------------------------------------------------------------------ who received


def test_who_received_finds_the_row_of_a_pasted_key(
    admin_client: Client, issued: tuple[TokenRequest, str]
) -> None:
    row, key = issued
    make_rows(3, username="other", secret_fingerprint="cd" * 32)
    form = content(admin_client.get(WHO))
    assert 'id="rt-who-received-form"' in form
    assert 'method="post"' in form
    assert "rt-who-received-results" not in form and "rt-who-received-none" not in form

    response = admin_client.post(WHO, {"key": f"  {key}\n"})
    assert response.status_code == 200
    page = content(response)
    table = re.search(r'<table id="rt-who-received-results">(.*?)</table>', page, re.S)
    assert table, page
    assert table.group(1).count("<tr>") == 2  # the header and the one row
    assert f'href="{request_change(row)}"' in table.group(1)
    assert "alice" in table.group(1)
    assert "meetings-fr" in table.group(1)
    assert key not in page
    assert key[3:] not in page


def test_who_received_with_an_unknown_key(admin_client: Client, issued: tuple[TokenRequest, str]) -> None:
    unknown = "ek_" + "0" * 32
    page = content(admin_client.post(WHO, {"key": unknown}))
    assert "No key with this fingerprint" in page
    assert "rt-who-received-results" not in page
    assert unknown not in page


# ------------------------------------------------------------------------------------------ export


def test_admin_export_streams_the_filtered_rows_without_secrets(
    admin_client: Client, issued: tuple[TokenRequest, str], upstream: Any
) -> None:
    row, key = issued
    limited = make_rows(3, outcome="rate_limited", status_code=429, username="bob")
    make_rows(2, outcome="invalid", status_code=400, username="carol")
    listing = content(admin_client.get(REQUESTS, {"outcome": "rate_limited"}))
    assert f'href="{EXPORT}?outcome=rate_limited"' in listing

    response = admin_client.get(EXPORT, {"outcome": "rate_limited"})
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    lines = list(csv.reader(io.StringIO(content(response))))
    assert tuple(lines[0]) == audit_export.EXPORT_FIELDS
    assert sorted(int(line[0]) for line in lines[1:]) == sorted(r.pk for r in limited)

    everything = admin_client.get(EXPORT)
    text = content(everything)
    lines = list(csv.reader(io.StringIO(text)))
    assert len(lines) == 1 + 6
    by_id = {int(line[0]): dict(zip(audit_export.EXPORT_FIELDS, line, strict=True)) for line in lines[1:]}
    exported = by_id[row.pk]
    assert exported["secret_fingerprint"] == fingerprint(key)
    assert exported["username"] == "alice"
    assert json.loads(exported["session_config"]) == row.session_config
    assert key not in text and key[3:] not in text
    assert upstream.api_key not in text

    searched = list(csv.reader(io.StringIO(content(admin_client.get(EXPORT, {"q": "carol"})))))
    assert [line[3] for line in searched[1:]] == ["carol", "carol"]


def test_admin_export_neutralises_formulas(admin_client: Client, db: Any) -> None:
    agents = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "Mozilla/5.0"]
    for agent in agents:
        make_rows(1, user_agent=agent, username="=evil" if agent.startswith("=") else "fine")
    lines = list(csv.reader(io.StringIO(content(admin_client.get(EXPORT)))))
    index = audit_export.EXPORT_FIELDS.index("user_agent")
    assert sorted(line[index] for line in lines[1:]) == sorted(
        ['\'=HYPERLINK("http://x")', "'+1+1", "'-2+3", "'@SUM(A1)", "Mozilla/5.0"]
    )
    assert "'=evil" in [line[3] for line in lines[1:]]


def test_admin_export_follows_date_drill_down_and_search(admin_client: Client, db: Any) -> None:
    day = timezone.now() - dt.timedelta(days=3)
    old = make_rows(2, when=day, username="bob")
    make_rows(2, username="bob")
    params = {
        "created_at__year": day.year,
        "created_at__month": day.month,
        "created_at__day": day.day,
        "q": "bob",
    }
    lines = list(csv.reader(io.StringIO(content(admin_client.get(EXPORT, params)))))
    assert sorted(int(line[0]) for line in lines[1:]) == sorted(r.pk for r in old)


def test_admin_export_with_a_bad_filter_is_not_a_server_error(admin_client: Client, db: Any) -> None:
    """The changelist answers a bad lookup with a redirect to ?e=1; the export must not crash."""
    make_rows(1)
    assert admin_client.get(REQUESTS, {"created_at__year": "notayear"}).status_code in (200, 302)
    response = admin_client.get(EXPORT, {"created_at__year": "notayear"})
    assert response.status_code == 400


BAD_IDS = ["abc", "12345678901234567890", "1e3", "-"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_test_token_with_a_bad_id_is_not_found(admin_user: Any, upstream: Any, db: Any, bad_id: str) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    url = f"/admin/django_rt_sessions/sessionpreset/{bad_id}/test-token/"
    assert client.post(url).status_code == 404
    assert upstream.requests == []
    assert not TokenRequest.objects.exists()


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_a_bad_preset_filter_is_refused_not_a_server_error(
    admin_user: Any, preset: SessionPreset, bad_id: str
) -> None:
    """The list does what Django does with any bad lookup (back to the unfiltered list with ?e=1); the
    export, which has no page to go back to, answers 400 naming the value."""
    make_rows(1, preset=preset)
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    listed = client.get(REQUESTS, {"preset": bad_id})
    assert listed.status_code == 302
    assert listed["Location"] == f"{REQUESTS}?e=1"
    exported = client.get(EXPORT, {"preset": bad_id})
    assert exported.status_code == 400
    assert "preset" in content(exported)
    # A well-formed id still filters, including one no preset has.
    assert len(list(csv.reader(io.StringIO(content(client.get(EXPORT, {"preset": preset.pk})))))) == 2
    assert len(list(csv.reader(io.StringIO(content(client.get(EXPORT, {"preset": preset.pk + 9})))))) == 1


# ------------------------------------------------------------------------------- rt_sessions_audit


@pytest.fixture
def dated_rows(db: Any) -> dict[str, TokenRequest]:
    """Rows around the 2026-03-01..2026-03-02 window, created newest first (ids do not follow time)."""
    moments = {
        "after": dt.datetime(2026, 3, 3, 0, 0, 0),
        "last": dt.datetime(2026, 3, 2, 23, 59, 59, 999000),
        "middle": dt.datetime(2026, 3, 2, 12, 0),
        "late-first": dt.datetime(2026, 3, 1, 23, 59, 59),
        "first": dt.datetime(2026, 3, 1, 0, 0, 0),
        "before": dt.datetime(2026, 2, 28, 23, 59, 59),
    }
    rows = {}
    for name, moment in moments.items():
        [rows[name]] = make_rows(1, when=timezone.make_aware(moment), username=name, user_agent="=cmd|calc")
    return rows


def test_audit_export_jsonl_inclusive_dates_oldest_first(dated_rows: dict[str, TokenRequest]) -> None:
    out, _err = run_audit("--since", "2026-03-01", "--until", "2026-03-02")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["username"] for r in records] == ["first", "late-first", "middle", "last"]
    assert set(records[0]) == set(audit_export.EXPORT_FIELDS)
    assert records[0]["id"] == dated_rows["first"].pk
    assert records[0]["created_at"].startswith("2026-03-01T00:00:00")
    assert records[0]["user_agent"] == "=cmd|calc"  # JSON is not a spreadsheet: kept as is

    out, _err = run_audit()
    assert [json.loads(line)["username"] for line in out.splitlines()] == [
        "before",
        "first",
        "late-first",
        "middle",
        "last",
        "after",
    ]
    out, _err = run_audit("--since", "2026-03-02")
    assert [json.loads(line)["username"] for line in out.splitlines()] == ["middle", "last", "after"]
    out, _err = run_audit("--until", "2026-02-28")
    assert [json.loads(line)["username"] for line in out.splitlines()] == ["before"]
    out, _err = run_audit("--since", "2026-03-04")
    assert out == ""


def test_audit_export_csv(dated_rows: dict[str, TokenRequest]) -> None:
    out, _err = run_audit("--format", "csv", "--since", "2026-03-01", "--until", "2026-03-01")
    lines = list(csv.reader(io.StringIO(out)))
    assert tuple(lines[0]) == audit_export.EXPORT_FIELDS
    assert [line[3] for line in lines[1:]] == ["first", "late-first"]
    index = audit_export.EXPORT_FIELDS.index("user_agent")
    assert lines[1][index] == "'=cmd|calc"


def test_audit_export_to_a_file(dated_rows: dict[str, TokenRequest], tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    out, err = run_audit("--output", str(target), "--since", "2026-03-02")
    assert out == ""
    assert "Wrote 3 audit rows" in err
    assert [json.loads(line)["username"] for line in target.read_text().splitlines()] == [
        "middle",
        "last",
        "after",
    ]
    target = tmp_path / "audit.csv"
    _out, err = run_audit("--output", str(target), "--format", "csv")
    assert "Wrote 6 audit rows" in err
    assert len(list(csv.reader(target.open(newline="")))) == 7


def test_audit_export_of_real_rows_has_no_secret(issued: tuple[TokenRequest, str], upstream: Any) -> None:
    row, key = issued
    for fmt in ("jsonl", "csv"):
        out, _err = run_audit("--format", fmt)
        assert row.secret_fingerprint == fingerprint(key)
        assert row.secret_fingerprint in out
        assert key not in out and key[3:] not in out
        assert upstream.api_key not in out


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "yesterday"),
        ("--until", "2026-13-01"),
        ("--since", "2026-02-30"),
        ("--until", "2026-03-01T25:00"),
    ],
)
def test_audit_export_bad_date_is_a_one_line_command_error(db: Any, args: tuple[str, str]) -> None:
    with pytest.raises(CommandError) as excinfo:
        run_audit(*args)
    message = str(excinfo.value)
    assert "\n" not in message
    assert args[0] in message and args[1] in message


def test_audit_export_of_thousands_of_rows_takes_the_queries_of_ten(preset: SessionPreset, user: Any) -> None:
    """Rows are streamed from one query (a server-side cursor on PostgreSQL), never one query per row or
    per user/preset; how long that takes is measured by bench/admin_pages.py, not asserted here."""

    def export() -> tuple[int, list[list[str]]]:
        with CaptureQueriesContext(connection) as queries:
            out, _err = run_audit("--format", "csv")
        return len(queries), list(csv.reader(io.StringIO(out)))

    fields = {"user": user, "preset": preset, "user_agent": "Mozilla/5.0", "session_config": {"a": 1}}
    make_rows(10, **fields)
    few_queries, few = export()
    make_rows(2990, **fields)
    many_queries, many = export()
    assert (len(few), len(many)) == (11, 3001)
    assert len({int(line[0]) for line in many[1:]}) == 3000
    assert many_queries == few_queries


# ------------------------------------------------------------------------------------ query counts


def count_queries(client: Client, url: str) -> tuple[int, Any]:
    cache.clear()  # the chart is cached for 60 s
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response


def test_audit_changelist_query_count_does_not_grow(
    admin_client: Client, admin_user: Any, preset: SessionPreset, django_user_model: Any
) -> None:
    users = [django_user_model.objects.create_user(f"user{i}") for i in range(5)]
    other = SessionPreset.objects.create(name="other")

    def add(count: int) -> None:
        TokenRequest.objects.bulk_create(
            TokenRequest(
                user=users[i % 5],
                username=users[i % 5].username,
                preset=(preset, other)[i % 2],
                preset_name=(preset, other)[i % 2].name,
                outcome=TokenRequest.Outcome.values[i % 8],
                status_code=201,
                client_ip=f"10.0.0.{i % 250}",
            )
            for i in range(count)
        )

    add(5)
    few, response = count_queries(admin_client, REQUESTS)
    assert len(results(response)) == 5
    add(295)
    many, response = count_queries(admin_client, REQUESTS)
    assert len(results(response)) == 100
    assert many == few
    filtered, _response = count_queries(admin_client, REQUESTS + "?outcome=issued&q=user1")
    add(300)
    assert count_queries(admin_client, REQUESTS + "?outcome=issued&q=user1")[0] == filtered


def test_preset_changelist_query_count_does_not_grow(
    admin_client: Client, admin_user: Any, django_user_model: Any
) -> None:
    editors = [django_user_model.objects.create_user(f"editor{i}") for i in range(3)]
    groups = [Group.objects.create(name=f"g{i}") for i in range(4)]

    def add(start: int, stop: int) -> None:
        for i in range(start, stop):
            preset = SessionPreset.objects.create(
                name=f"p{i}", session=dict(SESSION), updated_by=editors[i % 3], rate="5/m" if i % 2 else ""
            )
            preset.groups.set(groups[: 1 + i % 4])

    add(0, 2)
    few, response = count_queries(admin_client, PRESETS)
    assert len(results(response)) == 2
    add(2, 30)
    many, response = count_queries(admin_client, PRESETS)
    assert len(results(response)) == 30
    assert many == few


# ------------------------------------------------------------------------------------ chart & list


def test_chart_and_top_requesters(admin_client: Client, db: Any) -> None:
    now = timezone.now()
    days = [now, now - dt.timedelta(days=1), now - dt.timedelta(days=9)]
    plan = {
        0: [
            ("issued", "carol", 4),
            ("rate_limited", "carol", 1),
            ("issued", "bob", 3),
            ("invalid", "dave", 1),
        ],
        1: [("issued", "zoe", 10), ("upstream_error", "zoe", 2)],
        2: [("forbidden", "erin", 1), ("issued", "erin", 2), ("upstream_timeout", "erin", 5)],
    }
    for index, entries in plan.items():
        for outcome, username, count in entries:
            make_rows(count, when=days[index], outcome=outcome, username=username)
    make_rows(7, when=now - dt.timedelta(days=31), username="ancient")  # outside the 30 days
    cache.clear()
    page = content(admin_client.get(REQUESTS))
    svg = CHART.search(page)
    assert svg, page
    titles = re.findall(r"<title>(.*?)</title>", svg.group(0))
    expected = {}
    labels = dict(TokenRequest.Outcome.choices)
    for index, entries in plan.items():
        day = timezone.localdate(days[index]).isoformat()
        for outcome, _username, count in entries:
            key = f"{day} {labels[outcome]}"
            expected[key] = expected.get(key, 0) + count
    assert sorted(titles) == sorted(f"{k}: {v}" for k, v in expected.items())
    assert svg.group(0).count("<rect") == len(expected) == 8
    today = timezone.localdate(now).isoformat()
    assert f"<title>{today} issued: 7</title>" in svg.group(0)
    assert f"<title>{today} rate limited: 1</title>" in svg.group(0)

    top = re.search(r'<div id="rt-top-requesters">(.*?)</div>', page, re.S).group(1)
    assert re.findall(r"<tr><td><a[^>]*>(.*?)</a></td><td>(\d+)</td></tr>", top) == [
        ("carol", "5"),
        ("bob", "3"),
        ("dave", "1"),
    ]
    assert "zoe" not in top and "ancient" not in top


def test_the_chart_legend_says_what_the_outcome_filter_says(admin_client: Client, db: Any) -> None:
    make_rows(1, outcome="service_unavailable", status_code=503)
    page = content(admin_client.get(REQUESTS))
    legend = re.findall(r'<span class="rt-legend-item"[^>]*><span[^>]*></span>([^<]+)</span>', page)
    choices = admin_client.get(REQUESTS).context["cl"].filter_specs[0].lookup_choices
    assert legend == [str(label) for _value, label in choices]
    # The label says what the code says (service_unavailable), as docs/http-api.md and the audit row do.
    assert "service unavailable" in legend and "database unavailable" not in legend


def _lab(colour: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB hex colour."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(colour[i : i + 2], 16)) for i in (1, 3, 5))
    x, y, z = (
        (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047,
        0.2126 * r + 0.7152 * g + 0.0722 * b,
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883,
    )

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def _contrast_with_white(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lum = sum(
        w * (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
        for w, c in zip((0.2126, 0.7152, 0.0722), (r, g, b), strict=True)
    )
    return 1.05 / (lum + 0.05)


def test_outcome_colours_are_far_apart_and_carry_white_text() -> None:
    """No two outcomes a reader could confuse in the chart (CIE76 distance of 25 or more; the three oranges
    of before were 16 apart), and each badge's white text readable (contrast 3.5:1 or more)."""
    colours = audit_report.OUTCOME_COLOURS
    assert set(colours) == set(TokenRequest.Outcome.values)
    closest = min(
        (math.dist(_lab(a), _lab(b)), name_a, name_b)
        for (name_a, a), (name_b, b) in itertools.combinations(colours.items(), 2)
    )
    assert closest[0] >= 25, closest
    assert min(_contrast_with_white(c) for c in colours.values()) >= 3.5


def test_every_axis_label_is_inside_the_chart(db: Any) -> None:
    """The last day's label is centred on the last bar: the chart leaves it room (it was clipped)."""
    days = audit_report.daily_outcomes()
    svg = str(audit_report.render_chart(days))
    width = int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    labels = re.findall(
        r'<text x="([\d.]+)" y="[\d.]+" font-size="(\d+)" text-anchor="(\w+)">([^<]+)</text>', svg
    )
    assert labels[-1][3] == days[-1].day.strftime("%d %b")
    for x, size, anchor, text in labels:
        # A generous estimate of the text's width: 0.62 em per character in the default sans-serif.
        extent = len(text) * int(size) * 0.62
        start = {"start": float(x), "middle": float(x) - extent / 2, "end": float(x) - extent}[anchor]
        assert start >= 0 and start + extent <= width, (text, start, start + extent, width)


def test_audit_changelist_while_the_cache_is_down(
    admin_client: Client, settings: Any, caplog: pytest.LogCaptureFixture, db: Any
) -> None:
    """The chart is cached in the default cache (Redis in production): without it the page still works."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    make_rows(3, username="bob")
    working = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    try:
        with caplog.at_level(logging.WARNING, logger="django_rt_sessions.admin"):
            response = admin_client.get(REQUESTS)
    finally:
        settings.CACHES = working  # the suite's own teardown clears the cache
    assert response.status_code == 200
    page = content(response)
    assert CHART.search(page)
    assert ">bob<" in page  # today's top requesters
    assert "computed without the cache" in caplog.text


def test_audit_changelist_with_zero_rows(admin_client: Client, db: Any) -> None:
    response = admin_client.get(REQUESTS)
    assert response.status_code == 200
    page = content(response)
    assert "No requests today." in page
    chart = CHART.search(page)
    assert chart, page
    assert "<rect" not in chart.group(0)
    assert "<title>" not in chart.group(0)
    assert 'id="rt-who-received"' in page and 'id="rt-export-csv"' in page
    assert admin_client.get(PRESETS).status_code == 200
    assert admin_client.get(PRESET_ADD).status_code == 200
    assert admin_client.get(WHO).status_code == 200


def test_audit_list_columns(admin_client: Client, issued: tuple[TokenRequest, str]) -> None:
    row, _key = issued
    page = content(admin_client.get(REQUESTS))
    for header in (
        "Time",
        "Username",
        "Preset name",
        "Outcome",
        "Status code",
        "Upstream time (ms)",
        "Key expires at",
        "Client IP",
    ):
        assert f">{header}<" in page, header
    result = re.search(r"<tr[^>]*>(?:(?!</tr>).)*rt-outcome(?:(?!</tr>).)*</tr>", page, re.S)
    assert result, page
    cells = result.group(0)
    assert f'href="{request_change(row)}"' in cells
    for text in ("alice", "meetings-fr", ">issued</span>", ">201<", f">{row.upstream_ms}<", ">127.0.0.1<"):
        assert text in cells, text
    assert row.client_ip == "127.0.0.1"


@pytest.fixture
def searchable(db: Any) -> dict[str, TokenRequest]:
    rows = {}
    for i, name in enumerate(["bob", "carol", "dave"]):
        [rows[name]] = make_rows(
            1,
            username=name,
            client_ip=f"192.0.2.{i + 1}",
            upstream_session_id=f"sess_{name}{i}",
            upstream_request_id=f"req_{name}{i}",
            secret_fingerprint=f"{i:x}" * 64,
        )
    [rows["v6"]] = make_rows(1, username="eve", client_ip="2001:db8::1")
    return rows


def test_search_by_each_kind_of_term(admin_client: Client, searchable: dict[str, TokenRequest]) -> None:
    carol = searchable["carol"]
    for term in ("carol", "192.0.2.2", " 192.0.2.2 ", "sess_carol1", "req_carol1", "1" * 64):
        assert results(admin_client.get(REQUESTS, {"q": term})) == [carol], term
    assert results(admin_client.get(REQUESTS, {"q": "2001:DB8:0::1"})) == [searchable["v6"]]
    fp = "ab" * 32
    searchable["bob"].secret_fingerprint = fp
    searchable["bob"].save()
    assert results(admin_client.get(REQUESTS, {"q": fp.upper()})) == [searchable["bob"]]
    for term in ("car", "192.0.2", "sess_nobody", "req_nobody", "2" * 63):
        assert results(admin_client.get(REQUESTS, {"q": term})) == [], term


def test_list_filters(admin_client: Client, preset: SessionPreset, db: Any) -> None:
    other = SessionPreset.objects.create(name="other")
    now = timezone.now()
    a = make_rows(2, outcome="issued", preset=preset, preset_name=preset.name)
    b = make_rows(1, outcome="rate_limited", status_code=429, preset=other, preset_name="other")
    c = make_rows(1, when=now - dt.timedelta(days=40), outcome="issued", preset=other, preset_name="other")
    page = content(admin_client.get(REQUESTS))
    assert "?outcome=rate_limited" in page and f"?preset={other.pk}" in page

    def ids(params: dict[str, Any]) -> set[int]:
        return {r.pk for r in results(admin_client.get(REQUESTS, params))}

    assert ids({"outcome": "rate_limited"}) == {r.pk for r in b}
    assert ids({"outcome": "issued"}) == {r.pk for r in a + c}
    assert ids({"preset": other.pk}) == {r.pk for r in b + c}
    assert ids({"preset": other.pk, "outcome": "issued"}) == {r.pk for r in c}
    # The links DateFieldListFilter itself offers ("Past 7 days").
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    params = {
        "created_at__gte": str(today - dt.timedelta(days=7)),
        "created_at__lt": str(today + dt.timedelta(days=1)),
    }
    assert ids(params) == {r.pk for r in a + b}


def test_date_drill_down(admin_client: Client, db: Any) -> None:
    day = timezone.now() - dt.timedelta(days=40)
    old = make_rows(2, when=day)
    make_rows(3)
    local = timezone.localtime(day)
    page = content(admin_client.get(REQUESTS))
    assert f"created_at__year={local.year}" in page
    for params, expected in (
        ({"created_at__year": local.year}, None),
        ({"created_at__year": local.year, "created_at__month": local.month}, None),
        (
            {"created_at__year": local.year, "created_at__month": local.month, "created_at__day": local.day},
            old,
        ),
    ):
        rows = results(admin_client.get(REQUESTS, params))
        if expected is not None:
            assert {r.pk for r in rows} == {r.pk for r in expected}
        else:
            assert {r.pk for r in old} <= {r.pk for r in rows}


# ----------------------------------------------------------------------------------------- actions


def act(client: Client, action: str, *presets: SessionPreset) -> Any:
    return client.post(PRESETS, {"action": action, "_selected_action": [p.pk for p in presets]}, follow=True)


def test_duplicate_action(admin_client: Client, admin_user: Any, preset: SessionPreset, group: Group) -> None:
    preset.groups.set([group])
    preset.rate = "3/m"
    preset.save()
    response = act(admin_client, "duplicate", preset)
    assert response.status_code == 200
    assert "Created meetings-fr-copy." in messages_of(response)
    copy = SessionPreset.objects.get(name="meetings-fr-copy")
    assert (copy.active, copy.default) == (False, False)
    assert copy.session == preset.session
    assert copy.expires_after_seconds == preset.expires_after_seconds
    assert copy.overridable == preset.overridable
    assert copy.rate == "3/m"
    assert list(copy.groups.all()) == [group]
    assert copy.title == "Meetings (French) (copy)"
    assert copy.updated_by == admin_user
    preset.refresh_from_db()
    assert preset.default and preset.active
    assert list(preset.groups.all()) == [group]
    act(admin_client, "duplicate", preset)
    assert SessionPreset.objects.filter(name="meetings-fr-copy-2", active=False).exists()
    assert SessionPreset.objects.filter(default=True).get() == preset


def test_activate_and_deactivate_actions(
    admin_client: Client, admin_user: Any, preset: SessionPreset
) -> None:
    other = SessionPreset.objects.create(name="other", active=False)
    response = act(admin_client, "activate", other)
    assert "Activated 1 preset." in messages_of(response)
    other.refresh_from_db()
    assert other.active and other.updated_by == admin_user
    response = act(admin_client, "deactivate", preset, other)
    assert "Deactivated 2 presets." in messages_of(response)
    assert any("default preset is now inactive" in m for m in messages_of(response))
    assert not SessionPreset.objects.filter(active=True).exists()


def test_make_default_action(admin_client: Client, admin_user: Any, preset: SessionPreset) -> None:
    a = SessionPreset.objects.create(name="a", active=False)
    b = SessionPreset.objects.create(name="b")
    response = act(admin_client, "make_default", a, b)
    assert "Select exactly one preset to make it the default." in messages_of(response)
    assert list(SessionPreset.objects.filter(default=True)) == [preset]
    a.refresh_from_db()
    assert not a.active

    response = act(admin_client, "make_default", a)
    assert "a is now the default preset." in messages_of(response)
    assert list(SessionPreset.objects.filter(default=True)) == [a]
    a.refresh_from_db()
    assert a.active and a.updated_by == admin_user


# ------------------------------------------------------------------------------------------ detail


def test_detail_page_shows_every_field(
    admin_client: Client, issued: tuple[TokenRequest, str], user: Any
) -> None:
    row, _key = issued
    page = content(admin_client.get(request_change(row)))
    model_admin = TokenRequestAdmin(TokenRequest, admin.site)
    for name in TokenRequestAdmin.fields:
        label = capfirst(label_for_field(name, TokenRequest, model_admin))
        assert f"<label>{html.escape(label)}:</label>" in page, name
    pretty = json.dumps(row.session_config, indent=2, sort_keys=True)
    assert "\n  " in pretty
    assert f"<pre>{escape(pretty)}</pre>" in page
    user_url = reverse("admin:auth_user_change", args=[user.pk])
    preset_url = reverse("admin:django_rt_sessions_sessionpreset_change", args=[row.preset_id])
    assert f'<a href="{user_url}">alice</a>' in page
    assert f'<a href="{preset_url}">meetings-fr</a>' in page
    for value in (
        row.secret_fingerprint,
        row.upstream_session_id,
        row.upstream_request_id,
        "Mozilla/5.0 test",
    ):
        assert value and value in page


def test_detail_page_of_a_row_whose_user_and_preset_were_deleted(
    admin_client: Client, issued: tuple[TokenRequest, str], user: Any, preset: SessionPreset
) -> None:
    row, _key = issued
    user_url = reverse("admin:auth_user_change", args=[user.pk])
    preset_url = preset_change(preset)
    user.delete()
    preset.delete()
    row.refresh_from_db()
    assert row.user_id is None and row.preset_id is None
    page = content(admin_client.get(request_change(row)))
    assert page.count("(deleted)") == 2
    assert "alice" in page and "meetings-fr" in page  # the denormalised names
    assert user_url not in page
    assert preset_url not in page


def test_detail_page_of_a_refusal(admin_client: Client, db: Any) -> None:
    [row] = make_rows(1, outcome="invalid", status_code=400, username="", error_message="Bad <b>input</b>")
    page = content(admin_client.get(request_change(row)))
    assert "(nothing was sent)" in page
    assert "Bad &lt;b&gt;input&lt;/b&gt;" in page
    assert "Bad <b>input</b>" not in page
