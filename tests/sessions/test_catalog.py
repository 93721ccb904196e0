"""The known models (docs/presets.md#known-models) and their lifecycle (#model-lifecycle): the shipped
table, the MODELS setting that corrects it, OpenAI's announced shutdowns, the database checks, the admin,
the import, and the 503 after the date, with a fixed clock."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from django_rt_sessions.checks import check_models, check_presets
from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.sessions import catalog

from ..conftest import post, set_rt
from ..example_env import clean_environ

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
BEFORE = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)  # 87 days before the shutdown
SHUTDOWN_DAY = dt.datetime(2027, 2, 26, 0, 0, 1, tzinfo=dt.timezone.utc)
EVE = dt.datetime(2027, 2, 25, 23, 59, tzinfo=dt.timezone.utc)
OLD = {"input_audio_transcription": {"model": "whisper-1", "language": "en"}}


@pytest.fixture
def old_preset(db: Any) -> SessionPreset:
    return SessionPreset.objects.create(name="old", default=True, session=OLD)


@pytest.fixture
def at_before() -> Iterator[None]:
    with time_machine.travel(BEFORE, tick=False):
        yield


def warnings() -> list[checks.CheckMessage]:
    return [m for m in check_presets(databases=["default"]) if m.id == "rt_sessions.W002"]


def test_the_shipped_table() -> None:
    for model in (
        "whisper-1",
        "gpt-4o-mini-transcribe",
        "gpt-4o-mini-transcribe-2025-12-15",
        "gpt-4o-transcribe",
        "gpt-4o-transcribe-diarize",
    ):
        retiring = catalog.retiring(model)
        assert retiring is not None, model
        assert (retiring.shutdown, retiring.replacement) == (dt.date(2027, 2, 26), "gpt-live-transcribe")
    for model in ("gpt-live-transcribe", "gpt-transcribe", "gpt-realtime-whisper", "acme-1", None):
        assert catalog.retiring(model) is None


def test_a_warning_before_the_date(old_preset: SessionPreset, at_before: None) -> None:
    [warning] = warnings()
    assert warning.level == checks.WARNING
    assert warning.msg == (
        "Preset 'old' uses whisper-1, which OpenAI shuts down on 2027-02-26 (in 87 days). "
        "Switch it to gpt-live-transcribe."
    )
    assert warning.obj == old_preset


def test_requests_still_work_until_the_date(
    client: Client, user: Any, old_preset: SessionPreset, upstream: Any
) -> None:
    with time_machine.travel(EVE, tick=False):
        client.force_login(user)  # a session from today would have expired by then
        assert post(client).status_code == 201
        assert "in 1 day)" in warnings()[0].msg


def test_after_the_date_requests_answer_503_without_calling_upstream(
    client: Client, user: Any, old_preset: SessionPreset, upstream: Any
) -> None:
    with time_machine.travel(SHUTDOWN_DAY, tick=False):
        client.force_login(user)
        response = post(client)
        [warning] = warnings()
    assert response.status_code == 503
    assert response.json() == {
        "detail": "This preset's transcription model has been shut down; the site's staff need to update it.",
        "code": "upstream_unavailable",
    }
    assert not upstream.requests
    row = TokenRequest.objects.get()
    assert (row.outcome, row.status_code, row.error_code) == ("upstream_unavailable", 503, "model_retired")
    assert "shut down on 2027-02-26" in row.error_message
    assert warning.level == checks.WARNING  # never an Error: it must not block a deploy
    assert warning.msg == (
        "Preset 'old' uses whisper-1, which OpenAI shut down on 2027-02-26: requests for it answer 503 "
        "(model_retired). Switch it to gpt-live-transcribe."
    )


def test_inactive_presets_and_current_models_get_no_warning(db: Any, at_before: None) -> None:
    SessionPreset.objects.create(name="off", active=False, session=OLD)
    SessionPreset.objects.create(
        name="live", session={"input_audio_transcription": {"model": "gpt-live-transcribe"}}
    )
    assert warnings() == []


def test_models_setting_extends_and_corrects_the_shutdowns(
    api: Client, old_preset: SessionPreset, upstream: Any, settings: Any, at_before: None
) -> None:
    SessionPreset.objects.create(
        name="meetings-fr", session={"input_audio_transcription": {"model": "gpt-live-transcribe"}}
    )
    set_rt(
        settings,
        MODELS={
            "gpt-live-transcribe": {"shutdown": "2026-11-30", "replacement": "gpt-next"},
            "whisper-1": {"shutdown": None},  # OpenAI postponed it, say
        },
    )
    messages = [m.msg for m in warnings()]
    assert messages == [
        "Preset 'meetings-fr' uses gpt-live-transcribe, which OpenAI shut down on 2026-11-30: requests for "
        "it answer 503 (model_retired). Switch it to gpt-next."
    ]
    assert post(api, {"preset": "meetings-fr"}).status_code == 503
    assert post(api, {"preset": "old"}).status_code == 201
    set_rt(settings, MODELS={"gpt-live-transcribe": {"shutdown": "2027-06-01"}})
    assert (
        "Preset 'meetings-fr' uses gpt-live-transcribe, which OpenAI shuts down on 2027-06-01 (in 182 days)."
        in [m.msg for m in warnings()]
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2027-01-01", "RT_SESSIONS['MODELS'] is str, not a dict of models."),
        (
            {"m": {"shutdown": "soon"}},
            "RT_SESSIONS['MODELS']['m']['shutdown'] is 'soon', not a date like '2027-02-26' (or None).",
        ),
        (
            {"m": {"date": "2027-01-01"}},
            "RT_SESSIONS['MODELS']['m']['date'] is not a key of a model entry; the keys are transports, "
            "turn_detection, fields, shutdown, replacement.",
        ),
        (
            {"m": {"shutdown": "2027-01-01", "replacement": ""}},
            "RT_SESSIONS['MODELS']['m']['replacement'] is '': a model name, or None.",
        ),
        (
            {"gpt-transcribe": {"transports": ["webrtc", "sip"]}},
            "RT_SESSIONS['MODELS']['gpt-transcribe']['transports'] is ['webrtc', 'sip']: list one or both of "
            "webrtc, websocket, preferred first.",
        ),
        (
            {"gpt-transcribe": {"turn_detection": "off"}},
            "RT_SESSIONS['MODELS']['gpt-transcribe']['turn_detection'] is 'off': true (server turn detection "
            "allowed) or false (turn detection must be null).",
        ),
        (
            {"m": {"fields": ["keywords", "temperature"]}},
            "RT_SESSIONS['MODELS']['m']['fields'] is ['keywords', 'temperature']: a list of the fields it "
            "takes among languages, keywords, prompt, delay.",
        ),
        (
            {"m": ["websocket"]},
            "RT_SESSIONS['MODELS']['m'] is list: give a dict of transports, "
            "turn_detection, fields, shutdown, replacement, or None.",
        ),
    ],
)
def test_a_malformed_setting_is_an_error_naming_the_model_and_key(
    settings: Any, value: Any, message: str
) -> None:
    set_rt(settings, MODELS=value)
    [error] = check_models()
    assert (error.id, error.level, error.msg) == ("rt_sessions.E008", checks.ERROR, message)


def test_a_well_formed_setting_passes(settings: Any) -> None:
    set_rt(
        settings,
        MODELS={
            "m": {"shutdown": "2027-01-01", "replacement": None},
            "gpt-transcribe": {"transports": ["webrtc", "websocket"], "turn_detection": False, "fields": []},
            "whisper-1": None,
        },
    )
    assert check_models() == []


def test_the_checks_are_database_checks(old_preset: SessionPreset, at_before: None) -> None:
    # Not run by a plain `manage.py check` (no database), run by `check --database default` and migrate.
    assert check_presets() == []
    assert checks.Tags.database in check_presets.tags  # type: ignore[attr-defined]
    ids = [m.id for m in checks.run_checks(databases=["default"], tags=[checks.Tags.database])]
    assert "rt_sessions.W002" in ids


def test_the_admin_shows_the_notice(admin_client: Client, old_preset: SessionPreset, at_before: None) -> None:
    changelist = admin_client.get(
        reverse("admin:django_rt_sessions_sessionpreset_changelist")
    ).content.decode()
    assert "⚠ shuts down 2027-02-26" in changelist
    change = admin_client.get(reverse("admin:django_rt_sessions_sessionpreset_change", args=[old_preset.pk]))
    shown = [str(m) for m in change.context["messages"]]
    assert shown == [
        "Preset 'old' uses whisper-1, which OpenAI shuts down on 2027-02-26 (in 87 days). "
        "Switch it to gpt-live-transcribe."
    ]


def test_the_admin_preview_shows_the_refusal_after_the_date(
    client: Client, admin_user: Any, old_preset: SessionPreset
) -> None:
    with time_machine.travel(SHUTDOWN_DAY, tick=False):
        client.force_login(admin_user)
        page = client.get(
            reverse("admin:django_rt_sessions_sessionpreset_change", args=[old_preset.pk])
        ).content.decode()
    assert 'id="rt-upstream-refusal"' in page
    assert "503 upstream_unavailable (model_retired)" in page
    assert "⚠ shut down" not in page  # that is the list's wording


def test_the_import_prints_the_notice(db: Any, tmp_path: Path, at_before: None) -> None:
    file = tmp_path / "presets.json"
    file.write_text(
        json.dumps([{"name": "old", "session": OLD}, {"name": "off", "active": False, "session": OLD}])
    )
    out = io.StringIO()
    call_command("rt_sessions_presets", "import", str(file), stdout=out)
    assert out.getvalue().count("Warning:") == 1
    assert (
        "Warning: Preset 'old' uses whisper-1, which OpenAI shuts down on 2027-02-26 (in 87 days). "
        "Switch it to gpt-live-transcribe." in out.getvalue()
    )


def test_the_dry_run_is_refused_after_the_date(old_preset: SessionPreset, user: Any) -> None:
    with time_machine.travel(SHUTDOWN_DAY, tick=False), pytest.raises(CommandError) as info:
        call_command("rt_sessions_issue", "--user", user.username, "--dry-run", stdout=io.StringIO())
    assert str(info.value).startswith(
        "upstream_unavailable: This preset's transcription model has been shut down"
    )


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (our own interpreter and manage.py)
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_example_project_warns_for_a_preset_on_whisper_1(tmp_path: Path) -> None:
    env = clean_environ(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert manage(env, "migrate", "--noinput").returncode == 0
    file = tmp_path / "presets.json"
    file.write_text(json.dumps([{"name": "legacy", "session": OLD}]))
    imported = manage(env, "rt_sessions_presets", "import", str(file))
    assert imported.returncode == 0, imported.stderr
    assert "Warning: Preset 'legacy' uses whisper-1, which OpenAI shuts down on 2027-02-26" in imported.stdout

    plain = manage(env, "check")
    assert plain.returncode == 0 and "W002" not in plain.stdout + plain.stderr  # no database: not run
    checked = manage(env, "check", "--database", "default")
    assert checked.returncode == 0, checked.stderr  # a Warning does not fail the command
    output = checked.stdout + checked.stderr
    assert "rt_sessions.W002" in output and "Preset 'legacy' uses whisper-1" in output
    assert "2027-02-26" in output
    migrated = manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0
    assert "rt_sessions.W002" in migrated.stdout + migrated.stderr
