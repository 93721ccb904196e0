"""Upstream adapters for tests that run the example project in another process (RT_UPSTREAM=<dotted path>)."""

from __future__ import annotations

from typing import Any

from django_rt_sessions.upstreams.openai import OpenAIUpstream

FAIL_PROMPT = "fail after issuance"


class FailsAfterIssuance(OpenAIUpstream):
    """The GA adapter, except that a session whose prompt is FAIL_PROMPT fails once the upstream has handed
    out its key, with the answer in a plain local (not marked with sensitive_variables)."""

    def normalise(self, data: Any, sent_session: dict[str, Any]) -> dict[str, Any]:
        answer = super().normalise(data, sent_session)
        if (sent_session.get("input_audio_transcription") or {}).get("prompt") == FAIL_PROMPT:
            raise RuntimeError("failed after issuance")
        return answer
