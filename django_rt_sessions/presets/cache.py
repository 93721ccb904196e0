"""Active presets kept in each process, valid for one generation of the shared cache.

Every token request needs its preset and the preset's groups: two queries that return the same rows
until staff change something. Each process keeps what it loaded in memory, tagged with a generation
number that lives in the rate-limit cache (Redis in production, shared by every process and host). Each
request reads the generation (one cache GET instead of two queries); any change to a preset or to a
preset's groups replaces it, in the process that made the change at once and again when its transaction
commits, so every other process reloads on its next request. What is kept is the preset's own row and
its group ids; a user's group membership is always read from the database.

The cache is bypassed (presets come from the database) when `RT_SESSIONS["PRESET_CACHE"]` is False,
when the rate-limit cache is not shared between processes (local memory, dummy, file-based: a new
generation written there would not reach the other processes, such as a `manage.py` command's), inside
a transaction (Django's TestCase, a site's own atomic block: what is read there must be what
that transaction sees), and when the cache cannot be reached. Entries are also dropped after
MAX_AGE_SECONDS, so a generation change the cache lost (an outage during a change) cannot keep old
presets for longer than that.

Changes made with `QuerySet.update()`, `bulk_update()` or raw SQL send no signal: call `invalidate()`
after them (the admin's actions and `rt_sessions_presets import` do).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import caches
from django.db import connections, router, transaction

from ..conf import UNSHARED_CACHES, rate_limit_cache_backend, rt_settings
from ..models import SessionPreset

logger = logging.getLogger("django_rt_sessions.preset_cache")

GENERATION_KEY = "django_rt_sessions:presets:generation"
MAX_AGE_SECONDS = 60.0


@dataclass(frozen=True)
class ResolvedPreset:
    """An active preset and the ids of the groups allowed to use it (empty: everyone)."""

    preset: SessionPreset
    group_ids: frozenset[int]


@dataclass
class _Generation:
    token: str | None
    started: float = field(default_factory=time.monotonic)
    by_name: dict[str, ResolvedPreset | None] = field(default_factory=dict)


_current = _Generation(token=None)
_lock = threading.Lock()


def resolve(name: str | None) -> ResolvedPreset | None:
    """The active preset called `name` (the default preset when name is empty), or None.

    The caller gets its own copy of the preset: changing it changes nothing for other requests.
    """
    key = name or ""
    generation = _usable_generation()
    if generation is None:
        return load(name)
    if key not in generation.by_name:
        generation.by_name[key] = load(name)
    found = generation.by_name[key]
    return None if found is None else ResolvedPreset(copy.deepcopy(found.preset), found.group_ids)


def load(name: str | None) -> ResolvedPreset | None:
    """Read the active preset `name` (or the default) and its group ids from the database."""
    presets = SessionPreset.objects.filter(active=True)
    preset = presets.filter(name=name).first() if name else presets.filter(default=True).first()
    if preset is None:
        return None
    return ResolvedPreset(preset, frozenset(preset.groups.values_list("pk", flat=True)))


def invalidate(**_signal_kwargs: Any) -> None:
    """Make every process reload presets: now, and again when the current transaction commits.

    Connected to the signals sent when a preset, its groups or a group change (apps.py); call it after
    changing presets without signals (QuerySet.update, raw SQL).
    """
    _new_generation()
    alias = router.db_for_write(SessionPreset)
    if connections[alias].in_atomic_block:
        # A process that reads between now and the commit still sees the old rows and may keep them
        # under the new generation; a second generation after the commit drops them.
        transaction.on_commit(_new_generation, using=alias)


def _usable_generation() -> _Generation | None:
    global _current
    if not rt_settings.PRESET_CACHE or not _cache_is_shared():
        return None
    if connections[router.db_for_read(SessionPreset)].in_atomic_block:
        return None
    token = _shared_token()
    if token is None:
        return None
    with _lock:
        if _current.token != token or time.monotonic() - _current.started > MAX_AGE_SECONDS:
            _current = _Generation(token=token)
        return _current


def _shared_token() -> str | None:
    cache = _cache()
    try:
        token = cache.get(GENERATION_KEY)
        if token is None:
            cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
            token = cache.get(GENERATION_KEY)
    except Exception as exc:  # any cache failure: read the database instead
        logger.warning(
            "Preset cache unavailable (%s); reading presets from the database.", type(exc).__name__
        )
        return None
    return token if isinstance(token, str) else None


def _new_generation() -> None:
    global _current
    with _lock:
        _current = _Generation(token=None)
    try:
        _cache().set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception as exc:  # any cache failure
        logger.error(
            "Presets changed but the preset cache could not be told (%s): other processes may use the"
            " previous presets for up to %d seconds.",
            type(exc).__name__,
            MAX_AGE_SECONDS,
        )


def _cache_is_shared() -> bool:
    return rate_limit_cache_backend()[1] not in UNSHARED_CACHES


def _cache() -> Any:
    # The rate limits' cache: shared by every process where the limits are exact (check rt_sessions.E007).
    return caches[rate_limit_cache_backend()[0]]


__all__ = ["MAX_AGE_SECONDS", "ResolvedPreset", "invalidate", "load", "resolve"]
