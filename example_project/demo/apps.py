from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.conf import settings
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

if TYPE_CHECKING:
    from django_rt_sessions.testing import OpenAIStandIn

logger = logging.getLogger("example_project.demo")

_standin: OpenAIStandIn | None = None
_standin_lock = threading.Lock()


# Management commands that never call the upstream: they get no stand-in (and no log line about it).
COMMANDS_WITHOUT_UPSTREAM = frozenset(
    {
        "changepassword",
        "collectstatic",
        "createsuperuser",
        "demo_setup",
        "makemigrations",
        "migrate",
        "rt_sessions_presets",
        "rt_sessions_prune",
        "showmigrations",
        "sqlmigrate",
    }
)


def needs_standin(argv: list[str] | None = None) -> bool:
    """Whether this process may serve or issue tokens, so that it needs the stand-in.

    `runserver` with its autoreloader runs twice: the parent only watches files and re-runs itself as a
    child (RUN_MAIN=true) that serves the requests, so only the child needs a stand-in. Every other process
    does (`runserver --noreload`, gunicorn workers, `manage.py rt_sessions_issue`, `shell`, a WSGI server
    in a test) except the commands above.
    """
    argv = sys.argv if argv is None else argv
    command = argv[1] if len(argv) > 1 else ""
    if command in COMMANDS_WITHOUT_UPSTREAM:
        return False
    if command == "runserver" and "--noreload" not in argv[2:]:
        return os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"
    return True


# Set when OPENAI_BASE_URL points at a stand-in run separately (python -m django_rt_sessions.testing): the
# page then uses the stand-in's realtime WebSocket and says that the local speech engine transcribes.
EXTERNAL_STANDIN_ENV = "RT_DEMO_STANDIN"


def standin_serves() -> bool:
    """Whether sessions come from a stand-in (this process's own, or one named by RT_DEMO_STANDIN)."""
    return _standin is not None or os.environ.get(EXTERNAL_STANDIN_ENV, "") not in ("", "0")


def speech_engine_note() -> str:
    """What the demo page says transcribes, when a stand-in serves."""
    if _standin is not None and _standin.speech_engine is None:
        return f"the local speech engine (English), which is not available here: {_standin.speech_problem}"
    if _standin is not None:
        # "local speech engine (English): Whisper tiny.en via faster-whisper 1.2.1"
        return f"the {_standin.speech_engine.description}, offline: not OpenAI"
    return "the local speech engine (English), offline: not OpenAI"


_warming = threading.Event()


def warm_up_speech() -> None:
    """Load the stand-in's speech model in the background, once: when the demo page is first shown rather
    than when the visitor starts to speak (Whisper's takes about a second), and not in every process that
    merely could issue a token (`manage.py shell`, ...)."""
    engine = _standin.speech_engine if _standin is not None else None
    warm_up = getattr(engine, "warm_up", None)
    if warm_up is None:
        return
    with _standin_lock:
        if _warming.is_set():
            return
        _warming.set()
    threading.Thread(target=warm_up, name="speech-warm-up", daemon=True).start()


def start_standin() -> OpenAIStandIn:
    """Serve the OpenAI stand-in on loopback (once per process) and point RT_SESSIONS at it."""
    global _standin
    with _standin_lock:
        if _standin is None:
            from django_rt_sessions.testing import OpenAIStandIn

            _standin = OpenAIStandIn(host="127.0.0.1", port=0).start()
            rt_sessions = settings.RT_SESSIONS
            azure = rt_sessions.get("UPSTREAM") == "azure"
            # The app's settings object reads settings.RT_SESSIONS on every access, so this takes effect.
            rt_sessions["BASE_URL"] = _standin.azure_base_url if azure else _standin.base_url
            rt_sessions["API_KEY"] = _standin.api_key
            logger.info(
                "OPENAI_API_KEY is not set: the demo uses the local OpenAI stand-in at %s "
                "(its ek_ keys are not accepted by OpenAI). Set OPENAI_API_KEY to use the real API.",
                rt_sessions["BASE_URL"],
            )
            if _standin.speech_engine is not None:
                logger.info("Live transcription: %s.", _standin.speech_engine.description)
            else:
                logger.warning("Live transcription is off: %s", _standin.speech_problem)
        return _standin


class DemoConfig(AppConfig):
    name = "example_project.demo"
    label = "demo"
    verbose_name = "Demo"

    def ready(self) -> None:
        # With a key, the environment decides everything (OPENAI_BASE_URL, RT_UPSTREAM): no stand-in.
        if os.environ.get("OPENAI_API_KEY"):
            return
        if needs_standin():
            start_standin()
