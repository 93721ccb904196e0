"""Who may use a preset: the one rule, for the preset list (`GET presets/`) and the issuing service.

A user may use an active preset that names no groups, or one of whose groups they are in. A user's groups
are read from the database every time: removing someone from a group takes effect at once; the preset
and its group ids may come from the preset cache.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..errors import IssueError
from ..models import SessionPreset
from .cache import ResolvedPreset


def may_use(preset_group_ids: Collection[int], user_group_ids: Collection[int]) -> bool:
    """The rule: no groups means everyone; else the user must be in one of them."""
    return not preset_group_ids or not set(preset_group_ids).isdisjoint(user_group_ids)


def check_access(user: Any, resolved: ResolvedPreset) -> None:
    """Raise IssueError("preset_forbidden") unless `user` may use the resolved preset."""
    if not resolved.group_ids:
        return  # open to everyone: no query
    user_group_ids = set(user.groups.filter(pk__in=resolved.group_ids).values_list("pk", flat=True))
    if not may_use(resolved.group_ids, user_group_ids):
        raise IssueError("preset_forbidden")


def presets_for(user: Any) -> list[SessionPreset]:
    """The active presets `user` may use, by name (two queries, whatever the number of presets)."""
    user_group_ids = set(user.groups.values_list("pk", flat=True))
    presets = SessionPreset.objects.filter(active=True).prefetch_related("groups").order_by("name")
    return [
        preset for preset in presets if may_use([group.pk for group in preset.groups.all()], user_group_ids)
    ]
