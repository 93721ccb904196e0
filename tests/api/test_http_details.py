"""HTTP details of the two endpoints: the token URL without its trailing slash, and OPTIONS."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from django_rt_sessions.models import SessionPreset, TokenRequest

from ..conftest import PRESETS_URL, TRANSCRIBE_URL

pytestmark = pytest.mark.django_db

NO_SLASH = TRANSCRIBE_URL.rstrip("/")


def test_the_url_names_keep_their_trailing_slash() -> None:
    assert reverse("rt_sessions:transcription-sessions") == TRANSCRIBE_URL
    assert reverse("rt_sessions:presets") == PRESETS_URL


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG", "production"])
def test_post_without_the_trailing_slash_is_served_the_same(
    user: Any, preset: SessionPreset, upstream: Any, settings: Any, debug: bool
) -> None:
    """Django's APPEND_SLASH cannot redirect a POST (a RuntimeError page under DEBUG, a 301 that loses the
    body otherwise): scripts calling the URL without its slash get the same answer as with it."""
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    client.force_login(user)
    issued = client.post(NO_SLASH, data={"language": "de"}, content_type="application/json")
    assert issued.status_code == 201, issued.content[:300]
    assert issued.json()["client_secret"]["value"] == upstream.issued[-1]
    assert issued.json()["input_audio_transcription"]["language"] == "de"
    refused = client.post(NO_SLASH, data="{nope", content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid"
    assert [(row.outcome, row.status_code) for row in TokenRequest.objects.order_by("pk")] == [
        ("issued", 201),
        ("invalid", 400),
    ]


@pytest.mark.parametrize("url", [TRANSCRIBE_URL, NO_SLASH, PRESETS_URL])
@pytest.mark.parametrize("logged_in", [True, False], ids=["user", "anonymous"])
def test_options_answers_like_any_other_method_not_served(
    client: Client, user: Any, preset: SessionPreset, url: str, logged_in: bool
) -> None:
    if logged_in:
        client.force_login(user)
    response = client.options(url)
    assert response.status_code == (405 if logged_in else 403)
    body = response.json()
    assert set(body) == {"detail", "code"}
    assert body["code"] == ("method_not_allowed" if logged_in else "not_authenticated")
    assert "OPTIONS" not in response["Allow"]
    assert not TokenRequest.objects.exists()
    put = client.put(url)
    assert (put.status_code, put.json()["code"]) == (response.status_code, body["code"])
    assert put["Allow"] == response["Allow"]
