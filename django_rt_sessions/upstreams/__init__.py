"""Upstream adapters, one per API shape, looked up by the `UPSTREAM` setting.

A fourth shape is a subclass of `Upstream` added to UPSTREAMS here, or named by dotted path in
`RT_SESSIONS["UPSTREAM"]`; views, models and the issuing service do not change.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import rt_settings
from .base import Upstream, UpstreamConfig, UpstreamFailure, UpstreamSession
from .beta import OpenAIBetaUpstream
from .openai import AzureUpstream, OpenAIUpstream

UPSTREAMS: dict[str, type[Upstream]] = {
    OpenAIUpstream.name: OpenAIUpstream,
    OpenAIBetaUpstream.name: OpenAIBetaUpstream,
    AzureUpstream.name: AzureUpstream,
}

__all__ = [
    "UPSTREAMS",
    "Upstream",
    "UpstreamConfig",
    "UpstreamFailure",
    "UpstreamSession",
    "configured_upstream",
    "get_config",
    "get_upstream",
    "redact",
]


def get_upstream(name: str | None = None) -> Upstream:
    """The adapter for `name` (default: the UPSTREAM setting)."""
    name = name or rt_settings.UPSTREAM
    upstream_class = UPSTREAMS.get(name)
    if upstream_class is None:
        if "." not in name:
            raise ImproperlyConfigured(
                f"RT_SESSIONS['UPSTREAM'] is {name!r}: use one of {', '.join(UPSTREAMS)} or a dotted path."
            )
        try:
            upstream_class = import_string(name)
        except ImportError as exc:
            raise ImproperlyConfigured(f"RT_SESSIONS['UPSTREAM'] {name!r} cannot be imported: {exc}") from exc
    return upstream_class()


def configured_upstream() -> Upstream | None:
    """The configured adapter, or None while UPSTREAM names none (system check rt_sessions.E001 says so).

    For validating presets at save and import: a broken setting must not make the admin answer 500.
    """
    try:
        return get_upstream()
    except ImproperlyConfigured:
        return None


def get_config() -> UpstreamConfig:
    return UpstreamConfig(
        base_url=rt_settings.BASE_URL,
        api_key=rt_settings.API_KEY,
        connect_timeout=rt_settings.CONNECT_TIMEOUT,
        read_timeout=rt_settings.READ_TIMEOUT,
        max_retries=rt_settings.MAX_RETRIES,
        organization=rt_settings.ORGANIZATION,
        project=rt_settings.PROJECT,
        api_key_source=rt_settings.API_KEY_SOURCE,
    )
