"""Export and import presets in their JSON format (docs/presets.md), used by `rt_sessions_presets`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from ..models import SessionPreset
from ..sessions import catalog
from ..sessions.fields import RELAY_FIELDS, model_of
from ..sessions.validation import PresetValidationError
from ..upstreams import configured_upstream
from . import cache as preset_cache
from .validation import validate_preset


def preset_as_json(preset: SessionPreset) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": preset.name,
        "title": preset.title,
        "description": preset.description,
        "active": preset.active,
        "default": preset.default,
        "session": preset.session,
        "expires_after_seconds": preset.expires_after_seconds,
        "overridable": preset.overridable,
    }
    if preset.client_turns is not None:
        data["client_turns"] = preset.client_turns
    if preset.rate:
        data["rate"] = preset.rate
    if preset.daily_quota:
        data["daily_quota"] = preset.daily_quota
    if preset.relay:
        # Only a relay preset has relay options (validation refuses them on others).
        for spec in RELAY_FIELDS:
            value = getattr(preset, spec.name)
            if value is not None:
                data[spec.name] = value
    data["groups"] = sorted(group.name for group in preset.groups.all())
    return data


def export_presets() -> list[dict[str, Any]]:
    return [preset_as_json(p) for p in SessionPreset.objects.order_by("name").prefetch_related("groups")]


class PresetImportError(ValueError):
    """What is wrong with an import file: one line per problem, each naming the preset and the field."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(lines))


def import_presets(data: Any) -> dict[str, list[str]]:
    """Upsert presets by name, all or nothing; report the names created, updated and groups created,
    and a notice for every active preset on a model with an announced shutdown.

    Every preset is validated (for the configured upstream) before anything is written; a failure names
    the preset and the field.
    """
    if not isinstance(data, list):
        raise PresetImportError("The file must hold a JSON list of presets.")
    cleaned_presets = []
    problems: list[str] = []
    upstream = configured_upstream()
    for index, item in enumerate(data):
        label = (
            item.get("name")
            if isinstance(item, dict) and isinstance(item.get("name"), str)
            else f"#{index + 1}"
        )
        try:
            cleaned_presets.append(validate_preset(item, upstream=upstream))
        except PresetValidationError as exc:
            problems.extend(
                f"Preset {label!r}, field {field!r}: {' '.join(messages)}"
                for field, messages in exc.errors.items()
            )
    if problems:  # every problem of every preset, so that one run shows all there is to fix
        raise PresetImportError(*problems)
    names = [p["name"] for p in cleaned_presets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PresetImportError(f"Preset {duplicates[0]!r} appears more than once in the file.")
    defaults = [p["name"] for p in cleaned_presets if p["default"]]
    if len(defaults) > 1:
        raise PresetImportError(
            f"Presets {', '.join(map(repr, defaults))}, field 'default': at most one may be the default."
        )

    report: dict[str, list[str]] = {"created": [], "updated": [], "groups_created": [], "notices": []}
    with transaction.atomic():
        if defaults:
            # The new default replaces the old one (the database allows only one).
            SessionPreset.objects.filter(default=True).exclude(name=defaults[0]).update(default=False)
            preset_cache.invalidate()  # update() sends no signal
        for cleaned in cleaned_presets:
            group_names = cleaned.pop("groups")
            preset, created = SessionPreset.objects.update_or_create(name=cleaned["name"], defaults=cleaned)
            groups = []
            for group_name in group_names:
                group, group_created = Group.objects.get_or_create(name=group_name)
                if group_created:
                    report["groups_created"].append(group_name)
                groups.append(group)
            preset.groups.set(groups)
            report["created" if created else "updated"].append(preset.name)
            retiring = catalog.retiring(model_of(preset.session))
            if retiring is not None and preset.active:
                report["notices"].append(retiring.retirement_notice(preset.name))
    return report
