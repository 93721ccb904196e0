"""The `RT_SESSIONS` settings object.

Every property reads `django.conf.settings` on each access (the django-cors-headers pattern), so
`override_settings` and the `setting_changed` signal need no cache invalidation: nothing is cached.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"

DEFAULTS: dict[str, Any] = {
    "UPSTREAM": "openai",
    "API_KEY": None,  # falls back to env OPENAI_API_KEY
    "BASE_URL": None,  # falls back to env OPENAI_BASE_URL, then DEFAULT_BASE_URL
    "ORGANIZATION": None,
    "PROJECT": None,
    "SAFETY_IDENTIFIER": True,
    "CONNECT_TIMEOUT": 3.05,
    "READ_TIMEOUT": 10.0,
    "MAX_RETRIES": 2,
    "USER_RATE": "10/m",
    "IP_RATE": "60/m",
    "RATE_LIMIT_FAIL_OPEN": False,
    "POLICY": None,
    "AUDIT_RETENTION_DAYS": 90,
    "PRESET_CACHE": True,
    "MODELS": {},
    "RELAY_URL": None,
    "RELAY_ALLOWED_ORIGINS": [],
}


class Settings:
    """Typed view of `settings.RT_SESSIONS`; missing keys take DEFAULTS, unknown keys are ignored (and
    named by check rt_sessions.W007)."""

    def _get(self, key: str) -> Any:
        user_settings = getattr(settings, "RT_SESSIONS", None)
        if not isinstance(user_settings, Mapping):
            user_settings = {}  # not a dict: the defaults (check rt_sessions.E010 says so)
        return user_settings.get(key, DEFAULTS[key])

    @property
    def UPSTREAM(self) -> str:
        return str(self._get("UPSTREAM"))

    @property
    def API_KEY(self) -> str | None:
        return self._get("API_KEY") or os.environ.get("OPENAI_API_KEY") or None

    @property
    def API_KEY_SOURCE(self) -> str:
        """Where API_KEY came from, in the words a log message should use to send the reader there."""
        if self._get("API_KEY"):
            return "RT_SESSIONS['API_KEY']"
        if os.environ.get("OPENAI_API_KEY"):
            return "the OPENAI_API_KEY environment variable"
        return "RT_SESSIONS['API_KEY'] or the OPENAI_API_KEY environment variable"

    @property
    def BASE_URL(self) -> str:
        base = self._get("BASE_URL") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        return str(base).rstrip("/")

    @property
    def BASE_URL_CONFIGURED(self) -> bool:
        """Whether the site chose a base URL (azure has no sensible default)."""
        return bool(self._get("BASE_URL") or os.environ.get("OPENAI_BASE_URL"))

    @property
    def ORGANIZATION(self) -> str | None:
        return self._get("ORGANIZATION") or None

    @property
    def PROJECT(self) -> str | None:
        return self._get("PROJECT") or None

    @property
    def SAFETY_IDENTIFIER(self) -> bool:
        return bool(self._get("SAFETY_IDENTIFIER"))

    @property
    def CONNECT_TIMEOUT(self) -> float:
        return float(self._get("CONNECT_TIMEOUT"))

    @property
    def READ_TIMEOUT(self) -> float:
        return float(self._get("READ_TIMEOUT"))

    @property
    def MAX_RETRIES(self) -> int:
        return int(self._get("MAX_RETRIES"))

    @property
    def USER_RATE(self) -> str | None:
        return self._get("USER_RATE") or None

    @property
    def IP_RATE(self) -> str | None:
        return self._get("IP_RATE") or None

    @property
    def RATE_LIMIT_FAIL_OPEN(self) -> bool:
        return bool(self._get("RATE_LIMIT_FAIL_OPEN"))

    @property
    def POLICY(self) -> Any:
        return self._get("POLICY") or None

    @property
    def AUDIT_RETENTION_DAYS(self) -> int:
        return int(self._get("AUDIT_RETENTION_DAYS"))

    @property
    def PRESET_CACHE(self) -> bool:
        return bool(self._get("PRESET_CACHE"))

    @property
    def MODELS(self) -> Any:
        """Entries added to, or correcting, the shipped table of known models (sessions/catalog.py)."""
        return self._get("MODELS") or {}

    @property
    def RELAY_URL(self) -> str | None:
        """The `wss://…/relay` base the 201 hands out for relay presets (None: derived from the request)."""
        value = self._get("RELAY_URL")
        return str(value).rstrip("/") if value else None

    @property
    def RELAY_ALLOWED_ORIGINS(self) -> list[str]:
        """Browser origins besides the site's own that may open the relay (check rt_sessions.E012)."""
        value = self._get("RELAY_ALLOWED_ORIGINS") or []
        return [str(origin) for origin in value] if isinstance(value, (list, tuple)) else []


rt_settings = Settings()


# The cache the rate limits count in (and the preset cache's generation lives in): the backends whose
# counts are not shared between processes (or not kept at all)...
UNSHARED_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
)
# Shared, but an increment is a read and a write: concurrent requests can be counted once.
NON_ATOMIC_CACHES = (
    "django.core.cache.backends.redis.RedisCache",
    "django.core.cache.backends.db.DatabaseCache",
)


def rate_limit_cache_backend() -> tuple[str, str]:
    """The alias of the cache the rate limits count in (`RATELIMIT_USE_CACHE`) and its BACKEND path."""
    alias = getattr(settings, "RATELIMIT_USE_CACHE", "default")
    return alias, str((getattr(settings, "CACHES", None) or {}).get(alias, {}).get("BACKEND", ""))


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str | None) -> bool:
    """Whether a URL's host is this machine: plain http/ws is accepted there, and a browser reaches a WebRTC
    peer there only with a flag (docs/testing.md)."""
    return bool(host) and (host in LOOPBACK_HOSTS or str(host).startswith("127."))
