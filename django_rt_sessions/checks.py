"""System checks for RT_SESSIONS and the rate-limit cache (`manage.py check`, and every command that runs
Django's checks: runserver, migrate, …), and database checks of the stored presets (`manage.py check
--database default`, `migrate`). Every id is listed in docs/configuration.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.signals import setting_changed

from .conf import NON_ATOMIC_CACHES, UNSHARED_CACHES, is_loopback, rate_limit_cache_backend, rt_settings
from .testing.extras import REDIS, install_hint

TIMEOUT_RANGE = (0.1, 120.0)
MAX_RETRIES_RANGE = (0, 10)


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .presets.validation import RATE_RE
    from .upstreams import UPSTREAMS

    messages: list[checks.CheckMessage] = []
    upstream = rt_settings.UPSTREAM
    if upstream not in UPSTREAMS and "." not in upstream:
        messages.append(
            checks.Error(
                f"RT_SESSIONS['UPSTREAM'] is {upstream!r}.",
                hint=f"Use one of {', '.join(UPSTREAMS)}, or the dotted path of an Upstream subclass.",
                id="rt_sessions.E001",
            )
        )
    if upstream == "azure" and not rt_settings.BASE_URL_CONFIGURED:
        messages.append(
            checks.Error(
                "RT_SESSIONS['UPSTREAM'] is 'azure' but no BASE_URL is set.",
                hint="Set RT_SESSIONS['BASE_URL'] = 'https://<resource>.openai.azure.com/openai/v1'.",
                id="rt_sessions.E002",
            )
        )
    for key in ("USER_RATE", "IP_RATE"):
        value = getattr(rt_settings, key)
        if value and not (isinstance(value, str) and RATE_RE.fullmatch(value)):
            messages.append(
                checks.Error(
                    f"RT_SESSIONS['{key}'] is {value!r}, not a django-ratelimit rate.",
                    hint="Use a count per period like '10/m' (s, m, h or d), or None to disable.",
                    id="rt_sessions.E003",
                )
            )
    base = urlsplit(rt_settings.BASE_URL)
    if upstream == "openai-beta" and base.hostname == "api.openai.com":
        messages.append(
            checks.Error(
                "RT_SESSIONS['UPSTREAM'] is 'openai-beta' but BASE_URL is api.openai.com, which retired the "
                "beta transcription_sessions endpoint (it answers beta_api_shape_disabled).",
                hint="Set RT_SESSIONS['UPSTREAM'] = 'openai' (POST /v1/realtime/client_secrets).",
                id="rt_sessions.E004",
            )
        )
    if base.scheme != "https" and not settings.DEBUG and not is_loopback(base.hostname):
        messages.append(
            checks.Error(
                f"RT_SESSIONS['BASE_URL'] is {rt_settings.BASE_URL!r}: the API key would travel unencrypted.",
                hint="Use an https:// BASE_URL (plain http is accepted for loopback or with DEBUG).",
                id="rt_sessions.E005",
            )
        )
    messages.extend(_check_numbers())
    messages.extend(_check_relay_settings())
    messages.extend(_check_rate_limit_cache())
    if not rt_settings.API_KEY:
        messages.append(
            checks.Warning(
                "No OpenAI API key is configured: every token request will answer 503.",
                hint="Set the OPENAI_API_KEY environment variable or RT_SESSIONS['API_KEY']. To work "
                "offline, run the local stand-in for OpenAI and point OPENAI_BASE_URL and OPENAI_API_KEY "
                "at it (README, 'Without an OpenAI key').",
                id="rt_sessions.W001",
            )
        )
    return messages


def _check_rate_limit_cache() -> list[checks.CheckMessage]:
    """The limits need a cache every process shares, with atomic increments: django-redis.

    These are the app's own checks (django-ratelimit's run only with `django_ratelimit` in INSTALLED_APPS).
    With DEBUG an unshared cache is a Warning, so the development server still starts.
    """
    alias, backend = rate_limit_cache_backend()
    hint = (
        f"Use Redis through django-redis ({install_hint(REDIS)}; CACHES, or "
        "RATELIMIT_USE_CACHE): see docs/configuration.md#use-a-shared-cache."
    )
    if alias not in (getattr(settings, "CACHES", None) or {}):
        return [
            checks.Error(
                f"RATELIMIT_USE_CACHE is {alias!r}, which is not in CACHES.",
                hint="Name a cache alias of CACHES (default: 'default').",
                id="rt_sessions.E009",
            )
        ]
    if not (rt_settings.USER_RATE or rt_settings.IP_RATE):
        return []  # nothing is counted (a preset's own rate still is: the advice stands, but never blocks)
    name = backend.rsplit(".", 1)[-1]
    if backend in UNSHARED_CACHES:
        message = (
            f"The rate-limit cache {alias!r} ({name}) is not shared between processes: each worker "
            "would count its own limits, and the preset cache is not used."
        )
        if settings.DEBUG:
            return [
                checks.Warning(
                    message + " Fine for the single-process development server only.",
                    hint=hint,
                    id="rt_sessions.W005",
                )
            ]
        return [checks.Error(message, hint=hint, id="rt_sessions.E007")]
    if backend in NON_ATOMIC_CACHES:
        return [
            checks.Warning(
                f"The rate-limit cache {alias!r} ({name}) increments in two steps: concurrent requests "
                "can be counted once, letting more through than the limit.",
                hint=hint,
                id="rt_sessions.W006",
            )
        ]
    return []


def _check_relay_settings() -> list[checks.CheckMessage]:
    """RELAY_URL and RELAY_ALLOWED_ORIGINS: a malformed value would hand browsers a URL they cannot open,
    or refuse (or let in) the wrong pages."""
    from .relay.origins import origin_problem, relay_url_problem

    messages: list[checks.CheckMessage] = []
    relay_url = rt_settings._get("RELAY_URL")
    problem = relay_url_problem(relay_url) if relay_url else None
    if problem:
        messages.append(
            checks.Error(
                f"RT_SESSIONS['RELAY_URL'] is {relay_url!r}: {problem}",
                hint="Give the relay's base as browsers reach it, like 'wss://www.example.com/rt/relay' "
                "(ws:// only on loopback); see docs/configuration.md.",
                id="rt_sessions.E011",
            )
        )
    origins = rt_settings._get("RELAY_ALLOWED_ORIGINS")
    if not isinstance(origins, (list, tuple)):
        problems = [f"{origins!r} is not a list"]
    else:
        problems = [f"{origin!r}: {origin_problem(origin)}" for origin in origins if origin_problem(origin)]
    if problems:
        messages.append(
            checks.Error(
                "RT_SESSIONS['RELAY_ALLOWED_ORIGINS'] has " + "; ".join(problems) + ".",
                hint="List origins as browsers send them: scheme, host and port only, like "
                "'https://app.example.com'; see docs/configuration.md.",
                id="rt_sessions.E012",
            )
        )
    return messages


def _check_numbers() -> list[checks.CheckMessage]:
    problems = []
    for key in ("CONNECT_TIMEOUT", "READ_TIMEOUT"):
        try:
            value = getattr(rt_settings, key)
        except (TypeError, ValueError):
            value = None
        if value is None or not TIMEOUT_RANGE[0] <= value <= TIMEOUT_RANGE[1]:
            low, high = TIMEOUT_RANGE
            problems.append(f"RT_SESSIONS['{key}'] must be a number of seconds from {low} to {high}.")
    try:
        retries = rt_settings.MAX_RETRIES
    except (TypeError, ValueError):
        retries = None
    if retries is None or not MAX_RETRIES_RANGE[0] <= retries <= MAX_RETRIES_RANGE[1]:
        problems.append(
            f"RT_SESSIONS['MAX_RETRIES'] must be a whole number from 0 to {MAX_RETRIES_RANGE[1]}."
        )
    return [
        checks.Error(
            message, hint="Token requests wait for the upstream: keep these short.", id="rt_sessions.E006"
        )
        for message in problems
    ]


@checks.register()
def check_settings_shape(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """RT_SESSIONS must be a dict of known keys: a typo would otherwise be ignored without a word."""
    from difflib import get_close_matches

    from .conf import DEFAULTS

    value = getattr(settings, "RT_SESSIONS", None)
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [
            checks.Error(
                f"RT_SESSIONS is {type(value).__name__}, not a dict: every setting takes its default.",
                hint='Write RT_SESSIONS = {"UPSTREAM": "openai", ...}; see docs/configuration.md.',
                id="rt_sessions.E010",
            )
        ]
    messages: list[checks.CheckMessage] = []
    for key in value:
        if key in DEFAULTS:
            continue
        close = get_close_matches(str(key), DEFAULTS, n=1) if isinstance(key, str) else []
        hint = f"Did you mean {close[0]}?" if close else f"The settings are: {', '.join(DEFAULTS)}."
        messages.append(
            checks.Warning(
                f"RT_SESSIONS has an unknown key {key!r}, which is ignored.",
                hint=hint + " See docs/configuration.md.",
                id="rt_sessions.W007",
            )
        )
    return messages


@checks.register()
def check_models(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .sessions.catalog import setting_problems

    return [
        checks.Error(
            problem,
            hint='Each entry is a dict of "transports", "turn_detection", "fields", "shutdown" and '
            '"replacement" (any of them), or None to forget a shipped one; see docs/presets.md#known-models.',
            id="rt_sessions.E008",
        )
        for problem in setting_problems(rt_settings.MODELS)
    ]


# Errors a running site survives, degraded: an unshared rate-limit cache still counts, per process. The
# other Errors would crash a request, send the key unencrypted or call an upstream that must refuse.
SERVED_DESPITE = frozenset({"rt_sessions.E007"})


# What the settings checks read besides Django's settings. Their Errors are computed once per value of
# these and again after any `setting_changed` (override_settings, pytest-django's `settings`): every token
# request asks, and running the checks each time cost about 20 µs.
_CHECKED_ENVIRONMENT = ("OPENAI_API_KEY", "OPENAI_BASE_URL")
_configuration_errors: dict[tuple[str | None, ...], list[checks.CheckMessage]] = {}


def configuration_errors() -> list[checks.CheckMessage]:
    """The Errors of the settings checks: what `manage.py check` refuses, found the same way when a request
    arrives under a server that runs no checks (gunicorn, uvicorn, daphne). The issuing service answers
    503 `misconfigured` while there is one (but for SERVED_DESPITE)."""
    environment = tuple(os.environ.get(name) for name in _CHECKED_ENVIRONMENT)
    errors = _configuration_errors.get(environment)
    if errors is None:
        errors = [
            message
            for check in (check_settings_shape, check_settings, check_models)
            for message in check()
            if message.is_serious() and message.id not in SERVED_DESPITE
        ]
        _configuration_errors.clear()  # one environment at a time: nothing grows
        _configuration_errors[environment] = errors
    return errors


def _forget_configuration_errors(**kwargs: Any) -> None:
    _configuration_errors.clear()


setting_changed.connect(_forget_configuration_errors, dispatch_uid="rt_sessions.configuration_errors")


@checks.register(checks.Tags.database)
def check_presets(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warnings about stored presets: `manage.py check --database default` and `migrate` run these.

    Warnings, never Errors: preset data must not block a deploy or a migration.
    """
    from django.db import DatabaseError

    from .models import SessionPreset
    from .sessions import catalog
    from .sessions.fields import model_of
    from .sessions.validation import PresetValidationError, validate_session
    from .upstreams import configured_upstream

    messages: list[checks.CheckMessage] = []
    upstream = configured_upstream()
    for alias in databases or ():
        try:
            presets = list(SessionPreset.objects.using(alias).filter(active=True).order_by("name"))
        except DatabaseError:
            continue  # not migrated yet (this runs during the first migrate too)
        for preset in presets:
            retiring = catalog.retiring(model_of(preset.session))
            if retiring is not None:
                messages.append(
                    checks.Warning(
                        retiring.retirement_notice(preset.name),
                        hint="Change the preset's transcription model in the admin or in your presets file "
                        "(docs/presets.md#model-lifecycle).",
                        obj=preset,
                        id="rt_sessions.W002",
                    )
                )
            try:
                validate_session(preset.session)
            except PresetValidationError as exc:
                messages.append(
                    checks.Warning(
                        f"Preset {preset.name!r} is no longer valid ({exc}): requests for it answer 503.",
                        hint="Open it in the admin and save it with the fields corrected.",
                        obj=preset,
                        id="rt_sessions.W004",
                    )
                )
                continue
            unsupported = upstream.unsupported(preset.session) if upstream is not None else []
            if unsupported and upstream is not None:
                messages.append(
                    checks.Warning(
                        f"Preset {preset.name!r} cannot be served by the {upstream.name} upstream: "
                        + " ".join(upstream.unsupported_message(token) for token in unsupported)
                        + " Requests for it answer 503.",
                        hint="Change RT_SESSIONS['UPSTREAM'], or remove those settings from the preset.",
                        obj=preset,
                        id="rt_sessions.W003",
                    )
                )
    return messages
