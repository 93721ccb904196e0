"""The whole path with a client no one here wrote: a key minted through the app's API (Django's test
client, the stand-in as upstream) opens the realtime socket with the official openai-python SDK, which
streams recorded speech and gets the transcript. Every event the stand-in sends is validated against the
SDK's own models.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from django.test import Client
from openai import OpenAI
from openai.types.realtime import RealtimeServerEvent
from websockets.exceptions import InvalidStatus

from django_rt_sessions.models import SessionPreset
from django_rt_sessions.testing import Expired, OpenAIStandIn
from django_rt_sessions.testing.audio import base64_frames

from .conftest import post
from .realtime_support import COFFEE, COMPLETED, DELTA, DOOR, WORDS, has_words, speech

pytestmark = pytest.mark.django_db

SERVER_EVENT = pydantic.TypeAdapter(RealtimeServerEvent)
MODEL = "gpt-live-transcribe"


@pytest.fixture
def dictation(db: Any) -> SessionPreset:
    return SessionPreset.objects.create(
        name="dictation-en",
        default=True,
        session={
            "input_audio_format": "pcm16",
            "input_audio_transcription": {"model": MODEL, "language": "en"},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
            },
        },
        expires_after_seconds=60,
    )


def minted(api: Client) -> dict[str, Any]:
    response = post(api, {"preset": "dictation-en"})
    assert response.status_code == 201, response.content
    return dict(response.json())


def sdk(key: str, standin: OpenAIStandIn) -> OpenAI:
    return OpenAI(api_key=key, base_url=standin.base_url, max_retries=0)


def test_the_sdk_transcribes_speech_with_a_key_from_the_app(
    api: Client, dictation: SessionPreset, upstream: OpenAIStandIn
) -> None:
    session = minted(api)
    key = session["client_secret"]["value"]
    # The app's `connect` names the stand-in's socket, as it would name OpenAI's.
    assert session["connect"]["websocket_url"] == upstream.realtime_url
    assert "websocket" in session["connect"]["transports"]

    received: list[dict[str, Any]] = []
    with sdk(key, upstream).realtime.connect(
        model=MODEL, extra_query={"intent": "transcription"}
    ) as connection:
        created = connection.recv()
        assert created.type == "session.created"
        for frame in base64_frames(speech(COFFEE, DOOR)):
            connection.input_audio_buffer.append(audio=frame)
        for event in connection:
            received.append(event.to_dict())
            if sum(e["type"] == COMPLETED for e in received) == 2:
                break

    # The SDK's parser accepts anything (construct_type_unchecked): check every event against its models.
    for event in [created.to_dict(), *received]:
        SERVER_EVENT.validate_python(event)
    assert created.session.type == "transcription"
    assert created.to_dict()["session"]["audio"]["input"]["transcription"] == {
        "model": MODEL,
        "language": "en",
    }
    completed = [e["transcript"] for e in received if e["type"] == COMPLETED]
    assert has_words(completed[0], WORDS[COFFEE]), completed
    assert has_words(completed[1], WORDS[DOOR]), completed
    assert any(e["type"] == DELTA for e in received)

    (connection_record,) = upstream.realtime
    assert connection_record.credential == "ephemeral_key"
    upgrade = next(r for r in upstream.requests if r.shape == "realtime")
    assert upgrade.headers["authorization"] == f"Bearer {key}"  # how the SDK sends the key


def test_the_sdk_is_refused_with_a_forged_or_expired_key(
    api: Client, dictation: SessionPreset, upstream: OpenAIStandIn
) -> None:
    def refusal(key: str) -> tuple[int, dict[str, Any]]:
        with pytest.raises(InvalidStatus) as caught:
            sdk(key, upstream).realtime.connect(model=MODEL, extra_query={"intent": "transcription"}).enter()
        return caught.value.response.status_code, json.loads(caught.value.response.body or b"{}")

    genuine = minted(api)["client_secret"]["value"]
    forged = "ek_" + "".join("0" if c != "0" else "1" for c in genuine[3:])  # same shape, never issued
    status, body = refusal(forged)
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")

    upstream.enqueue(Expired())  # the upstream answers with a key that has already expired
    expired = minted(api)["client_secret"]
    status, body = refusal(expired["value"])
    assert (status, body["error"]["code"]) == (401, "ephemeral_key_expired")

    # The genuine key still works: the refusals were about those keys, not the connection.
    with sdk(genuine, upstream).realtime.connect(
        model=MODEL, extra_query={"intent": "transcription"}
    ) as connection:
        assert connection.recv().type == "session.created"
