"""The per-process preset cache (django_rt_sessions/preset_cache.py): used, and never stale after a change.

These tests run outside a transaction (transaction=True), where the cache is used, as in production.
The cache's generation lives in the test settings' cache (local memory, or Redis in the PostgreSQL
pass); "another process" is played by writing a new generation there, as another process's signal does.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_rt_sessions.models import SessionPreset
from django_rt_sessions.presets import cache as preset_cache

from ..conftest import post

pytestmark = pytest.mark.django_db(transaction=True)

PRESET_TABLES = ("django_rt_sessions_sessionpreset",)  # the groups table's name starts with it too


def preset_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if any(t in q["sql"] for t in PRESET_TABLES)]


def issue(api: Client, body: Any = None) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = post(api, body or {})
    return response, preset_queries(queries)


def test_a_second_request_reads_no_preset_row(api: Client, preset: SessionPreset, upstream: Any) -> None:
    first, first_queries = issue(api)
    second, second_queries = issue(api)
    assert (first.status_code, second.status_code) == (201, 201)
    assert len(first_queries) == 2  # the preset, then its groups
    assert second_queries == []


def test_a_request_inside_a_transaction_reads_the_database(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    issue(api)
    with transaction.atomic():
        SessionPreset.objects.filter(pk=preset.pk).update(active=False)  # no signal, no new generation
        found = preset_cache.resolve(preset.name)
        transaction.set_rollback(True)
    assert found is None  # what this transaction sees, not the cached row


def test_the_user_gets_a_copy(api: Client, preset: SessionPreset, upstream: Any) -> None:
    first = preset_cache.resolve(preset.name)
    assert first is not None
    first.preset.session["input_audio_transcription"]["language"] = "xx"
    second = preset_cache.resolve(preset.name)
    assert second is not None
    assert second.preset.session["input_audio_transcription"]["language"] == "fr"


def test_changes_without_a_signal_need_invalidate(api: Client, preset: SessionPreset, upstream: Any) -> None:
    assert issue(api)[0].status_code == 201
    SessionPreset.objects.filter(pk=preset.pk).update(active=False)  # sends no signal
    stale, _ = issue(api)
    assert stale.status_code == 201  # the documented limit: update() is not seen until invalidate()
    preset_cache.invalidate()
    refused, _ = issue(api)
    assert (refused.status_code, refused.json()["code"]) == (404, "preset_not_found")


def test_a_new_generation_from_another_process_is_seen(
    api: Client, preset: SessionPreset, upstream: Any
) -> None:
    assert issue(api)[0].status_code == 201
    SessionPreset.objects.filter(pk=preset.pk).update(active=False)
    cache.set(preset_cache.GENERATION_KEY, "another-process-changed-presets", timeout=None)
    refused, queries = issue(api)
    assert refused.status_code == 404
    assert queries  # it went back to the database


def _deactivate(preset: SessionPreset, group: Group) -> None:
    preset.active = False
    preset.save()


def _delete(preset: SessionPreset, group: Group) -> None:
    preset.delete()


def _rename(preset: SessionPreset, group: Group) -> None:
    preset.name = "renamed"
    preset.save()


def _restrict_to_a_group(preset: SessionPreset, group: Group) -> None:
    preset.groups.add(group)


def _replace_groups(preset: SessionPreset, group: Group) -> None:
    preset.groups.set([group])


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (_deactivate, 404, "preset_not_found"),
        (_delete, 404, "preset_not_found"),
        (_rename, 404, "preset_not_found"),
        (_restrict_to_a_group, 403, "preset_forbidden"),
        (_replace_groups, 403, "preset_forbidden"),
    ],
    ids=["deactivated", "deleted", "renamed", "group-added", "groups-set"],
)
def test_a_change_is_seen_by_the_next_request(
    api: Client, preset: SessionPreset, group: Group, upstream: Any, change: Any, status: int, code: str
) -> None:
    name = preset.name
    assert issue(api, {"preset": name})[0].status_code == 201
    change(preset, group)
    response, _ = issue(api, {"preset": name})
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_removing_the_last_group_opens_the_preset(
    api: Client, preset: SessionPreset, group: Group, upstream: Any
) -> None:
    preset.groups.add(group)
    assert issue(api)[0].status_code == 403
    preset.groups.remove(group)
    assert issue(api)[0].status_code == 201


def test_deleting_the_only_group_opens_the_preset(
    api: Client, preset: SessionPreset, group: Group, upstream: Any
) -> None:
    preset.groups.add(group)
    assert issue(api)[0].status_code == 403
    group.delete()  # removes the preset's group row without an m2m_changed signal
    assert issue(api)[0].status_code == 201


def test_a_user_removed_from_the_group_is_refused_at_once(
    api: Client, preset: SessionPreset, group: Group, user: Any, upstream: Any
) -> None:
    preset.groups.add(group)
    user.groups.add(group)
    assert issue(api)[0].status_code == 201
    user.groups.remove(group)  # the user's groups are never cached
    assert issue(api)[0].status_code == 403


def test_a_change_inside_a_transaction_makes_a_new_generation_at_commit(preset: SessionPreset) -> None:
    preset_cache.resolve(preset.name)
    with transaction.atomic():
        preset.title = "changed"
        preset.save()
        during = cache.get(preset_cache.GENERATION_KEY)
    after = cache.get(preset_cache.GENERATION_KEY)
    assert during and after and during != after


@pytest.fixture
def staff_client(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize(
    ("action", "active_before", "status"),
    [("deactivate", True, 404), ("activate", False, 201), ("make_default", False, 201)],
)
def test_admin_actions_are_seen_by_the_next_request(
    api: Client,
    staff_client: Client,
    preset: SessionPreset,
    upstream: Any,
    action: str,
    active_before: bool,
    status: int,
) -> None:
    other = SessionPreset.objects.create(name="other", session=preset.session, active=active_before)
    issue(api, {"preset": "other"})  # cached, active or not
    response = staff_client.post(
        reverse("admin:django_rt_sessions_sessionpreset_changelist"),
        {"action": action, "_selected_action": [other.pk]},
    )
    assert response.status_code == 302
    assert issue(api, {"preset": "other"})[0].status_code == status


def test_an_import_is_seen_by_the_next_request(
    api: Client, preset: SessionPreset, upstream: Any, tmp_path: Any
) -> None:
    from django.core.management import call_command

    assert issue(api)[0].status_code == 201  # meetings-fr is the default
    path = tmp_path / "presets.json"
    path.write_text(
        json.dumps([{"name": "imported", "default": True, "session": preset.session, "overridable": []}])
    )
    call_command("rt_sessions_presets", "import", str(path), verbosity=0)
    response, _ = issue(api)
    assert response.json()["preset"] == "imported"


def test_setting_off_reads_the_database_every_time(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any
) -> None:
    settings.RT_SESSIONS = {**settings.RT_SESSIONS, "PRESET_CACHE": False}
    issue(api)
    assert len(issue(api)[1]) == 2


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
        "django.core.cache.backends.filebased.FileBasedCache",
    ],
)
def test_an_unshared_cache_means_reading_the_database(
    api: Client, preset: SessionPreset, upstream: Any, settings: Any, tmp_path: Any, backend: str
) -> None:
    """A generation kept in a per-process cache would not reach the other processes (a `manage.py
    rt_sessions_presets import`, another worker), so nothing is kept: a change is seen at once, even one
    made without a signal."""
    settings.CACHES = {**settings.CACHES, "per-process": {"BACKEND": backend, "LOCATION": str(tmp_path)}}
    settings.RATELIMIT_USE_CACHE = "per-process"
    first, first_queries = issue(api)
    second, second_queries = issue(api)
    assert (first.status_code, second.status_code) == (201, 201)
    assert len(first_queries) == len(second_queries) == 2
    SessionPreset.objects.filter(pk=preset.pk).update(active=False)  # as another process would
    refused, _ = issue(api)
    assert (refused.status_code, refused.json()["code"]) == (404, "preset_not_found")


def test_entries_expire_after_max_age(
    api: Client, preset: SessionPreset, upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    issue(api)
    monkeypatch.setattr(preset_cache, "MAX_AGE_SECONDS", -1.0)
    assert len(issue(api)[1]) == 2


class UnreachableCache(LocMemCache):
    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache server went away")

    def set(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("cache server went away")


def test_an_unreachable_cache_means_reading_the_database(
    preset: SessionPreset, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "down": {"BACKEND": f"{__name__}.UnreachableCache"},
    }
    settings.RATELIMIT_USE_CACHE = "down"
    with caplog.at_level(logging.WARNING, logger="django_rt_sessions.preset_cache"):
        found = preset_cache.resolve(preset.name)
        assert found is not None and found.preset.pk == preset.pk
        SessionPreset.objects.filter(pk=preset.pk).update(active=False)
        assert preset_cache.resolve(preset.name) is None  # nothing was kept
        preset_cache.invalidate()  # logged, not raised
    assert "reading presets from the database" in caplog.text
    assert "could not be told" in caplog.text
