"""The transcription models the app knows: their transports, their rules and their announced shutdowns.

The app ships what OpenAI has announced (`MODELS`); a site extends or corrects the shutdowns with
`RT_SESSIONS["MODEL_RETIREMENTS"]`. Before a shutdown, the database checks, the admin and
`rt_sessions_presets import` warn about every active preset on the model; from the shutdown date on
(UTC), a request for such a preset answers 503 `upstream_unavailable` (audited as `model_retired`)
without calling the upstream.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..conf import rt_settings


@dataclass(frozen=True)
class KnownModel:
    """A transcription model the app knows the rules of."""

    name: str
    transports: tuple[str, ...] = ("webrtc", "websocket")  # realtime transports, preferred first
    shutdown: dt.date | None = None  # announced by OpenAI
    replacement: str | None = None


# OpenAI's announced shutdown of the older transcription models (openai-python 3.57.0,
# types/realtime/audio_transcription.py: "Announced shutdown date: 2027-02-26").
_SHUTDOWN_2027 = dt.date(2027, 2, 26)
RECOMMENDED_MODEL = "gpt-live-transcribe"

MODELS: tuple[KnownModel, ...] = (
    KnownModel("gpt-live-transcribe"),
    # OpenAI serves gpt-transcribe in realtime only for committed turns, over WebSocket.
    KnownModel("gpt-transcribe", transports=("websocket",)),
    KnownModel("gpt-realtime-whisper"),
    KnownModel("gpt-4o-transcribe", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
    KnownModel("gpt-4o-mini-transcribe", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
    KnownModel("gpt-4o-mini-transcribe-2025-12-15", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
    KnownModel("gpt-4o-transcribe-diarize", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
    KnownModel("whisper-1", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
)
MODELS_BY_NAME: dict[str, KnownModel] = {m.name: m for m in MODELS}
KNOWN_MODELS: tuple[str, ...] = tuple(MODELS_BY_NAME)


def transports_for(model: str | None) -> tuple[str, ...]:
    """The realtime transports a model supports, preferred first (the 201's `connect.transports`)."""
    known = MODELS_BY_NAME.get(model or "")
    return known.transports if known else ("webrtc", "websocket")


@dataclass(frozen=True)
class Retirement:
    model: str
    shutdown: dt.date
    replacement: str | None = None

    def is_past(self, on: dt.date | None = None) -> bool:
        """Whether the model is shut down on the day `on` (default: today, UTC)."""
        return (on or today()) >= self.shutdown

    def notice(self, preset_name: str, on: dt.date | None = None) -> str:
        """The one sentence the checks, the admin and the import command show."""
        on = on or today()
        switch = f" Switch it to {self.replacement}." if self.replacement else ""
        if self.is_past(on):
            return (
                f"Preset {preset_name!r} uses {self.model}, which OpenAI shut down on "
                f"{self.shutdown.isoformat()}: requests for it answer 503 (model_retired).{switch}"
            )
        days = (self.shutdown - on).days
        return (
            f"Preset {preset_name!r} uses {self.model}, which OpenAI shuts down on "
            f"{self.shutdown.isoformat()} (in {days} day{'s' if days != 1 else ''}).{switch}"
        )


def today() -> dt.date:
    """Today in UTC: OpenAI's dates are UTC, whatever the site's time zone."""
    return dt.datetime.now(dt.timezone.utc).date()


def setting_problems(value: Any) -> list[str]:
    """What is wrong with a MODEL_RETIREMENTS value (for the system check), as messages."""
    if not isinstance(value, dict):
        return [f"RT_SESSIONS['MODEL_RETIREMENTS'] is {type(value).__name__}, not a dict of models."]
    problems = []
    for model, entry in value.items():
        where = f"RT_SESSIONS['MODEL_RETIREMENTS'][{model!r}]"
        if entry is None:
            continue  # drops a shipped entry
        if not isinstance(entry, dict) or set(entry) - {"shutdown", "replacement"}:
            problems.append(f'{where} must be {{"shutdown": "YYYY-MM-DD", "replacement": "model"}} or None.')
            continue
        try:
            dt.date.fromisoformat(str(entry.get("shutdown")))
        except ValueError:
            problems.append(
                f"{where}['shutdown'] is {entry.get('shutdown')!r}, not a date like '2027-02-26'."
            )
        replacement = entry.get("replacement")
        if replacement is not None and not (isinstance(replacement, str) and replacement.strip()):
            problems.append(f"{where}['replacement'] must be a model name or None.")
    return problems


def retirements() -> dict[str, Retirement]:
    """The shipped table with the site's MODEL_RETIREMENTS applied (entries the check refuses are skipped)."""
    table = {m.name: Retirement(m.name, m.shutdown, m.replacement) for m in MODELS if m.shutdown is not None}
    extra = rt_settings.MODEL_RETIREMENTS
    if isinstance(extra, dict):
        for model, entry in extra.items():
            if entry is None:
                table.pop(model, None)
                continue
            if setting_problems({model: entry}):
                continue
            table[model] = Retirement(
                model, dt.date.fromisoformat(str(entry["shutdown"])), entry.get("replacement")
            )
    return table


def retirement_of(model: str | None) -> Retirement | None:
    return retirements().get(model) if model else None
