"""System checks for RT_SESSIONS (`manage.py check`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from .conf import rt_settings
from .presets import RATE_RE


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
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
    if not rt_settings.API_KEY and not settings.DEBUG:
        messages.append(
            checks.Warning(
                "No OpenAI API key is configured: every token request will answer 503.",
                hint="Set the OPENAI_API_KEY environment variable or RT_SESSIONS['API_KEY'].",
                id="rt_sessions.W001",
            )
        )
    return messages
