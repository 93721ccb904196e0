"""The relay's end-to-end tests share one site per module (the example project under uvicorn, a SQLite
file): starting one costs a few seconds. Each test uses its own users, so limits never meet."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..log_guard import raise_for, secrets_in_output
from ..relay_support import RelaySite, relay_preset

# Every preset the module tests use (its own users keep their limits apart).
PRESETS = [
    relay_preset("relay-dictation", daily_audio_minutes=30),
    relay_preset(
        "relay-meetings",
        session={
            "input_audio_format": "pcm16",
            "input_audio_noise_reduction": {"type": "far_field"},
            "input_audio_transcription": {"model": "gpt-transcribe", "language": "en", "prompt": ""},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        },
        overridable=["language", "prompt", "noise_reduction"],
    ),
    relay_preset("relay-short", max_session_seconds=10, idle_timeout_seconds=5),
    relay_preset("relay-minutes", daily_audio_minutes=0.1, max_session_seconds=60),
    relay_preset(
        "relay-phone",
        session={
            "input_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "en"},
            "turn_detection": None,
        },
    ),
]
USERS = [f"user{n}" for n in range(12)] + ["staff"]


# The first site's database, migrated and holding PRESETS and USERS: the next sites start from a copy
# instead of three more `manage.py` runs each (about 5 s a site).
_prepared: list[Path] = []


def start_site(tmp_path_factory: pytest.TempPathFactory, standin: Any, **options: Any) -> RelaySite:
    workdir = tmp_path_factory.mktemp(f"relay-{options.get('server', 'uvicorn')}")
    site = RelaySite(workdir, standin, **options)
    if _prepared:
        shutil.copyfile(_prepared[0], site.database_path)
    else:
        site.prepare(PRESETS, USERS)
        _prepared.append(
            shutil.copyfile(site.database_path, tmp_path_factory.mktemp("relay-db") / "prepared.sqlite3")
        )
    return site.start()


def check_site_log(site: RelaySite, standin: Any) -> None:
    """No API key, ephemeral key or ticket in the relay process's whole log."""
    output = Path(site.log_path).read_text(errors="replace")
    raise_for(secrets_in_output(site.name, output, api_keys={standin.api_key}, secrets=standin.issued))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, openai_standin_server: Any) -> Iterator[RelaySite]:
    started = start_site(tmp_path_factory, openai_standin_server)
    try:
        yield started
    finally:
        started.stop()
    check_site_log(started, openai_standin_server)
