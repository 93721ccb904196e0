"""Input a script can send and a browser would not: never a 500, always one committed audit row, nothing
sent upstream for what cannot be used (docs/http-api.md, docs/audit.md). Runs on SQLite and, in the second
pass of scripts/test, on PostgreSQL (which refuses NUL characters that SQLite stores)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_rt_sessions.models import SessionPreset, TokenRequest

from ..conftest import TRANSCRIBE_URL, post

pytestmark = pytest.mark.django_db


def send(client: Client, raw: str | bytes, **extra: Any) -> Any:
    return client.post(TRANSCRIBE_URL, data=raw, content_type="application/json", **extra)


def assert_refused_and_audited(response: Any, upstream: Any) -> TokenRequest:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "invalid"
    assert "\ud800" not in response.content.decode("utf-8")  # the body is valid UTF-8 JSON
    assert not upstream.requests  # nothing paid for
    row = TokenRequest.objects.get()  # exactly one, committed
    assert (row.outcome, row.status_code, row.error_code) == ("invalid", 400, "invalid")
    assert row.session_config is None
    return row


@pytest.mark.parametrize(
    "raw",
    ["[" * 3000 + "]" * 3000, '{"a":' * 1300 + "1" + "}" * 1300, '{"prompt": ' + "[" * 20 + "]" * 20 + "}"],
    ids=["deep list", "deep object", "twenty levels"],
)
def test_deeply_nested_json(api: Client, preset: SessionPreset, upstream: Any, raw: str) -> None:
    row = assert_refused_and_audited(send(api, raw), upstream)
    assert "nested more than 8 levels" in row.error_message


def test_brackets_inside_strings_do_not_count_as_nesting(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    response = post(api, {"prompt": '[[[[[[[[[[{{{{{{{{{{ \\" [[[['})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"preset": "\\ud800"}', "'preset'"),
        ('{"\\ud800": 1}', "A field name"),
        ('{"prompt": "Acme \\udfff"}', "'prompt'"),
        ('{"keywords": ["ok", "\\ud83d"]}', "'keywords[1]'"),
    ],
    ids=["preset", "key", "prompt", "keyword"],
)
def test_unpaired_surrogates(api: Client, preset: SessionPreset, upstream: Any, raw: str, where: str) -> None:
    preset.overridable = ["prompt", "keywords"]
    preset.session["input_audio_transcription"]["model"] = "gpt-transcribe"
    preset.save()
    response = send(api, raw)
    row = assert_refused_and_audited(response, upstream)
    assert where in response.json()["detail"]
    assert "unpaired surrogate" in response.json()["detail"]
    assert "unpaired surrogate" in row.error_message


def test_a_valid_surrogate_pair_is_fine(api: Client, preset: SessionPreset, upstream: Any) -> None:
    response = send(api, '{"prompt": "Emoji \\ud83d\\ude00"}')
    assert response.status_code == 201, response.content
    assert upstream.requests[0].json["session"]["audio"]["input"]["transcription"]["prompt"] == "Emoji 😀"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"prompt": "a\\u0000b"}', "'prompt'"),
        ('{"preset": "meetings\\u0000fr"}', "'preset'"),
        ('{"\\u0000": 1}', "A field name"),
        ('{"language": "\\u0000"}', "'language'"),
    ],
    ids=["prompt", "preset", "unknown key", "language"],
)
def test_nul_characters(api: Client, preset: SessionPreset, upstream: Any, raw: str, where: str) -> None:
    response = send(api, raw)
    row = assert_refused_and_audited(response, upstream)
    assert where in response.json()["detail"]
    assert "NUL character" in row.error_message


def test_a_nul_in_the_user_agent_is_stored_safely(api: Client, preset: SessionPreset, upstream: Any) -> None:
    response = post(api, {}, HTTP_USER_AGENT="curl/8\x00evil\ud800")
    assert response.status_code == 201, response.content
    row = TokenRequest.objects.get()
    assert row.outcome == "issued"
    assert row.user_agent == "curl/8\ufffdevil\ufffd"


def test_an_unknown_preset_name_with_odd_characters_is_audited(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    response = post(api, {"preset": "é" * 80})
    assert response.status_code == 404
    row = TokenRequest.objects.get()
    assert (row.outcome, row.preset_name) == ("not_found", "é" * 64)
