"""The HTTP API of docs/http-api.md, through Django's full stack (middleware, DRF auth, CSRF)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_rt_sessions.models import SessionPreset, TokenRequest

from ..conftest import MINIMAL_SESSION, PRESETS_URL, SESSION, TRANSCRIBE_URL, post

pytestmark = pytest.mark.django_db


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) <= {"detail", "code", "errors"}
    return body


# Outside a transaction, where the preset cache is used (as in production): a test inside one would read
# presets from the database every time (see preset_cache.py).
@pytest.mark.django_db(transaction=True)
class TestIssue:
    def test_default_preset_issues_with_seed_shape(
        self, api: Client, preset: SessionPreset, upstream: Any
    ) -> None:
        response = post(api)
        assert response.status_code == 201
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        assert body["client_secret"]["value"] == upstream.issued[-1]
        assert body["client_secret"]["value"].startswith("ek_")
        assert isinstance(body["client_secret"]["expires_at"], int)
        assert body["input_audio_format"] == "pcm16"
        assert body["input_audio_transcription"] == SESSION["input_audio_transcription"]
        assert body["turn_detection"] == SESSION["turn_detection"]
        assert body["input_audio_noise_reduction"] == {"type": "far_field"}
        assert body["include"] == SESSION["include"]
        assert body["modalities"] == ["text"]
        assert body["id"].startswith("sess_")
        assert body["preset"] == "meetings-fr"
        assert body["connect"]["api"] == "ga"
        assert body["connect"]["webrtc_url"] == f"{upstream.base_url}/realtime/calls"

    def test_named_preset(self, api: Client, preset: SessionPreset, upstream: Any) -> None:
        SessionPreset.objects.create(
            name="other", session={**MINIMAL_SESSION, "input_audio_format": "g711_ulaw"}
        )
        response = post(api, {"preset": "other"})
        assert response.status_code == 201
        assert response.json()["preset"] == "other"
        assert response.json()["input_audio_format"] == "g711_ulaw"

    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"language": "de"}, {"model": "gpt-transcribe", "language": "de", "prompt": ""}),
            (
                {"prompt": "Acme, Zorg"},
                {"model": "gpt-transcribe", "language": "fr", "prompt": "Acme, Zorg"},
            ),
            ({"language": None}, {"model": "gpt-transcribe", "prompt": ""}),
        ],
    )
    def test_allowed_overrides_reach_upstream(
        self, api: Client, preset: SessionPreset, upstream: Any, overrides: dict, expected: dict
    ) -> None:
        response = post(api, overrides)
        assert response.status_code == 201, response.content
        sent = upstream.requests[-1].json["session"]["audio"]["input"]["transcription"]
        assert sent == expected
        assert response.json()["input_audio_transcription"] == expected

    @pytest.mark.parametrize(("value", "expected"), [("near_field", {"type": "near_field"}), (None, None)])
    def test_noise_reduction_override(
        self, api: Client, preset: SessionPreset, upstream: Any, value: Any, expected: Any
    ) -> None:
        response = post(api, {"noise_reduction": value})
        assert response.status_code == 201
        assert upstream.requests[-1].json["session"]["audio"]["input"]["noise_reduction"] == expected

    def test_presets_are_not_changed_by_overrides(
        self, api: Client, preset: SessionPreset, upstream: Any
    ) -> None:
        """Neither the stored preset nor the copy the preset cache keeps for the next requests."""
        assert post(api, {"language": "de", "prompt": "Acme"}).status_code == 201
        with CaptureQueriesContext(connection) as queries:
            again = post(api)
        assert again.status_code == 201
        # Served from the preset cache: the copy kept there is what this test checks.
        assert not [q for q in queries.captured_queries if "sessionpreset" in q["sql"]]
        sent = upstream.requests[-1].json["session"]["audio"]["input"]["transcription"]
        assert sent == SESSION["input_audio_transcription"]
        assert again.json()["input_audio_transcription"] == SESSION["input_audio_transcription"]
        preset.refresh_from_db()
        assert preset.session == SESSION


class TestRefusals:
    @pytest.mark.parametrize(
        "raw",
        [b"{not json", b"[1, 2]", b'"text"', b"42", b"null", b"\xff\xfe"],
        ids=["malformed", "list", "string", "number", "null", "not-utf8"],
    )
    def test_bad_bodies_are_invalid_and_audited(
        self, api: Client, preset: SessionPreset, upstream: Any, raw: bytes
    ) -> None:
        response = api.post(TRANSCRIBE_URL, data=raw, content_type="application/json")
        assert_error(response, 400, "invalid")
        assert upstream.requests == []
        row = TokenRequest.objects.get()
        assert (row.outcome, row.status_code, row.error_code) == ("invalid", 400, "invalid")

    def test_form_encoded_body_is_refused(self, api: Client, preset: SessionPreset, upstream: Any) -> None:
        response = api.post(TRANSCRIBE_URL, data={"preset": "meetings-fr"})
        assert_error(response, 400, "invalid")
        assert upstream.requests == []

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "text/plain; charset=utf-8", "application/xml", "application/x-ndjson"]
    )
    def test_json_under_another_content_type_is_refused(
        self, api: Client, preset: SessionPreset, upstream: Any, content_type: str
    ) -> None:
        response = api.post(TRANSCRIBE_URL, data='{"preset": "meetings-fr"}', content_type=content_type)
        body = assert_error(response, 400, "invalid")
        assert body["detail"].startswith(f"Content-Type {content_type.split(';')[0]!r} is not JSON")
        assert upstream.requests == []
        assert TokenRequest.objects.get().outcome == "invalid"

    @pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
    def test_json_or_no_content_type_is_read(
        self, api: Client, preset: SessionPreset, upstream: Any, content_type: str | None
    ) -> None:
        if content_type is None:  # curl -d without -H: no Content-Type header at all
            response = api.generic("POST", TRANSCRIBE_URL, b'{"preset": "meetings-fr"}', content_type="")
        else:
            response = api.post(TRANSCRIBE_URL, data='{"preset": "meetings-fr"}', content_type=content_type)
        assert response.status_code == 201, response.content

    def test_unknown_field(self, api: Client, preset: SessionPreset, upstream: Any) -> None:
        body = assert_error(post(api, {"model": "whisper-1"}), 400, "invalid")
        assert "model" in body["errors"]
        assert upstream.requests == []

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"language": "french"}, "language"),
            ({"language": "FR"}, "language"),
            ({"language": 12}, "language"),
            ({"prompt": "x" * 4001}, "prompt"),
            ({"prompt": ["a"]}, "prompt"),
            ({"noise_reduction": "loud"}, "noise_reduction"),
            ({"preset": 7}, "preset"),
        ],
    )
    def test_bad_values(
        self, api: Client, preset: SessionPreset, upstream: Any, payload: dict, field: str
    ) -> None:
        body = assert_error(post(api, payload), 400, "invalid")
        assert field in body["errors"]
        assert upstream.requests == []

    def test_override_not_allowed(self, api: Client, preset: SessionPreset, upstream: Any) -> None:
        preset.overridable = ["language"]
        preset.save()
        body = assert_error(post(api, {"language": "de", "prompt": "hi"}), 400, "override_not_allowed")
        assert list(body["errors"]) == ["prompt"]
        assert upstream.requests == []
        row = TokenRequest.objects.get()
        assert (row.outcome, row.error_code) == ("invalid", "override_not_allowed")

    def test_override_breaking_a_model_rule_is_invalid(self, api: Client, upstream: Any) -> None:
        SessionPreset.objects.create(
            name="diarize",
            default=True,
            session={"input_audio_transcription": {"model": "gpt-4o-transcribe-diarize"}},
            overridable=["prompt"],
        )
        body = assert_error(post(api, {"prompt": "names"}), 400, "invalid")
        assert "prompt" in body["errors"]
        assert upstream.requests == []

    @pytest.mark.django_db(transaction=True)  # the preset cache's real path, as in TestIssue
    def test_unknown_preset(self, api: Client, preset: SessionPreset, upstream: Any) -> None:
        assert_error(post(api, {"preset": "nope"}), 404, "preset_not_found")
        row = TokenRequest.objects.get()
        assert (row.outcome, row.preset_name, row.preset) == ("not_found", "nope", None)

    @pytest.mark.django_db(transaction=True)
    def test_inactive_preset(self, api: Client, preset: SessionPreset, upstream: Any) -> None:
        assert post(api, {"preset": "meetings-fr"}).status_code == 201  # now in the preset cache
        preset.active = False
        preset.save()
        assert_error(post(api, {"preset": "meetings-fr"}), 404, "preset_not_found")
        assert_error(post(api), 404, "preset_not_found")

    @pytest.mark.django_db(transaction=True)
    def test_no_default_preset(self, api: Client, upstream: Any) -> None:
        SessionPreset.objects.create(name="not-default")
        body = assert_error(post(api), 404, "preset_not_found")
        assert "default" in body["detail"]

    @pytest.mark.django_db(transaction=True)
    def test_group_restricted_preset(
        self, api: Client, preset: SessionPreset, group: Any, user: Any, upstream: Any
    ) -> None:
        assert post(api).status_code == 201  # open to everyone, and now in the preset cache
        preset.groups.add(group)
        assert_error(post(api), 403, "preset_forbidden")
        assert TokenRequest.objects.filter(outcome="forbidden").count() == 1
        user.groups.add(group)
        assert post(api).status_code == 201

    def test_body_over_8_kib(self, api: Client, preset: SessionPreset, upstream: Any) -> None:
        payload = json.dumps({"prompt": "x" * 9000})
        assert_error(api.post(TRANSCRIBE_URL, data=payload, content_type="application/json"), 400, "invalid")
        assert upstream.requests == []
        assert TokenRequest.objects.get().outcome == "invalid"

    def test_body_of_exactly_8_kib_is_read(self, api: Client, preset: SessionPreset, upstream: Any) -> None:
        payload = json.dumps({"language": "de"}).ljust(8192)  # trailing spaces are valid JSON
        assert len(payload) == 8192
        assert api.post(TRANSCRIBE_URL, data=payload, content_type="application/json").status_code == 201


class TestAuthentication:
    def test_anonymous_is_refused_and_not_audited(
        self, client: Client, preset: SessionPreset, upstream: Any
    ) -> None:
        response = post(client)
        assert response.status_code == 403  # session auth: DRF answers 403, no WWW-Authenticate
        assert response.json()["code"] == "not_authenticated"
        assert TokenRequest.objects.count() == 0
        assert upstream.requests == []

    def test_anonymous_presets(self, client: Client) -> None:
        response = client.get(PRESETS_URL)
        assert response.status_code == 403
        assert response.json()["code"] == "not_authenticated"

    def test_csrf_is_enforced_for_session_auth(
        self, csrf_client: Client, preset: SessionPreset, upstream: Any
    ) -> None:
        body = assert_error(post(csrf_client), 403, "permission_denied")
        assert "CSRF" in body["detail"]
        assert upstream.requests == []

    def test_csrf_token_lets_the_request_through(
        self, csrf_client: Client, preset: SessionPreset, upstream: Any
    ) -> None:
        token = _get_new_csrf_string()  # what a browser holds from the csrftoken cookie
        csrf_client.cookies["csrftoken"] = token
        response = post(csrf_client, {}, HTTP_X_CSRFTOKEN=token)
        assert response.status_code == 201

    def test_method_not_allowed_has_envelope(self, api: Client) -> None:
        assert_error(api.get(TRANSCRIBE_URL), 405, "method_not_allowed")


class TestPresetList:
    def test_lists_active_presets_the_user_may_use(
        self, api: Client, user: Any, group: Any, preset: SessionPreset
    ) -> None:
        SessionPreset.objects.create(name="inactive", active=False)
        restricted = SessionPreset.objects.create(name="restricted", rate="5/m")
        restricted.groups.add(group)
        names = [p["name"] for p in api.get(PRESETS_URL).json()["results"]]
        assert names == ["meetings-fr"]
        user.groups.add(group)
        results = api.get(PRESETS_URL).json()["results"]
        assert [p["name"] for p in results] == ["meetings-fr", "restricted"]
        assert set(results[1]) == {
            "name",
            "title",
            "description",
            "default",
            "overridable",
            "expires_after_seconds",
            "session",
            # The relay options (docs/presets.md#relay-presets).
            "relay",
            "max_session_seconds",
            "max_concurrent_sessions",
            "daily_audio_minutes",
            "idle_timeout_seconds",
        }
        assert results[0]["session"] == SESSION


def test_successful_issuance_runs_at_most_six_queries(
    api: Client,
    preset: SessionPreset,
    group: Any,
    user: Any,
    upstream: Any,
    django_assert_max_num_queries: Any,
) -> None:
    preset.groups.add(group)  # the costlier path: the group check runs
    user.groups.add(group)
    with django_assert_max_num_queries(6):
        response = post(api, {"language": "de"})
    assert response.status_code == 201


def test_json_even_when_the_site_enables_the_browsable_api(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_RENDERER_CLASSES": [
            "rest_framework.renderers.BrowsableAPIRenderer",
            "rest_framework.renderers.JSONRenderer",
        ],
    }
    response = api.get(PRESETS_URL, HTTP_ACCEPT="text/html,*/*;q=0.8")
    assert response["Content-Type"] == "application/json"
    response = post(api, {"preset": "nope"}, HTTP_ACCEPT="text/html,*/*;q=0.8")
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "preset_not_found"
