"""The models (SPEC §3, §5) and their migrations."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict

from django_rt_sessions.models import SessionPreset, TokenRequest

from .conftest import post


def test_preset_names_are_unique(preset: SessionPreset) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        SessionPreset.objects.create(name=preset.name)
    assert SessionPreset.objects.count() == 1


def test_the_database_allows_a_single_default_preset(preset: SessionPreset) -> None:
    assert preset.default
    with pytest.raises(IntegrityError), transaction.atomic():
        SessionPreset.objects.create(name="second-default", default=True)
    assert list(SessionPreset.objects.filter(default=True).values_list("name", flat=True)) == [preset.name]


def test_the_database_refuses_a_default_set_by_update(preset: SessionPreset) -> None:
    other = SessionPreset.objects.create(name="other")
    with pytest.raises(IntegrityError), transaction.atomic():
        SessionPreset.objects.filter(pk=other.pk).update(default=True)


def test_many_non_default_presets_are_fine(db: Any) -> None:
    for name in ("a", "b", "c"):
        SessionPreset.objects.create(name=name, default=False)
    SessionPreset.objects.create(name="d", default=True)
    assert SessionPreset.objects.count() == 4


def test_the_default_can_move(preset: SessionPreset) -> None:
    other = SessionPreset.objects.create(name="other")
    with transaction.atomic():
        SessionPreset.objects.filter(pk=preset.pk).update(default=False)
        SessionPreset.objects.filter(pk=other.pk).update(default=True)
    assert SessionPreset.objects.get(default=True) == other


def test_preset_field_defaults(db: Any) -> None:
    preset = SessionPreset.objects.create(name="bare")
    preset.refresh_from_db()
    assert (preset.active, preset.default, preset.expires_after_seconds) == (True, False, 60)
    assert (preset.session, preset.overridable, preset.rate) == ({}, [], "")
    assert str(preset) == "bare"


def test_deleting_the_user_keeps_the_audit_rows(user: Any, preset: SessionPreset) -> None:
    row = TokenRequest.objects.create(
        user=user, username="alice", preset=preset, preset_name=preset.name, outcome="issued", status_code=201
    )
    user.delete()
    row.refresh_from_db()
    assert row.user is None
    assert row.username == "alice"
    assert row.preset == preset


def test_deleting_the_preset_keeps_the_audit_rows(user: Any, preset: SessionPreset) -> None:
    row = TokenRequest.objects.create(
        user=user, username="alice", preset=preset, preset_name=preset.name, outcome="issued", status_code=201
    )
    preset.delete()
    row.refresh_from_db()
    assert row.preset is None
    assert row.preset_name == "meetings-fr"
    assert row.user == user


def test_token_request_str_and_fields_hold_no_secret(upstream: Any, api: Any, preset: SessionPreset) -> None:
    response = post(api, {})
    assert response.status_code == 201, response.content
    key = response.json()["client_secret"]["value"]
    assert upstream.issued == [key]
    row = TokenRequest.objects.get()
    text = str(row)
    assert "alice" in text
    assert "meetings-fr" in text
    assert "issued" in text
    stored = json.dumps(model_to_dict(row), default=str)
    for secret in (key, key[3:], upstream.api_key):
        assert secret not in text
        assert secret not in stored
    assert row.secret_fingerprint and row.secret_fingerprint not in text


def test_token_request_str_without_user_or_preset(db: Any) -> None:
    row = TokenRequest(outcome="not_found", status_code=404)
    assert str(row) == "- - not_found @ -"


def test_token_request_outcomes_are_the_spec_ones() -> None:
    """SPEC §5's outcomes, plus rate_limit_unavailable (the fail-closed answer when the cache is down)."""
    assert set(TokenRequest.Outcome.values) == {
        "rate_limit_unavailable",
        "service_unavailable",
        "issued",
        "invalid",
        "forbidden",
        "not_found",
        "rate_limited",
        "upstream_error",
        "upstream_unavailable",
        "upstream_timeout",
    }


def test_token_request_has_the_spec_public_fields() -> None:
    names = {f.name for f in TokenRequest._meta.get_fields()}
    assert {
        "created_at",
        "user",
        "username",
        "preset",
        "preset_name",
        "outcome",
        "status_code",
        "upstream_status",
        "upstream_request_id",
        "error_code",
        "error_message",
        "session_config",
        "upstream_session_id",
        "expires_at",
        "secret_fingerprint",
        "client_ip",
        "user_agent",
        "upstream_ms",
    } <= names
    assert not {n for n in names if "key" in n or n in {"secret", "client_secret", "value"}}


def test_audit_rows_are_newest_first(db: Any) -> None:
    first = TokenRequest.objects.create(outcome="issued", status_code=201)
    second = TokenRequest.objects.create(outcome="issued", status_code=201)
    assert list(TokenRequest.objects.all()) == [second, first]


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    out = io.StringIO()
    # --check exits (SystemExit) when a migration is missing.
    call_command("makemigrations", "django_rt_sessions", "--check", "--dry-run", stdout=out, stderr=out)
    assert "No changes detected" in out.getvalue()
