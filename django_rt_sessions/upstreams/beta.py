"""The beta endpoint's shape: `POST {BASE_URL}/realtime/transcription_sessions`.

Retired on api.openai.com (answers 400 `beta_api_shape_disabled`); still served by some compatible servers.
It predates the GA-only session fields (keywords, languages, delay, noise strength, semantic VAD, idle
timeout), so it declares that it cannot send them.
"""

from __future__ import annotations

import copy
from typing import Any

from ..sessions.fields import ga_only_tokens
from .base import Upstream

RETURNED_KEYS = (
    "input_audio_format",
    "input_audio_transcription",
    "turn_detection",
    "input_audio_noise_reduction",
    "include",
)


class OpenAIBetaUpstream(Upstream):
    name = "openai-beta"
    api = "beta"
    path = "/realtime/transcription_sessions"
    webrtc_path = "/realtime"  # the beta WebRTC flow posts the SDP offer here
    cannot_send = ga_only_tokens()

    def unsupported_message(self, token: str) -> str:
        path, _, value = token.partition("=")
        what = f"{value!r}" if value else f"{path.rsplit('.', 1)[-1]!r}"
        return (
            f"The beta endpoint (RT_SESSIONS['UPSTREAM'] = 'openai-beta') cannot send {what}: it is a "
            "GA-only setting. Use UPSTREAM 'openai' or 'azure', or remove it."
        )

    def build_body(self, session: dict[str, Any], expires_after_seconds: int) -> dict[str, Any]:
        # The beta shape has no TTL parameter: its keys expire after about a minute.
        return copy.deepcopy(session)

    def normalise(self, data: Any, sent_session: dict[str, Any]) -> dict[str, Any]:
        secret = data["client_secret"]
        result: dict[str, Any] = {
            "client_secret": {"value": secret["value"], "expires_at": secret["expires_at"]},
            "modalities": data.get("modalities") or ["text"],
        }
        for key in RETURNED_KEYS:
            result[key] = data[key] if key in data else sent_session.get(key)
        if result["input_audio_format"] is None:
            result["input_audio_format"] = "pcm16"
        result["id"] = data.get("id")
        return result
