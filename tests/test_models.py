"""The models (docs/presets.md, docs/audit.md) and their migrations."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict

from django_rt_sessions.audit import export as audit_export
from django_rt_sessions.audit.report import OUTCOME_COLOURS
from django_rt_sessions.errors import ERRORS
from django_rt_sessions.models import SessionPreset, TokenRequest

from .conftest import post

ROOT = Path(__file__).resolve().parent.parent


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


def _audit_docs_table() -> dict[str, str]:
    """docs/audit.md's table of TokenRequest fields: each field name (in backticks) -> its meaning."""
    text = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    table = text.split("## The audit log")[1].split("\n\n| field | meaning |")[1].split("\n\n")[0]
    rows = {}
    for line in table.strip().splitlines()[1:]:
        names, meaning = line.strip("|").split("|", 1)
        for name in re.findall(r"`([a-z_]+)`", names):
            rows[name] = meaning
    return rows


def test_every_outcome_is_one_the_service_writes_and_is_documented() -> None:
    """The outcome choices are exactly what the issuing service can record (an error's outcome, or issued),
    the audit chart has a colour for each, and docs/audit.md lists them all."""
    written = {"issued"} | {outcome for _status, outcome, _detail, _retry in ERRORS.values()}
    choices = set(TokenRequest.Outcome.values)
    assert written == choices
    assert set(OUTCOME_COLOURS) == choices
    assert set(re.findall(r"`([a-z_]+)`", _audit_docs_table()["outcome"])) == choices


def test_every_field_is_exported_and_documented_and_none_holds_a_key() -> None:
    fields = TokenRequest._meta.concrete_fields
    # The exports (admin CSV, rt_sessions_audit) carry every column; the docs describe every field.
    assert set(audit_export.EXPORT_FIELDS) == {field.attname for field in fields}
    assert set(_audit_docs_table()) == {field.name for field in fields} - {"id"}
    # A field named for a key would be the first place one gets stored (the fingerprint is its SHA-256).
    names = {field.name for field in fields}
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
