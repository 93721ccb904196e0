"""The management commands (docs/presets.md, docs/audit.md): rt_sessions_presets, rt_sessions_issue,
rt_sessions_prune."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_rt_sessions.models import SessionPreset, TokenRequest
from django_rt_sessions.presets.files import export_presets

from .conftest import MINIMAL_SESSION, SESSION, set_rt

REPO = Path(__file__).resolve().parent.parent


def run(*args: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def write_json(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def preset_json(name: str, **changes: Any) -> dict[str, Any]:
    data = {
        "name": name,
        "title": f"Title of {name}",
        "description": "",
        "active": True,
        "default": False,
        "session": copy.deepcopy(SESSION),
        "expires_after_seconds": 60,
        "overridable": ["language"],
        "groups": [],
    }
    data.update(changes)
    return data


def db_state() -> list[dict[str, Any]]:
    """Every stored preset field that import controls, plus its groups, in a comparable form."""
    return [
        {
            **{
                f: getattr(p, f)
                for f in (
                    "name",
                    "title",
                    "description",
                    "active",
                    "default",
                    "session",
                    "expires_after_seconds",
                    "overridable",
                    "rate",
                )
            },
            "groups": sorted(p.groups.values_list("name", flat=True)),
        }
        for p in SessionPreset.objects.order_by("name")
    ]


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message
    return message


def one_line_each(exc: BaseException) -> str:
    """An import's errors: one line per problem, each naming the preset (and the field)."""
    message = str(exc)
    assert all(line.startswith("Preset") for line in message.splitlines()), message
    return message


# ------------------------------------------------------------------------------- rt_sessions_presets


@pytest.fixture
def two_presets(preset: SessionPreset, group: Group) -> list[SessionPreset]:
    other = SessionPreset.objects.create(
        name="calls-en",
        title="Calls",
        description="Phone calls",
        active=False,
        session={**MINIMAL_SESSION, "input_audio_format": "g711_ulaw", "turn_detection": None},
        expires_after_seconds=300,
        overridable=[],
        rate="3/h",
    )
    other.groups.add(group, Group.objects.create(name="agents"))
    return [preset, other]


def test_export_prints_a_json_list_in_spec_format(two_presets: list[SessionPreset]) -> None:
    data = json.loads(run("rt_sessions_presets", "export"))
    assert isinstance(data, list)
    assert [p["name"] for p in data] == ["calls-en", "meetings-fr"]
    calls, meetings = data
    assert calls == {
        "name": "calls-en",
        "title": "Calls",
        "description": "Phone calls",
        "active": False,
        "default": False,
        "session": {**MINIMAL_SESSION, "input_audio_format": "g711_ulaw", "turn_detection": None},
        "expires_after_seconds": 300,
        "overridable": [],
        "rate": "3/h",
        "groups": ["agents", "transcribers"],
    }
    assert meetings["default"] is True
    assert meetings["session"] == SESSION
    assert meetings["overridable"] == ["language", "prompt", "noise_reduction"]
    assert meetings["groups"] == []
    assert meetings.get("rate", "") == ""
    # Every keys is one the importer knows: the export is importable as it is.
    allowed = {
        "name",
        "title",
        "description",
        "active",
        "default",
        "session",
        "expires_after_seconds",
        "overridable",
        "rate",
        "groups",
    }
    assert set(calls) <= allowed
    assert set(meetings) <= allowed


def test_export_of_no_presets_is_an_empty_list(db: Any) -> None:
    assert json.loads(run("rt_sessions_presets", "export")) == []


def test_export_to_a_file(two_presets: list[SessionPreset], tmp_path: Path) -> None:
    target = tmp_path / "presets.json"
    assert run("rt_sessions_presets", "export", str(target)) == ""
    assert json.loads(target.read_text(encoding="utf-8")) == export_presets()


def test_round_trip_into_an_emptied_database(two_presets: list[SessionPreset], tmp_path: Path) -> None:
    before = db_state()
    path = tmp_path / "presets.json"
    path.write_text(run("rt_sessions_presets", "export"), encoding="utf-8")
    SessionPreset.objects.all().delete()
    Group.objects.all().delete()
    assert db_state() == []

    output = run("rt_sessions_presets", "import", str(path))

    assert db_state() == before
    assert "2 created" in output
    assert set(Group.objects.values_list("name", flat=True)) == {"agents", "transcribers"}


def test_import_creates_presets_and_groups(db: Any, tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "p.json",
        [preset_json("a", default=True, groups=["g1"], rate="5/m"), preset_json("b", groups=["g1", "g2"])],
    )
    output = run("rt_sessions_presets", "import", path)
    assert "Created group 'g1'." in output
    assert "Created group 'g2'." in output
    assert "Imported 2 presets (2 created, 0 updated)." in output
    a, b = SessionPreset.objects.order_by("name")
    assert a.default and not b.default
    assert a.rate == "5/m"
    assert a.session == SESSION
    assert list(b.groups.order_by("name").values_list("name", flat=True)) == ["g1", "g2"]


def test_import_fills_defaults(db: Any, tmp_path: Path) -> None:
    bare = [{"name": "bare", "session": MINIMAL_SESSION}]
    run("rt_sessions_presets", "import", write_json(tmp_path / "p.json", bare))
    preset = SessionPreset.objects.get(name="bare")
    assert (preset.active, preset.default, preset.expires_after_seconds) == (True, False, 60)
    assert (preset.session, preset.overridable, preset.rate) == (MINIMAL_SESSION, [], "")


def test_import_requires_a_model(db: Any, tmp_path: Path) -> None:
    with pytest.raises(CommandError) as info:
        run("rt_sessions_presets", "import", write_json(tmp_path / "p.json", [{"name": "bare"}]))
    assert str(info.value) == "Preset 'bare', field 'session.input_audio_transcription': Required."
    assert not SessionPreset.objects.exists()


def test_import_is_idempotent(db: Any, tmp_path: Path) -> None:
    path = write_json(tmp_path / "p.json", [preset_json("a", default=True, groups=["g"]), preset_json("b")])
    run("rt_sessions_presets", "import", path)
    first = db_state()
    pks = list(SessionPreset.objects.order_by("name").values_list("pk", flat=True))

    output = run("rt_sessions_presets", "import", path)

    assert db_state() == first
    assert list(SessionPreset.objects.order_by("name").values_list("pk", flat=True)) == pks
    assert Group.objects.count() == 1
    assert "(0 created, 2 updated)" in output
    assert "Created group" not in output


def test_import_upserts_by_name(preset: SessionPreset, tmp_path: Path) -> None:
    preset.groups.add(Group.objects.create(name="old"))
    untouched = SessionPreset.objects.create(name="untouched", title="Keep me")
    path = write_json(
        tmp_path / "p.json",
        [preset_json("meetings-fr", title="New title", default=False, overridable=[], groups=["new"])],
    )
    run("rt_sessions_presets", "import", path)
    preset.refresh_from_db()
    assert preset.title == "New title"
    assert preset.default is False
    assert preset.overridable == []
    assert list(preset.groups.values_list("name", flat=True)) == ["new"]
    assert SessionPreset.objects.get(pk=untouched.pk).title == "Keep me"
    assert SessionPreset.objects.count() == 2


def test_import_moves_the_default(preset: SessionPreset, tmp_path: Path) -> None:
    run("rt_sessions_presets", "import", write_json(tmp_path / "p.json", [preset_json("new", default=True)]))
    assert list(SessionPreset.objects.filter(default=True).values_list("name", flat=True)) == ["new"]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            preset_json("bad-one", session={"input_audio_format": "mp3"}),
            ["'bad-one'", "'session.input_audio_format'"],
        ),
        (preset_json("bad-one", expires_after_seconds=7201), ["'bad-one'", "'expires_after_seconds'"]),
        (preset_json("bad-one", rate="often"), ["'bad-one'", "'rate'"]),
        (preset_json("bad-one", colour="red"), ["'bad-one'", "'colour'"]),
        (
            preset_json(
                "bad-one",
                session={"input_audio_transcription": {"model": "gpt-4o-transcribe-diarize", "prompt": "x"}},
            ),
            ["'bad-one'", "'session.input_audio_transcription.prompt'"],
        ),
        ({"title": "no name"}, ["'#3'", "'name'"]),
        ("not an object", ["'#3'", "'preset'"]),
        (preset_json("a"), ["'a'", "more than once"]),
        (preset_json("c", default=True), ["'a'", "'c'", "'default'"]),
    ],
)
def test_bad_import_is_all_or_nothing_with_a_clear_error(
    preset: SessionPreset, tmp_path: Path, bad: Any, expected: list[str]
) -> None:
    before = db_state()
    path = write_json(
        tmp_path / "p.json", [preset_json("a", default=True, groups=["g"]), preset_json("b"), bad]
    )

    with pytest.raises(CommandError) as info:
        run("rt_sessions_presets", "import", path)

    message = one_line_each(info.value)
    for fragment in expected:
        assert fragment in message
    assert db_state() == before
    assert not Group.objects.filter(name="g").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ("", "is not valid JSON"),
        ('{"name": "a"}', "JSON list"),
        ("null", "JSON list"),
    ],
)
def test_import_of_a_malformed_file(
    preset: SessionPreset, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "p.json"
    path.write_text(content, encoding="utf-8")
    before = db_state()
    with pytest.raises(CommandError) as info:
        run("rt_sessions_presets", "import", str(path))
    assert expected in one_line(info.value)
    assert db_state() == before


def test_import_of_a_missing_file(db: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(CommandError) as info:
        run("rt_sessions_presets", "import", str(missing))
    message = one_line(info.value)
    assert str(missing) in message
    assert "No such file" in message


def test_import_of_non_utf8_file(db: Any, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(b'[{"name": "\xff"}]')
    with pytest.raises(CommandError) as info:
        run("rt_sessions_presets", "import", str(path))
    assert "not valid JSON" in one_line(info.value)


def test_import_from_stdin(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps([preset_json("from-stdin")])))
    run("rt_sessions_presets", "import", "-")
    assert SessionPreset.objects.filter(name="from-stdin").exists()


def test_presets_command_needs_an_action(db: Any) -> None:
    with pytest.raises(CommandError):
        run("rt_sessions_presets")


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RT_TEST_", "DJANGO_", "OPENAI_"))}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(REPO), **extra)
    return env


def _manage(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed interpreter and arguments
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "Cannot read"),
        ("{not json", "is not valid JSON"),
        ('{"a": 1}', "JSON list"),
        (
            '[{"name": "x", "expires_after_seconds": 5, '
            '"session": {"input_audio_transcription": {"model": "m"}}}]',
            "'x', field 'expires_after_seconds'",
        ),
    ],
    ids=["missing-file", "invalid-json", "not-a-list", "bad-value"],
)
def test_import_errors_in_a_real_process(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = _manage("rt_sessions_presets", "import", str(path), env=_subprocess_env())
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one problem, one line
    assert lines[0].startswith("CommandError: ")
    assert expected in lines[0]


def test_import_prints_every_problem_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    presets = [
        {"name": "a", "expires_after_seconds": 5, "rate": "often", "session": {"input_audio_format": "mp3"}},
        {"name": "b", "colour": "blue", "session": {"input_audio_transcription": {"model": "whisper-1"}}},
    ]
    path.write_text(json.dumps(presets), encoding="utf-8")
    result = _manage("rt_sessions_presets", "import", str(path), env=_subprocess_env())
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().removeprefix("CommandError: ").splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "Preset 'a', field 'expires_after_seconds'",
        "Preset 'a', field 'rate'",
        "Preset 'a', field 'session.input_audio_format'",
        "Preset 'a', field 'session.input_audio_transcription'",
        "Preset 'b', field 'colour'",
    ]


DEEP = 100_000  # levels: deeper than any recursion limit


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("rt_sessions_presets", "import", "{tmp}/deep-list.json"), "nested too deeply"),
        (("rt_sessions_presets", "import", "{tmp}/deep-object.json"), "nested too deeply"),
        (("rt_sessions_presets", "export", "{tmp}/no-such-dir/presets.json"), "Cannot write"),
        (("rt_sessions_presets", "export", "{tmp}"), "Cannot write"),
        (("rt_sessions_audit", "export", "--output", "{tmp}/no-such-dir/audit.jsonl"), "Cannot write"),
        (("rt_sessions_prune", "--days", "99999999999"), "--days"),
    ],
    ids=[
        "deep-list",
        "deep-object",
        "export-to-missing-dir",
        "export-to-a-dir",
        "audit-output",
        "prune-days",
    ],
)
def test_every_command_error_is_one_line_and_exit_1(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    (tmp_path / "deep-list.json").write_text("[" * DEEP + "]" * DEEP, encoding="utf-8")
    (tmp_path / "deep-object.json").write_text('{"a":' * DEEP + "1" + "}" * DEEP, encoding="utf-8")
    env = _subprocess_env(RT_TEST_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert _manage("migrate", "--noinput", env=env).returncode == 0
    result = _manage(*(arg.format(tmp=tmp_path) for arg in args), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CommandError: ") and expected in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "rows"),
    [
        (("--until", "9999-12-31"), ["old", "new"]),
        (("--since", "0001-01-01"), ["old", "new"]),
        (("--since", "0001-01-01", "--until", "9999-12-31"), ["old", "new"]),
        (("--since", "9999-12-31"), []),
        (("--until", "0001-01-01"), []),
        (("--since", "9999-12-31T23:30:00"), []),
        (("--until", "0001-01-01T00:30:00"), []),
    ],
    ids=str,
)
@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_audit_export_at_the_ends_of_the_calendar(
    db: Any, settings: Any, args: tuple[str, ...], rows: list[str], zone: str
) -> None:
    """The first and last days Python can name are bounds like any other, in zones ahead of and behind UTC."""
    settings.TIME_ZONE = zone
    TokenRequest.objects.create(username="old", outcome="issued", status_code=201)
    TokenRequest.objects.create(username="new", outcome="issued", status_code=201)
    out = io.StringIO()
    call_command("rt_sessions_audit", "export", *args, stdout=out, stderr=io.StringIO())
    assert [json.loads(line)["username"] for line in out.getvalue().splitlines()] == rows


@pytest.mark.parametrize(
    ("count", "summary"),
    [(1, "Imported 1 preset (1 created, 0 updated)."), (2, "Imported 2 presets (2 created, 0 updated).")],
)
def test_import_summary_counts_in_words(db: Any, tmp_path: Path, count: int, summary: str) -> None:
    path = write_json(tmp_path / "p.json", [preset_json(f"p{i}") for i in range(count)])
    assert run("rt_sessions_presets", "import", path).strip().splitlines()[-1] == summary


def test_import_export_round_trip_in_real_processes(tmp_path: Path) -> None:
    """migrate, import twice and export in separate processes against a file SQLite database."""
    env = _subprocess_env(RT_TEST_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate = _manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    presets = [
        preset_json("a", default=True, groups=["g1"], rate="5/m"),
        preset_json(
            "b", active=False, session={**MINIMAL_SESSION, "turn_detection": None}, groups=["g1", "g2"]
        ),
    ]
    path = write_json(tmp_path / "p.json", presets)

    for _ in range(2):
        imported = _manage("rt_sessions_presets", "import", path, env=env)
        assert imported.returncode == 0, imported.stderr
    assert "(0 created, 2 updated)" in imported.stdout

    exported = _manage("rt_sessions_presets", "export", env=env)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == presets


# --------------------------------------------------------------------------------- rt_sessions_issue


def test_issue_dry_run_prints_the_ga_body_and_sends_nothing(
    upstream: Any, preset: SessionPreset, user: Any
) -> None:
    output = run("rt_sessions_issue", "--user", "alice", "--dry-run")
    body = json.loads(output)
    assert body == {
        "expires_after": {"anchor": "created_at", "seconds": 60},
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "noise_reduction": {"type": "far_field"},
                    "transcription": SESSION["input_audio_transcription"],
                    "turn_detection": SESSION["turn_detection"],
                }
            },
            "include": SESSION["include"],
        },
    }
    assert upstream.requests == []
    assert upstream.issued == []
    assert TokenRequest.objects.count() == 0


def test_issue_dry_run_with_the_beta_upstream(
    upstream: Any, preset: SessionPreset, user: Any, settings: Any
) -> None:
    set_rt(settings, UPSTREAM="openai-beta")
    body = json.loads(run("rt_sessions_issue", "--user", "alice", "--preset", "meetings-fr", "--dry-run"))
    assert body["input_audio_format"] == "pcm16"
    assert "expires_after" not in body
    assert upstream.requests == []
    assert TokenRequest.objects.count() == 0


def test_issue_dry_run_does_not_count_against_rate_limits(
    upstream: Any, preset: SessionPreset, user: Any, settings: Any
) -> None:
    set_rt(settings, USER_RATE="1/m")
    for _ in range(3):
        run("rt_sessions_issue", "--user", "alice", "--dry-run")
    run("rt_sessions_issue", "--user", "alice")
    assert TokenRequest.objects.get().outcome == "issued"


def test_issue_sends_one_request_and_audits_it(upstream: Any, preset: SessionPreset, user: Any) -> None:
    output = run("rt_sessions_issue", "--user", "alice", "--preset", "meetings-fr")

    body = json.loads(output)
    assert len(upstream.requests) == 1
    assert upstream.requests[0].json["session"]["type"] == "transcription"
    key = body["client_secret"]["value"]
    assert upstream.issued == [key]
    assert key.startswith("ek_")
    assert body["preset"] == "meetings-fr"
    assert body["input_audio_transcription"] == SESSION["input_audio_transcription"]

    row = TokenRequest.objects.get()
    assert row.outcome == "issued"
    assert row.status_code == 201
    assert row.user == user
    assert row.username == "alice"
    assert row.preset == preset
    assert row.preset_name == "meetings-fr"
    assert row.secret_fingerprint == hashlib.sha256(key.encode()).hexdigest()
    assert row.session_config == upstream.requests[0].json
    assert row.user_agent == "manage.py rt_sessions_issue"
    assert row.client_ip is None


def test_issue_uses_the_default_preset(upstream: Any, preset: SessionPreset, user: Any) -> None:
    SessionPreset.objects.create(name="other", session={"input_audio_format": "g711_alaw"})
    body = json.loads(run("rt_sessions_issue", "--user", "alice"))
    assert body["preset"] == "meetings-fr"


def test_issue_for_an_unknown_user(upstream: Any, preset: SessionPreset, user: Any) -> None:
    with pytest.raises(CommandError) as info:
        run("rt_sessions_issue", "--user", "nobody")
    assert "'nobody'" in one_line(info.value)
    assert upstream.requests == []
    assert TokenRequest.objects.count() == 0


def test_issue_for_an_inactive_user(upstream: Any, preset: SessionPreset, user: Any) -> None:
    user.is_active = False
    user.save()
    with pytest.raises(CommandError) as info:
        run("rt_sessions_issue", "--user", "alice")
    assert "inactive" in one_line(info.value)
    assert upstream.requests == []


def test_issue_with_an_unknown_preset_is_refused_and_audited(
    upstream: Any, preset: SessionPreset, user: Any
) -> None:
    with pytest.raises(CommandError) as info:
        run("rt_sessions_issue", "--user", "alice", "--preset", "nope")
    assert "preset_not_found" in one_line(info.value)
    assert upstream.requests == []
    row = TokenRequest.objects.get()
    assert (row.outcome, row.status_code, row.preset_name, row.username) == (
        "not_found",
        404,
        "nope",
        "alice",
    )


def test_issue_dry_run_with_an_unknown_preset_is_not_audited(
    upstream: Any, preset: SessionPreset, user: Any
) -> None:
    with pytest.raises(CommandError, match="preset_not_found"):
        run("rt_sessions_issue", "--user", "alice", "--preset", "nope", "--dry-run")
    assert TokenRequest.objects.count() == 0


def test_issue_for_a_user_outside_the_preset_groups(
    upstream: Any, preset: SessionPreset, user: Any, group: Group
) -> None:
    preset.groups.add(group)
    with pytest.raises(CommandError, match="preset_forbidden"):
        run("rt_sessions_issue", "--user", "alice")
    assert TokenRequest.objects.get().outcome == "forbidden"
    user.groups.add(group)
    run("rt_sessions_issue", "--user", "alice")
    assert TokenRequest.objects.filter(outcome="issued").count() == 1


def test_issue_upstream_failure_is_a_one_line_error(upstream: Any, preset: SessionPreset, user: Any) -> None:
    from django_rt_sessions.testing import Error

    upstream.enqueue(Error(400, code="invalid_value", message="Bad thing"))
    with pytest.raises(CommandError) as info:
        run("rt_sessions_issue", "--user", "alice")
    assert "upstream_error" in one_line(info.value)
    assert TokenRequest.objects.get().outcome == "upstream_error"


# --------------------------------------------------------------------------------- rt_sessions_prune


def make_rows(days_ago: list[float]) -> list[TokenRequest]:
    rows = []
    now = timezone.now()
    for n, days in enumerate(days_ago):
        row = TokenRequest.objects.create(username=f"u{n}", outcome="issued", status_code=201)
        # created_at is auto_now_add: only update() can move it into the past.
        TokenRequest.objects.filter(pk=row.pk).update(created_at=now - dt.timedelta(days=days))
        rows.append(row)
    return rows


def remaining() -> set[str]:
    return set(TokenRequest.objects.values_list("username", flat=True))


def test_prune_deletes_exactly_the_rows_older_than_n_days(db: Any) -> None:
    make_rows([0, 29, 29.99, 30.01, 31, 400])
    output = run("rt_sessions_prune", "--days", "30")
    assert remaining() == {"u0", "u1", "u2"}
    assert "Deleted 3 audit rows older than 30 days." in output


def test_prune_in_small_batches_deletes_all_old_rows(db: Any) -> None:
    make_rows([40, 41, 42, 43, 44, 1])
    with CaptureQueriesContext(connection) as queries:
        output = run("rt_sessions_prune", "--days", "30", "--batch-size", "2")
    assert remaining() == {"u5"}
    assert "Deleted 5 audit rows" in output
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 3


def test_prune_dry_run_deletes_nothing(db: Any) -> None:
    make_rows([100, 200, 1])
    output = run("rt_sessions_prune", "--days", "30", "--dry-run")
    assert "Would delete 2 audit rows older than 30 days." in output
    assert TokenRequest.objects.count() == 3


def test_prune_default_days_from_settings(db: Any, settings: Any) -> None:
    set_rt(settings, AUDIT_RETENTION_DAYS=10)
    make_rows([9, 11, 89])
    output = run("rt_sessions_prune")
    assert remaining() == {"u0"}
    assert "older than 10 days" in output


def test_prune_default_is_90_days(db: Any) -> None:
    make_rows([89, 91])
    run("rt_sessions_prune")
    assert remaining() == {"u0"}


def test_prune_zero_days_deletes_everything_already_written(db: Any) -> None:
    make_rows([0.001, 5])
    run("rt_sessions_prune", "--days", "0")
    assert remaining() == set()


def test_prune_with_nothing_to_delete(db: Any) -> None:
    make_rows([1])
    assert "Deleted 0 audit rows" in run("rt_sessions_prune", "--days", "30")
    assert remaining() == {"u0"}


@pytest.mark.parametrize("args", [("--days", "-1"), ("--batch-size", "0")])
def test_prune_refuses_bad_arguments(db: Any, args: tuple[str, str]) -> None:
    make_rows([100])
    with pytest.raises(CommandError):
        run("rt_sessions_prune", *args)
    assert TokenRequest.objects.count() == 1
