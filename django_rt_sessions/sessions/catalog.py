"""The transcription models the app knows: one entry per model, with everything that depends on the model.

An entry says which realtime transports the model is served over (the 201's `connect.transports`),
whether it takes server turn detection (`server_vad`/`semantic_vad`) or needs the client to commit each
turn, which of the model-dependent transcription fields it takes (`languages`, `keywords`, `delay`,
`prompt`: the fields marked `per_model` in `sessions.fields`), and an announced shutdown with a
replacement. The validator, the admin's help texts, the database checks, the 201's `connect` and the docs'
tables all read it.

The app ships what OpenAI has documented (`SHIPPED`, from openai-python 3.57.0 `types/realtime/` and
OpenAI's guides); OpenAI changes these rules, so a site corrects or extends them with
`RT_SESSIONS["MODELS"]` without waiting for a release (docs/presets.md#known-models):

    RT_SESSIONS = {"MODELS": {
        "gpt-transcribe": {"turn_detection": False},             # correct one key of a shipped entry
        "gpt-live-transcribe-2027": {"transports": ["websocket"], "fields": ["languages", "keywords"]},
        "whisper-1": None,                                       # forget a shipped entry
    }}

A model the table does not know gets the generic rules only. From a shutdown date on (UTC), a request for
a preset on that model answers 503 `upstream_unavailable` (audited as `model_retired`) without calling the
upstream; before it, the database checks, the admin and `rt_sessions_presets import` warn.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..conf import rt_settings
from .fields import FIELDS

TRANSPORTS = ("webrtc", "websocket")
# The transcription fields some known models take and others do not (marked per_model in the fields).
PER_MODEL_FIELDS: tuple[str, ...] = tuple(spec.name for spec in FIELDS if spec.per_model)


@dataclass(frozen=True)
class KnownModel:
    """A transcription model and its rules."""

    name: str
    transports: tuple[str, ...] = TRANSPORTS  # realtime transports, preferred first
    # False: turn_detection must be null or absent; the client commits each turn (client_turns).
    server_vad: bool = True
    fields: frozenset[str] = frozenset(PER_MODEL_FIELDS)  # the per-model fields it takes
    shutdown: dt.date | None = None  # announced by OpenAI
    replacement: str | None = None

    def takes(self, field: str) -> bool:
        return field not in PER_MODEL_FIELDS or field in self.fields

    def is_shut_down(self, on: dt.date | None = None) -> bool:
        """Whether the model is shut down on the day `on` (default: today, UTC)."""
        return self.shutdown is not None and (on or today()) >= self.shutdown

    def retirement_notice(self, preset_name: str, on: dt.date | None = None) -> str:
        """The one sentence the checks, the admin and the import command show about a shutdown."""
        assert self.shutdown is not None
        on = on or today()
        switch = f" Switch it to {self.replacement}." if self.replacement else ""
        if self.is_shut_down(on):
            return (
                f"Preset {preset_name!r} uses {self.name}, which OpenAI shut down on "
                f"{self.shutdown.isoformat()}: requests for it answer 503 (model_retired).{switch}"
            )
        days = (self.shutdown - on).days
        return (
            f"Preset {preset_name!r} uses {self.name}, which OpenAI shuts down on "
            f"{self.shutdown.isoformat()} (in {days} day{'s' if days != 1 else ''}).{switch}"
        )


# OpenAI's announced shutdown of the older transcription models (openai-python 3.57.0,
# types/realtime/audio_transcription.py: "Announced shutdown date: 2027-02-26").
_SHUTDOWN_2027 = dt.date(2027, 2, 26)
RECOMMENDED_MODEL = "gpt-live-transcribe"


def _announced(name: str, fields: frozenset[str] = frozenset({"prompt"})) -> KnownModel:
    """An older model OpenAI shuts down on 2027-02-26."""
    return KnownModel(name, fields=fields, shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL)


SHIPPED: tuple[KnownModel, ...] = (
    # OpenAI's realtime VAD guide: "gpt-live-transcribe and gpt-realtime-whisper require turn detection to
    # be omitted or set to null. Send input_audio_buffer.commit to finish each audio turn."
    KnownModel(
        "gpt-live-transcribe",
        server_vad=False,
        fields=frozenset({"languages", "keywords", "delay", "prompt"}),
    ),
    # Served in realtime only for committed turns, over WebSocket.
    KnownModel(
        "gpt-transcribe", transports=("websocket",), fields=frozenset({"languages", "keywords", "prompt"})
    ),
    KnownModel("gpt-realtime-whisper", server_vad=False, fields=frozenset({"delay"})),
    _announced("gpt-4o-transcribe"),
    _announced("gpt-4o-mini-transcribe"),
    _announced("gpt-4o-mini-transcribe-2025-12-15"),
    _announced("gpt-4o-transcribe-diarize", fields=frozenset()),
    _announced("whisper-1"),
)

# The keys of an entry of RT_SESSIONS["MODELS"].
SETTING_KEYS = ("transports", "turn_detection", "fields", "shutdown", "replacement")


def today() -> dt.date:
    """Today in UTC: OpenAI's dates are UTC, whatever the site's time zone."""
    return dt.datetime.now(dt.timezone.utc).date()


def setting_problems(value: Any) -> list[str]:
    """What is wrong with an RT_SESSIONS["MODELS"] value (for system check E008), one message each, naming
    the model and the key."""
    if not isinstance(value, Mapping):
        return [f"RT_SESSIONS['MODELS'] is {type(value).__name__}, not a dict of models."]
    problems = []
    for model, entry in value.items():
        where = f"RT_SESSIONS['MODELS'][{model!r}]"
        if not isinstance(model, str) or not model.strip():
            problems.append(f"{where}: a model name must be a non-empty string.")
            continue
        if entry is None:
            continue  # forgets a shipped entry
        if not isinstance(entry, Mapping):
            problems.append(
                f"{where} is {type(entry).__name__}: give a dict of {', '.join(SETTING_KEYS)}, or None."
            )
            continue
        problems.extend(f"{where}[{key!r}] {problem}" for key, problem in _entry_problems(entry))
    return problems


def _entry_problems(entry: Mapping[str, Any]) -> list[tuple[Any, str]]:
    problems: list[tuple[Any, str]] = [
        (key, f"is not a key of a model entry; the keys are {', '.join(SETTING_KEYS)}.")
        for key in entry
        if key not in SETTING_KEYS
    ]
    if "transports" in entry:
        transports = entry["transports"]
        if (
            not isinstance(transports, list)
            or not transports
            or any(t not in TRANSPORTS for t in transports)
            or len(set(transports)) != len(transports)
        ):
            problems.append(
                (
                    "transports",
                    f"is {transports!r}: list one or both of {', '.join(TRANSPORTS)}, preferred first.",
                )
            )
    if "turn_detection" in entry and not isinstance(entry["turn_detection"], bool):
        problems.append(
            (
                "turn_detection",
                f"is {entry['turn_detection']!r}: true (server turn detection allowed) or false "
                "(turn detection must be null).",
            )
        )
    if "fields" in entry:
        fields = entry["fields"]
        if not isinstance(fields, list) or any(f not in PER_MODEL_FIELDS for f in fields):
            problems.append(
                (
                    "fields",
                    f"is {fields!r}: a list of the fields it takes among {', '.join(PER_MODEL_FIELDS)}.",
                )
            )
    if entry.get("shutdown") is not None:
        try:
            dt.date.fromisoformat(str(entry["shutdown"]))
        except ValueError:
            problems.append(
                ("shutdown", f"is {entry['shutdown']!r}, not a date like '2027-02-26' (or None).")
            )
    replacement = entry.get("replacement")
    if replacement is not None and not (isinstance(replacement, str) and replacement.strip()):
        problems.append(("replacement", f"is {replacement!r}: a model name, or None."))
    return problems


def _corrected(known: KnownModel | None, name: str, entry: Mapping[str, Any]) -> KnownModel:
    """A shipped entry (or a new one) with the keys a site gave."""
    changes: dict[str, Any] = {}
    if "transports" in entry:
        changes["transports"] = tuple(entry["transports"])
    if "turn_detection" in entry:
        changes["server_vad"] = entry["turn_detection"]
    if "fields" in entry:
        changes["fields"] = frozenset(entry["fields"])
    if "shutdown" in entry:
        changes["shutdown"] = dt.date.fromisoformat(str(entry["shutdown"])) if entry["shutdown"] else None
    if "replacement" in entry:
        changes["replacement"] = entry["replacement"]
    return replace(known or KnownModel(name), **changes)


_built: tuple[Any, dict[str, KnownModel]] | None = None
_lock = threading.Lock()


def models() -> dict[str, KnownModel]:
    """The known models by name: the shipped table with the site's RT_SESSIONS["MODELS"] applied (entries
    the check refuses are skipped). Built once per value of the setting (the token request reads it)."""
    global _built
    setting = rt_settings.MODELS
    built = _built
    if built is not None and built[0] is setting:
        return built[1]
    table = {known.name: known for known in SHIPPED}
    if isinstance(setting, Mapping):
        for name, entry in setting.items():
            if entry is None:
                table.pop(name, None)
            elif not setting_problems({name: entry}):
                table[name] = _corrected(table.get(name), name, entry)
    with _lock:
        _built = (setting, table)
    return table


def model(name: str | None) -> KnownModel | None:
    """The known model `name`, or None (a model the app does not know: the generic rules only)."""
    return models().get(name) if name else None


def known_models() -> tuple[str, ...]:
    return tuple(models())


def transports_for(name: str | None) -> tuple[str, ...]:
    """The realtime transports a model supports, preferred first (the 201's `connect.transports`)."""
    known = model(name)
    return known.transports if known else TRANSPORTS


def takes_server_vad(name: str | None) -> bool:
    """Whether the model takes server turn detection (unknown models: yes, the generic rules)."""
    known = model(name)
    return known.server_vad if known else True


def models_taking(field: str) -> tuple[str, ...]:
    """The known models that take a per-model field, in the table's order."""
    return tuple(known.name for known in models().values() if field in known.fields)


def refusal(name: str, field: str) -> str:
    """Why the known model `name` refuses a per-model `field`, naming the models that take it when they are
    the few."""
    taking = models_taking(field)
    if taking and len(taking) <= len(models()) // 2:
        return f"{name} does not accept {field}: only {', '.join(taking)} do."
    return f"{name} does not accept {field}."


def retiring(name: str | None) -> KnownModel | None:
    """The known model `name` if it has an announced shutdown, else None."""
    known = model(name)
    return known if known is not None and known.shutdown is not None else None
