"""The package's optional extras (pyproject.toml) and how to install one, said the same way everywhere.

Stdlib only: the messages that name a missing extra must work precisely when the extra is missing.
"""

from __future__ import annotations

PACKAGE = "django-rt-sessions"
TESTING = "testing"  # the stand-in: aiohttp, jsonschema
SPEECH = "standin-speech"  # the stand-in's speech engine: Whisper tiny.en
SPEECH_LITE = "standin-speech-lite"  # the small fallback engine: PocketSphinx
WEBRTC = "standin-webrtc"  # the stand-in's WebRTC calls: aiortc
REDIS = "redis"  # django-redis, the shared cache of the rate limits


def install_hint(extra: str) -> str:
    """How to install the package with `extra`: from PyPI, and from a checkout (where `pip install
    "django-rt-sessions[x]"` would look the name up on PyPI instead of installing the checkout)."""
    return f'pip install "{PACKAGE}[{extra}]" (from a checkout: pip install -e ".[{extra}]")'
