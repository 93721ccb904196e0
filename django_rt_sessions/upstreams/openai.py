"""The GA shape: `POST {BASE_URL}/realtime/client_secrets` with `session.type = "transcription"`.

Served by OpenAI (Bearer) and by Azure OpenAI (`api-key` header).
"""

from __future__ import annotations

from typing import Any

from django.views.decorators.debug import sensitive_variables

from .base import Upstream, UpstreamConfig

# The beta endpoint's format names -> GA audio format objects, and back.
GA_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
BETA_FORMATS = {ga["type"]: beta for beta, ga in GA_FORMATS.items()}

# Beta session key -> GA `session.audio.input` key.
GA_INPUT_KEYS = {
    "input_audio_noise_reduction": "noise_reduction",
    "input_audio_transcription": "transcription",
    "turn_detection": "turn_detection",
}


def beta_to_ga(session: dict[str, Any], expires_after_seconds: int) -> dict[str, Any]:
    """A preset session (the beta endpoint's vocabulary) as a GA client_secrets request body."""
    audio_input: dict[str, Any] = {}
    if "input_audio_format" in session:
        audio_input["format"] = dict(GA_FORMATS[session["input_audio_format"]])
    for beta_key, ga_key in GA_INPUT_KEYS.items():
        if beta_key in session:
            audio_input[ga_key] = session[beta_key]
    ga_session: dict[str, Any] = {"type": "transcription"}
    if audio_input:
        ga_session["audio"] = {"input": audio_input}
    if "include" in session:
        ga_session["include"] = session["include"]
    return {
        "expires_after": {"anchor": "created_at", "seconds": expires_after_seconds},
        "session": ga_session,
    }


def ga_to_beta(data: dict[str, Any], sent_session: dict[str, Any]) -> dict[str, Any]:
    """A GA client_secrets answer in the beta endpoint's "Returns" shape.

    Fields it omits come from what we sent."""
    session = data.get("session") or {}
    audio_input = (session.get("audio") or {}).get("input") or {}
    fmt = audio_input.get("format")
    if isinstance(fmt, dict) and fmt.get("type") in BETA_FORMATS:
        input_audio_format = BETA_FORMATS[fmt["type"]]
    else:
        input_audio_format = sent_session.get("input_audio_format", "pcm16")
    result: dict[str, Any] = {
        "client_secret": {"value": data["value"], "expires_at": data["expires_at"]},
        "input_audio_format": input_audio_format,
        "modalities": ["text"],
    }
    for beta_key, ga_key in GA_INPUT_KEYS.items():
        result[beta_key] = audio_input[ga_key] if ga_key in audio_input else sent_session.get(beta_key)
    result["include"] = session["include"] if "include" in session else sent_session.get("include")
    result["id"] = session.get("id")
    return result


class OpenAIUpstream(Upstream):
    name = "openai"
    api = "ga"
    path = "/realtime/client_secrets"

    def build_body(self, session: dict[str, Any], expires_after_seconds: int) -> dict[str, Any]:
        return beta_to_ga(session, expires_after_seconds)

    def normalise(self, data: Any, sent_session: dict[str, Any]) -> dict[str, Any]:
        return ga_to_beta(data, sent_session)


class AzureUpstream(OpenAIUpstream):
    name = "azure"
    relay_mints_key = True  # the relay opens Azure's socket with an ephemeral key it minted itself

    @sensitive_variables("api_key")
    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"api-key": api_key}

    def check_config(self, config: UpstreamConfig) -> str | None:
        if "api.openai.com" in config.base_url:
            return (
                "RT_SESSIONS['UPSTREAM'] is 'azure' but BASE_URL is not set: set it to "
                "https://<resource>.openai.azure.com/openai/v1."
            )
        return None
