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


@pytest.fixture(scope="session")
def prepared_database(tmp_path_factory: pytest.TempPathFactory, openai_standin_server: Any) -> Path:
    """A SQLite database migrated and holding PRESETS and USERS: each site starts from a copy instead of
    three `manage.py` runs of its own (about 5 s a site)."""
    site = RelaySite(tmp_path_factory.mktemp("relay-db"), openai_standin_server)
    return site.prepare(PRESETS, USERS).database_path


def start_site(
    tmp_path_factory: pytest.TempPathFactory, standin: Any, prepared: Path, **options: Any
) -> RelaySite:
    workdir = tmp_path_factory.mktemp(f"relay-{options.get('server', 'uvicorn')}")
    site = RelaySite(workdir, standin, **options)
    shutil.copyfile(prepared, site.database_path)
    return site.start()


def check_site_log(site: RelaySite, standin: Any) -> None:
    """No API key, ephemeral key or ticket in the relay process's whole log."""
    output = Path(site.log_path).read_text(errors="replace")
    raise_for(secrets_in_output(site.name, output, api_keys={standin.api_key}, secrets=standin.issued))


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, openai_standin_server: Any, prepared_database: Path
) -> Iterator[RelaySite]:
    started = start_site(tmp_path_factory, openai_standin_server, prepared_database)
    try:
        yield started
    finally:
        started.stop()
    check_site_log(started, openai_standin_server)
