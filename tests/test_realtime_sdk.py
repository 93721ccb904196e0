"""The whole path with a client no one here wrote: a key minted through the app's API (Django's test
client, the stand-in as upstream) opens the realtime socket with the official openai-python SDK, which
streams recorded speech and gets the transcript. Every event the stand-in sends is validated against the
SDK's own models.
"""

from __future__ import annotations

import json
from typing import Any

import openai
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
SERVER_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


def create_dictation(model: str = MODEL, turn_detection: dict[str, Any] | None = None) -> SessionPreset:
    return SessionPreset.objects.create(
        name="dictation-en",
        default=True,
        session={
            "input_audio_format": "pcm16",
            "input_audio_transcription": {"model": model, "language": "en"},
            # gpt-live-transcribe takes no server VAD (OpenAI's VAD guide): the client commits each turn.
            "turn_detection": turn_detection,
        },
        expires_after_seconds=60,
    )


@pytest.fixture
def dictation(db: Any) -> SessionPreset:
    return create_dictation()


def minted(api: Client) -> dict[str, Any]:
    response = post(api, {"preset": "dictation-en"})
    assert response.status_code == 201, response.content
    return dict(response.json())


def sdk(key: str, standin: OpenAIStandIn) -> OpenAI:
    return OpenAI(api_key=key, base_url=standin.base_url, max_retries=0)


@pytest.mark.parametrize(
    ("model", "turn_detection"),
    [(MODEL, None), ("gpt-transcribe", SERVER_VAD)],
    ids=["client-commits", "server-vad"],
)
def test_the_sdk_transcribes_speech_with_a_key_from_the_app(
    api: Client, upstream: OpenAIStandIn, model: str, turn_detection: dict[str, Any] | None
) -> None:
    create_dictation(model, turn_detection)
    session = minted(api)
    key = session["client_secret"]["value"]
    # The app's `connect` names the stand-in's socket, as it would name OpenAI's.
    assert session["connect"]["websocket_url"] == upstream.realtime_url
    assert "websocket" in session["connect"]["transports"]

    received: list[dict[str, Any]] = []
    with sdk(key, upstream).realtime.connect(
        model=model, extra_query={"intent": "transcription"}
    ) as connection:
        created = connection.recv()
        assert created.type == "session.created"
        for wav in (COFFEE, DOOR):
            for frame in base64_frames(speech(wav)):
                connection.input_audio_buffer.append(audio=frame)
            if turn_detection is None:
                connection.input_audio_buffer.commit()  # the client ends the turn
            for event in connection:
                received.append(event.to_dict())
                if event.type == COMPLETED:
                    break

    # The SDK's parser accepts anything (construct_type_unchecked): check every event against its models.
    for event in [created.to_dict(), *received]:
        SERVER_EVENT.validate_python(event)
    assert created.session.type == "transcription"
    audio_input = created.to_dict()["session"]["audio"]["input"]
    assert audio_input["transcription"] == {"model": model, "language": "en"}
    assert audio_input.get("turn_detection") == turn_detection
    kinds = [e["type"] for e in received]
    assert ("input_audio_buffer.speech_started" in kinds) == (turn_detection is not None)
    completed = [e["transcript"] for e in received if e["type"] == COMPLETED]
    assert has_words(completed[0], WORDS[COFFEE]), completed
    assert has_words(completed[1], WORDS[DOOR]), completed
    assert DELTA in kinds

    (connection_record,) = upstream.realtime
    assert connection_record.credential == "ephemeral_key"
    upgrade = next(r for r in upstream.requests if r.shape == "realtime")
    assert upgrade.headers["authorization"] == f"Bearer {key}"  # how the SDK sends the key


def test_vad_on_gpt_live_transcribe_is_refused_like_openai(upstream: OpenAIStandIn) -> None:
    """At the mint and by session.update, as OpenAI refuses it (its VAD guide: turn detection omitted or
    null for gpt-live-transcribe)."""
    server = OpenAI(api_key=upstream.api_key, base_url=upstream.base_url, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        server.realtime.client_secrets.create(
            session={
                "type": "transcription",
                "audio": {"input": {"transcription": {"model": MODEL}, "turn_detection": SERVER_VAD}},
            }
        )
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "session.audio.input.turn_detection"  # type: ignore[index]
    assert caught.value.body["code"] == "invalid_value"  # type: ignore[index]

    # Without turn detection the mint succeeds, and the key's session then refuses VAD in session.update.
    secret = server.realtime.client_secrets.create(
        session={"type": "transcription", "audio": {"input": {"transcription": {"model": MODEL}}}}
    )
    assert secret.session.audio.input.turn_detection is None  # type: ignore[union-attr]
    with sdk(secret.value, upstream).realtime.connect(
        model=MODEL, extra_query={"intent": "transcription"}
    ) as connection:
        assert connection.recv().type == "session.created"
        connection.session.update(
            session={"type": "transcription", "audio": {"input": {"turn_detection": SERVER_VAD}}},
            event_id="update-1",
        )
        error = connection.recv()
        SERVER_EVENT.validate_python(error.to_dict())
        assert error.type == "error"
        assert error.error.param == "session.audio.input.turn_detection"  # type: ignore[union-attr]
        assert error.error.event_id == "update-1"  # type: ignore[union-attr]
        # The session goes on without VAD: a commit ends the turn.
        for frame in base64_frames(speech(DOOR)):
            connection.input_audio_buffer.append(audio=frame)
        connection.input_audio_buffer.commit()
        for event in connection:
            if event.type == COMPLETED:
                break
    assert has_words(event.transcript, WORDS[DOOR]), event.transcript  # type: ignore[union-attr]


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
