"""The stand-in's WebRTC calls (django_rt_sessions.testing.webrtc), with a real aiortc client peer on
loopback: the SDP exchange, the Opus track transcribed, events both ways on the "oai-events" data channel,
the key refused like at the WebSocket, the CORS answers a browser on another origin needs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from django_rt_sessions.testing import Error, OpenAIStandIn
from django_rt_sessions.testing.audio import to_wav
from django_rt_sessions.testing.webrtc import loopback_ice

from .realtime_support import COFFEE, COMPLETED, DELTA, DOOR, WAIT, WORDS, has_words, mint, speech

pytestmark = pytest.mark.no_database

CALL_LOCATION = re.compile(r"^/v1/realtime/calls/rtc_[A-Za-z0-9]{24}$")
LIVE = {"transcription": {"model": "gpt-live-transcribe", "language": "en"}}  # no turn detection: commits
# Enough of an SDP offer for the checks made before any WebRTC (keys, content type).
OFFER_STUB = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as standin:
        assert standin.speech_engine is not None, standin.speech_problem
        yield standin


@pytest.fixture
def standin(server: OpenAIStandIn) -> OpenAIStandIn:
    server.reset()
    return server


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test sentences as WAV files for the client's track (played once, in real time)."""
    folder = tmp_path_factory.mktemp("webrtc-speech")
    return {
        "both": to_wav(speech(COFFEE, DOOR), folder / "both.wav"),
        "door": to_wav(speech(DOOR), folder / "door.wav"),
    }


@dataclass
class Client:
    """An aiortc peer that calls the stand-in the way a browser does (offer with a microphone track and the
    "oai-events" data channel), on its own event loop."""

    url: str
    key: str
    wav: Path
    answer: requests.Response | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    async def call(
        self, until: Any, *, then_send: list[dict[str, Any]] | None = None, after: Any = None
    ) -> None:
        """Call, and collect events until ``until(events)``; ``then_send`` once ``after(events)`` holds."""
        arrived: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        with loopback_ice():
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            channel = pc.createDataChannel("oai-events")
            channel.on("message", lambda message: arrived.put_nowait(json.loads(message)))
            player = MediaPlayer(str(self.wav))
            pc.addTrack(player.audio)
            await pc.setLocalDescription(await pc.createOffer())
        loop = asyncio.get_running_loop()
        self.answer = await loop.run_in_executor(None, self._post, pc.localDescription.sdp)
        try:
            if self.answer.status_code != 201:
                return
            await pc.setRemoteDescription(RTCSessionDescription(sdp=self.answer.text, type="answer"))
            sent = False
            deadline = loop.time() + WAIT  # a bound on each wait, never an expectation of speed
            while not until(self.events):
                try:
                    self.events.append(await asyncio.wait_for(arrived.get(), 0.05))
                    deadline = loop.time() + WAIT
                except asyncio.TimeoutError:
                    if loop.time() > deadline:
                        raise
                if then_send and not sent and after(self.events):
                    for event in then_send:
                        channel.send(json.dumps(event))
                    sent = True
        finally:
            await pc.close()

    def _post(self, sdp: str) -> requests.Response:
        return requests.post(
            self.url,
            data=sdp,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/sdp"},
            timeout=WAIT,
        )


def completed(count: int) -> Any:
    return lambda events: sum(e["type"] == COMPLETED for e in events) >= count


def transcripts(events: list[dict[str, Any]]) -> list[str]:
    return [e["transcript"] for e in events if e["type"] == COMPLETED]


def test_a_call_with_server_vad_transcribes_the_track_turn_by_turn(
    standin: OpenAIStandIn, spoken: dict[str, Path]
) -> None:
    client = Client(standin.webrtc_url, mint(standin), spoken["both"])  # gpt-transcribe, server VAD
    asyncio.run(client.call(until=completed(2)))
    answer = client.answer
    assert answer is not None and answer.status_code == 201, answer and answer.text
    assert answer.headers["Content-Type"] == "application/sdp"
    assert answer.text.startswith("v=0\r\n")
    assert CALL_LOCATION.match(answer.headers["Location"])
    # ICE stays on loopback: the peer's only candidates are on 127.0.0.1.
    candidates = [line for line in answer.text.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(line.split()[4] == "127.0.0.1" for line in candidates)

    kinds = [e["type"] for e in client.events]
    assert kinds[0] == "session.created"
    assert client.events[0]["session"]["audio"]["input"]["transcription"]["model"] == "gpt-transcribe"
    assert kinds.count("input_audio_buffer.speech_started") == 2
    assert DELTA in kinds
    coffee, door = transcripts(client.events)
    assert has_words(coffee, WORDS[COFFEE]), coffee
    assert has_words(door, WORDS[DOOR]), door

    (call,) = standin.realtime
    assert (call.transport, call.credential, call.path) == ("webrtc", "ephemeral_key", "/v1/realtime/calls")
    assert answer.headers["Location"].endswith(call.call_id or "?")
    assert call.sent == client.events[: len(call.sent)]
    assert call.audio_bytes_received > 48000 * 4  # seconds of 24 kHz PCM16 from the Opus track
    assert call.wait_closed(), "the call did not end when the client closed its peer connection"


def test_without_turn_detection_a_commit_on_the_data_channel_ends_the_turn(
    standin: OpenAIStandIn, spoken: dict[str, Path]
) -> None:
    key = mint(standin, LIVE)
    client = Client(standin.webrtc_url, key, spoken["door"])
    # Commit once the open turn's words have started to stream (the track plays in real time).
    asyncio.run(
        client.call(
            until=completed(1),
            then_send=[{"type": "input_audio_buffer.commit", "event_id": "commit-1"}],
            after=lambda events: any(e["type"] == DELTA for e in events) and _heard_all(standin, DOOR),
        )
    )
    kinds = [e["type"] for e in client.events]
    assert "input_audio_buffer.speech_started" not in kinds
    assert kinds.index(DELTA) < kinds.index("input_audio_buffer.committed") < kinds.index(COMPLETED)
    (transcript,) = transcripts(client.events)
    assert has_words(transcript, WORDS[DOOR]), transcript
    (call,) = standin.realtime
    assert call.received == [{"type": "input_audio_buffer.commit", "event_id": "commit-1"}]


def _heard_all(standin: OpenAIStandIn, wav: Path) -> bool:
    """Whether the call has received the audio of ``wav`` with speech()'s silences (24 kHz PCM16)."""
    from django_rt_sessions.testing.audio import from_wav

    return bool(standin.realtime) and standin.realtime[-1].audio_bytes_received >= len(from_wav(wav)) + 48000


def test_azure_path_answers_with_its_own_location(standin: OpenAIStandIn, spoken: dict[str, Path]) -> None:
    client = Client(standin.azure_base_url + "/realtime/calls", mint(standin), spoken["door"])
    asyncio.run(client.call(until=lambda events: len(events) >= 1))
    assert client.answer is not None and client.answer.status_code == 201
    assert re.match(r"^/openai/v1/realtime/calls/rtc_", client.answer.headers["Location"])
    assert client.events[0]["type"] == "session.created"


def post_offer(standin: OpenAIStandIn, key: str | None, **headers: str) -> requests.Response:
    sent = {
        "Content-Type": "application/sdp",
        **({"Authorization": f"Bearer {key}"} if key else {}),
        **headers,
    }
    return requests.post(standin.webrtc_url, data=OFFER_STUB, headers=sent, timeout=WAIT)


def refusal(response: requests.Response) -> tuple[int, str | None]:
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # a browser may read why
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return response.status_code, error["code"]


def test_keys_are_refused_like_at_the_websocket(standin: OpenAIStandIn) -> None:
    assert refusal(post_offer(standin, None)) == (401, None)
    forged = "ek_" + "0" * 32
    forged_answer = post_offer(standin, forged)
    assert refusal(forged_answer) == (401, "invalid_api_key")
    assert forged not in forged_answer.text
    assert refusal(post_offer(standin, standin.api_key)) == (401, "invalid_api_key")

    expired = mint(standin)
    standin.expire(expired)
    assert refusal(post_offer(standin, expired)) == (401, "ephemeral_key_expired")

    used = mint(standin)
    from .realtime_support import open_socket, receive

    with open_socket(standin, used) as ws:  # the key's one session, over the WebSocket
        receive(ws)
    assert refusal(post_offer(standin, used)) == (403, "ephemeral_key_used")

    # A body that is not an SDP offer is refused before the key is spent.
    fresh = mint(standin)
    assert refusal(post_offer(standin, fresh, **{"Content-Type": "application/json"})) == (
        400,
        "invalid_content_type",
    )
    assert refusal(
        requests.post(
            standin.webrtc_url,
            data="hello",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {fresh}"},
            timeout=WAIT,
        )
    ) == (400, "invalid_offer")
    assert standin.claim_key(fresh)[0] == "ok"
    assert [c.transport for c in standin.realtime] == ["websocket"]  # no call was set up
    assert {r.shape for r in standin.requests} == {"openai", "realtime", "webrtc"}


def test_cors_preflight_lets_a_page_on_another_origin_post_its_offer(standin: OpenAIStandIn) -> None:
    key = mint(standin)
    standin.enqueue(Error(status=503, code="server_overloaded", message="busy"))
    preflight = requests.options(
        standin.webrtc_url,
        headers={
            "Origin": "http://127.0.0.1:8000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=WAIT,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) >= {"POST"}
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed >= {"authorization", "content-type"}
    assert "Location" in preflight.headers["Access-Control-Expose-Headers"]
    # The preflight took no behaviour: the queued one is for the offer itself.
    assert refusal(post_offer(standin, key)) == (503, "server_overloaded")
    # Chrome's Private Network Access preflight (a public page calling loopback) is let in too.
    private = requests.options(
        standin.webrtc_url,
        headers={"Origin": "https://example.org", "Access-Control-Request-Private-Network": "true"},
        timeout=WAIT,
    )
    assert private.headers["Access-Control-Allow-Private-Network"] == "true"


def test_stop_ends_every_call(spoken: dict[str, Path]) -> None:
    standin = OpenAIStandIn().start()
    ended: list[str] = []

    async def call_then_stop() -> None:
        with loopback_ice():
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            channel = pc.createDataChannel("oai-events")
            opened = asyncio.Event()
            channel.on("message", lambda message: opened.set())
            channel.on("close", lambda: ended.append("channel"))
            pc.addTrack(MediaPlayer(str(spoken["door"])).audio)
            await pc.setLocalDescription(await pc.createOffer())
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(
            None,
            lambda: requests.post(
                standin.webrtc_url,
                data=pc.localDescription.sdp,
                headers={"Authorization": f"Bearer {mint(standin)}", "Content-Type": "application/sdp"},
                timeout=WAIT,
            ),
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.text, type="answer"))
        await asyncio.wait_for(opened.wait(), WAIT)  # session.created arrived
        await loop.run_in_executor(None, standin.stop)
        for _ in range(int(WAIT / 0.05)):
            if ended:
                break
            await asyncio.sleep(0.05)
        await pc.close()

    try:
        asyncio.run(call_then_stop())
    finally:
        standin.stop()
    (call,) = standin.realtime
    assert call.closed.is_set()
    assert ended == ["channel"], "the client's data channel stayed open after stop()"


def test_without_the_webrtc_extra_the_standin_serves_and_says_why() -> None:
    from .test_realtime_standin import _cli_without

    proc = _cli_without("aiortc")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
        base = next(line for line in lines if "listening on" in line).split()[-1]
        (webrtc_line,) = [line for line in lines if line.startswith("  WebRTC calls")]
        answer = requests.post(
            base + "/v1/realtime/calls",
            data=OFFER_STUB,
            headers={"Content-Type": "application/sdp", "Authorization": "Bearer ek_x"},
            timeout=WAIT,
        )
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert webrtc_line.startswith("  WebRTC calls are off:") and "standin-webrtc" in webrtc_line, lines
    assert refusal(answer) == (501, "webrtc_unavailable")
    assert 'pip install "django-rt-sessions[standin-webrtc]"' in answer.json()["error"]["message"]
    assert proc.returncode == 0, stderr
