"""The admin (docs/admin.md): presets edited through the one validator, the audit log read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from django_rt_sessions.models import SessionPreset, TokenRequest

from ..conftest import SESSION, post

PRESETS = reverse("admin:django_rt_sessions_sessionpreset_changelist")
PRESET_ADD = reverse("admin:django_rt_sessions_sessionpreset_add")
REQUESTS = reverse("admin:django_rt_sessions_tokenrequest_changelist")
REQUEST_ADD = reverse("admin:django_rt_sessions_tokenrequest_add")


def preset_change(preset: SessionPreset) -> str:
    return reverse("admin:django_rt_sessions_sessionpreset_change", args=[preset.pk])


def request_change(row: TokenRequest) -> str:
    return reverse("admin:django_rt_sessions_tokenrequest_change", args=[row.pk])


def form_data(**changes: Any) -> dict[str, Any]:
    """The preset form's fields describing SESSION (the form lays the session JSON out as fields)."""
    data = {
        "name": "calls-en",
        "title": "Calls",
        "description": "",
        "active": "on",
        "groups": [],
        "input_audio_format": "pcm16",
        "noise_reduction": "far_field",
        "model": "gpt-transcribe",
        "language": "fr",
        "prompt": "",
        "include": ["item.input_audio_transcription.logprobs"],
        "turn_detection": "server_vad",
        "vad_threshold": "0.5",
        "vad_prefix_padding_ms": "300",
        "vad_silence_duration_ms": "500",
        "expires_after_seconds": "120",
        "rate": "",
        "overridable": ["language"],
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


@pytest.fixture
def issued_row(upstream: Any, api: Client, preset: SessionPreset) -> tuple[TokenRequest, str]:
    """An audit row written by the real issuing flow, with the ephemeral key it concerns."""
    response = post(api, {})
    assert response.status_code == 201, response.content
    key = response.json()["client_secret"]["value"]
    api.logout()
    return TokenRequest.objects.get(), key


# ------------------------------------------------------------------------------------------ presets


def test_preset_pages_render(admin_client: Client, preset: SessionPreset) -> None:
    changelist = admin_client.get(PRESETS)
    assert changelist.status_code == 200
    assert b"meetings-fr" in changelist.content
    assert admin_client.get(PRESET_ADD).status_code == 200
    change = admin_client.get(preset_change(preset))
    assert change.status_code == 200
    assert b"far_field" in change.content


def test_preset_added_through_the_admin(admin_client: Client, admin_user: Any, group: Group) -> None:
    response = admin_client.post(PRESET_ADD, form_data(groups=[str(group.pk)], rate="5/m"))
    assert response.status_code == 302, form_errors(response)
    preset = SessionPreset.objects.get(name="calls-en")
    # SESSION minus the empty prompt, which the form does not send.
    expected = {**SESSION, "input_audio_transcription": {"model": "gpt-transcribe", "language": "fr"}}
    assert preset.session == expected
    assert preset.expires_after_seconds == 120
    assert preset.overridable == ["language"]
    assert preset.rate == "5/m"
    assert list(preset.groups.all()) == [group]
    assert preset.updated_by == admin_user


def test_preset_form_not_sent_and_off(admin_client: Client) -> None:
    data = form_data(
        input_audio_format="",
        noise_reduction="off",
        language="",
        include=None,
        turn_detection="off",
        vad_threshold="",
        vad_prefix_padding_ms="",
        vad_silence_duration_ms="",
        overridable=None,
    )
    response = admin_client.post(PRESET_ADD, data)
    assert response.status_code == 302, form_errors(response)
    preset = SessionPreset.objects.get()
    assert preset.session == {
        "input_audio_noise_reduction": None,
        "input_audio_transcription": {"model": "gpt-transcribe"},
        "turn_detection": None,
    }
    assert preset.overridable == []


def test_preset_form_requires_a_model(admin_client: Client) -> None:
    response = admin_client.post(PRESET_ADD, form_data(model="", language="", prompt=""))
    assert form_errors(response) == {"model": ["Required."]}
    assert not SessionPreset.objects.exists()


def test_preset_form_shows_a_stored_preset(admin_client: Client, preset: SessionPreset) -> None:
    response = admin_client.get(preset_change(preset))
    form = response.context["adminform"].form
    assert form.initial["model"] == "gpt-transcribe"
    assert form.initial["language"] == "fr"
    assert form.initial["noise_reduction"] == "far_field"
    assert form.initial["vad_silence_duration_ms"] == 500
    assert form.initial["overridable"] == ["language", "prompt", "noise_reduction"]


def test_preset_changed_through_the_admin(admin_client: Client, preset: SessionPreset) -> None:
    data = form_data(name="meetings-fr", default="on", input_audio_format="g711_alaw", language="de")
    response = admin_client.post(preset_change(preset), data)
    assert response.status_code == 302, form_errors(response)
    preset.refresh_from_db()
    assert preset.session["input_audio_format"] == "g711_alaw"
    assert preset.session["input_audio_transcription"]["language"] == "de"
    assert preset.default


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": "gpt-4o-transcribe-diarize", "prompt": "Acme"}, "prompt"),
        ({"model": "gpt-realtime-whisper", "prompt": "", "turn_detection": "server_vad"}, "turn_detection"),
        ({"language": "FR"}, "language"),
        ({"vad_threshold": "1.5"}, "vad_threshold"),
        ({"vad_prefix_padding_ms": "-1"}, "vad_prefix_padding_ms"),
        ({"vad_silence_duration_ms": "10001"}, "vad_silence_duration_ms"),
    ],
)
def test_preset_form_refuses_an_invalid_session(
    admin_client: Client, changes: dict[str, str], field: str
) -> None:
    errors = form_errors(admin_client.post(PRESET_ADD, form_data(**changes)))
    assert list(errors) == [field]
    assert not SessionPreset.objects.exists()


def test_realtime_whisper_with_turn_detection_off_is_accepted(admin_client: Client) -> None:
    data = form_data(
        model="gpt-realtime-whisper",
        turn_detection="off",
        vad_threshold="",
        vad_prefix_padding_ms="",
        vad_silence_duration_ms="",
    )
    response = admin_client.post(PRESET_ADD, data)
    assert response.status_code == 302, form_errors(response)
    assert SessionPreset.objects.get().session["turn_detection"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"expires_after_seconds": "9"}, "expires_after_seconds"),
        ({"expires_after_seconds": "7201"}, "expires_after_seconds"),
        ({"overridable": ["model"]}, "overridable"),
        ({"rate": "fast"}, "rate"),
        ({"rate": "5/0m"}, "rate"),
        ({"name": "has space"}, "name"),
    ],
)
def test_preset_form_refuses_bad_options(admin_client: Client, changes: dict[str, Any], field: str) -> None:
    errors = form_errors(admin_client.post(PRESET_ADD, form_data(**changes)))
    assert list(errors) == [field]
    assert not SessionPreset.objects.exists()


@pytest.mark.parametrize("seconds", ["10", "7200"])
def test_preset_form_accepts_expiry_bounds(admin_client: Client, seconds: str) -> None:
    response = admin_client.post(PRESET_ADD, form_data(expires_after_seconds=seconds))
    assert response.status_code == 302, form_errors(response)
    assert SessionPreset.objects.get().expires_after_seconds == int(seconds)


def test_preset_form_refuses_a_second_default(admin_client: Client, preset: SessionPreset) -> None:
    response = admin_client.post(PRESET_ADD, form_data(default="on"))
    assert response.status_code == 200
    assert form_errors(response)
    assert SessionPreset.objects.filter(default=True).get() == preset
    assert SessionPreset.objects.count() == 1


# ------------------------------------------------------------------------------------- audit log


def test_token_request_pages_render_without_the_key(
    admin_client: Client, issued_row: tuple[TokenRequest, str], upstream: Any
) -> None:
    row, key = issued_row
    changelist = admin_client.get(REQUESTS)
    assert changelist.status_code == 200
    assert b"alice" in changelist.content
    detail = admin_client.get(request_change(row))
    assert detail.status_code == 200
    content = detail.content.decode()
    assert row.secret_fingerprint in content
    assert "audio/pcm" in content  # the body sent upstream is shown
    assert key not in content
    assert key[3:] not in content
    assert upstream.api_key not in content
    assert key not in changelist.content.decode()


def test_token_request_detail_of_a_direct_row(admin_client: Client, db: Any) -> None:
    row = TokenRequest.objects.create(
        username="bob",
        preset_name="gone",
        outcome="upstream_error",
        status_code=502,
        error_message="Upstream said: no",
        secret_fingerprint="ab" * 32,
        session_config={"session": {"type": "transcription"}},
    )
    response = admin_client.get(request_change(row))
    assert response.status_code == 200
    assert b"Upstream said: no" in response.content
    assert b"ab" * 32 in response.content


def test_token_requests_cannot_be_added(admin_client: Client, db: Any) -> None:
    assert admin_client.get(REQUEST_ADD).status_code == 403
    response = admin_client.post(REQUEST_ADD, {"username": "x", "outcome": "issued", "status_code": "201"})
    assert response.status_code == 403
    assert not TokenRequest.objects.exists()


def test_token_requests_cannot_be_changed(admin_client: Client, issued_row: tuple[TokenRequest, str]) -> None:
    row, _key = issued_row
    response = admin_client.post(
        request_change(row), {"username": "mallory", "outcome": "invalid", "status_code": "400"}
    )
    assert response.status_code == 403
    row.refresh_from_db()
    assert (row.username, row.outcome, row.status_code) == ("alice", "issued", 201)


def test_token_request_search_by_fingerprint(
    admin_client: Client, issued_row: tuple[TokenRequest, str]
) -> None:
    row, _key = issued_row
    TokenRequest.objects.create(username="zed", outcome="invalid", status_code=400)
    response = admin_client.get(REQUESTS, {"q": row.secret_fingerprint})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [row]


# ------------------------------------------------------------------------------------------ access


@pytest.mark.parametrize(
    "url",
    [PRESETS, PRESET_ADD, REQUESTS, REQUEST_ADD],
    ids=["presets", "preset-add", "requests", "request-add"],
)
def test_non_staff_users_are_sent_to_login(api: Client, url: str) -> None:
    response = api.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_non_staff_users_cannot_post_presets(api: Client) -> None:
    response = api.post(PRESET_ADD, form_data())
    assert response.status_code == 302
    assert not SessionPreset.objects.exists()


def test_client_turns_in_the_preset_form(admin_client: Client) -> None:
    live = {
        "model": "gpt-live-transcribe",
        "turn_detection": "off",
        "vad_threshold": "",
        "vad_prefix_padding_ms": "",
    }
    live["vad_silence_duration_ms"] = ""
    response = admin_client.post(PRESET_ADD, form_data(**live, client_silence_duration_ms="800"))
    assert response.status_code == 302, form_errors(response)
    preset = SessionPreset.objects.get()
    assert preset.session["turn_detection"] is None
    assert preset.client_turns == {"silence_duration_ms": 800, "max_turn_ms": 15000}  # the default filled in
    form = admin_client.get(preset_change(preset)).context["adminform"].form
    assert (form.initial["client_silence_duration_ms"], form.initial["client_max_turn_ms"]) == (800, 15000)

    response = admin_client.post(
        preset_change(preset), form_data(**live, client_silence_duration_ms="50", client_max_turn_ms="")
    )
    assert form_errors(response) == {
        "client_silence_duration_ms": ["50 is not a whole number from 100 to 10000."]
    }
    response = admin_client.post(preset_change(preset), form_data(**live))  # both empty: the defaults
    assert response.status_code == 302, form_errors(response)
    preset.refresh_from_db()
    assert preset.client_turns is None


def test_the_preset_form_refuses_server_vad_on_a_model_without_it(admin_client: Client) -> None:
    response = admin_client.post(PRESET_ADD, form_data(model="gpt-live-transcribe"))
    assert form_errors(response) == {
        "turn_detection": [
            "gpt-live-transcribe takes no server turn detection: set it to null (off); the browser client "
            "then commits each turn itself (client_turns)."
        ]
    }
    assert not SessionPreset.objects.exists()
