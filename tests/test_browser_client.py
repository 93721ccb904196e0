"""The browser client (rt-sessions.js) on its own, in headless Chromium: client turns, overrides, token
authentication and failures, against a site whose API takes DRF tokens (tests/browser_client_settings.py).

The site runs in a subprocess (migrate, one user with a token, the presets below) served by werkzeug with
static files; its upstream is the OpenAI stand-in, run here so tests can read what reached it. Every test
drives the module from one page of that site (the module's own URL, so the page is same-origin with the
API) in one Chromium that never logs in: the API sees only the `Authorization: Token …` header the page
passes in `headers`. The fake microphone plays recorded speech (tests/speech/); where a test must know when
speech ends, the page plays the recordings itself into a MediaStream instead.

Over WebRTC, client turns run against the stand-in's own peer (aiortc) with real speech; commit(), close()
and a call with no network path run against a second RTCPeerConnection in the page that plays OpenAI's part
(the SDP exchange relayed through a small loopback endpoint here), so the test sees every event on the data
channel and answers each commit itself.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from django_rt_sessions.testing import Delay, Error, OpenAIStandIn
from django_rt_sessions.testing.audio import from_wav, silence, to_wav

from .example_env import clean_environ, serving
from .realtime_support import COFFEE, DOOR, OPUS_WORDS, WORDS, has_words, spoken_words

# test_browser skips (or, with CI=true, fails) without Chromium, ChromeDriver or selenium.
from .test_browser import (
    WAIT,
    WEBRTC_ON_LOOPBACK,
    By,
    Front,
    _free_port,
    _QuietHandler,
    quit_chromium,
    start_chromium,
)

pytestmark = [pytest.mark.browser, pytest.mark.no_database]

MODULE_PATH = "/static/django_rt_sessions/rt-sessions.js"
PRESETS = [
    {
        "name": "live",
        "title": "Live (the client ends turns)",
        "default": True,
        "session": {
            "input_audio_format": "pcm16",
            "input_audio_transcription": {"model": "gpt-live-transcribe", "language": "en"},
            "turn_detection": None,
        },
        # Not the defaults (600 ms, 15 s): the client must take them from the 201's connect.client_turns.
        "client_turns": {"silence_duration_ms": 500, "max_turn_ms": 20000},
        "overridable": ["languages", "keywords", "prompt"],
    },
    {
        "name": "team-only",
        "title": "Team only",
        "session": {"input_audio_transcription": {"model": "gpt-live-transcribe"}, "turn_detection": None},
        "groups": ["transcribers"],
    },
]

SERVE = """
import os
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.browser_client_settings"
import django
django.setup()
from django.contrib.auth.models import Group, User
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from werkzeug.serving import WSGIRequestHandler, make_server

call_command("migrate", interactive=False, verbosity=0)
Group.objects.create(name="transcribers")
call_command("rt_sessions_presets", "import", os.environ["RT_CLIENT_PRESETS"], verbosity=0)
user = User.objects.create_user("alice")
print("TOKEN", Token.objects.create(user=user).key, flush=True)

class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

server = make_server("127.0.0.1", 0, StaticFilesHandler(WSGIHandler()), threaded=True, request_handler=Quiet)
print("LISTENING", server.server_port, flush=True)
server.serve_forever()
"""


@dataclass
class Site:
    url: str
    token: str
    standin: OpenAIStandIn


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("browser-client")
    presets = tmp / "presets.json"
    presets.write_text(json.dumps(PRESETS), encoding="utf-8")
    standin = OpenAIStandIn().start()
    env = clean_environ(
        PYTHONUNBUFFERED="1",
        RT_CLIENT_DATABASE=str(tmp / "site.sqlite3"),
        RT_CLIENT_PRESETS=str(presets),
        RT_CLIENT_API_KEY=standin.api_key,
        RT_CLIENT_BASE_URL=standin.base_url,
    )
    try:
        with serving(SERVE, env, what="the token-authenticated site") as (url, output):
            token = next(line.split()[1] for line in output if line.startswith("TOKEN "))
            yield Site(url=url, token=token, standin=standin)
    finally:
        standin.stop()


@pytest.fixture(scope="module")
def page(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The module's URL in a Chromium whose microphone says the two sentences with a pause between them (and
    that may reach the stand-in's WebRTC peer on loopback)."""
    pcm = silence(500) + from_wav(COFFEE) + silence(1200) + from_wav(DOOR) + silence(1500)
    wav = to_wav(pcm, tmp_path_factory.mktemp("microphone") / "speech.wav")
    browser, profile = start_chromium(audio_file=wav, arguments=WEBRTC_ON_LOOPBACK)
    try:
        browser.get(site.url + MODULE_PATH)
        # A click gives the page the user activation a real page's Start button gives it: browsers start an
        # AudioContext only after one.
        browser.find_element(By.TAG_NAME, "body").click()
        browser.set_script_timeout(60)
        yield browser
    finally:
        quit_chromium(browser, profile)


@pytest.fixture(autouse=True)
def _fresh_standin(site: Site) -> Iterator[None]:
    yield
    site.standin.reset()


def run(page: Any, script: str, *args: Any) -> Any:
    """An async script given `rt` (the module) and `args`; what it returns comes back (or its exception)."""
    result = page.execute_async_script(
        """
const done = arguments[arguments.length - 1];
const [moduleUrl, body, args] = arguments;
import(moduleUrl)
  .then((rt) => new Function("rt", "args", "return (async () => {" + body + "})();")(rt, args))
  .then((value) => done({ value }), (error) => done({ thrown: String(error && error.stack || error) }));
""",
        MODULE_PATH,
        script,
        list(args),
    )
    assert "thrown" not in result, result["thrown"]
    return result["value"]


# What the page says in a turn, as 24 kHz PCM16 in base64: half a second of silence (the recording starts
# with speech, and a new stream's first moments may not reach the connection's worklet), then the coffee
# sentence twice. Played raw (no browser audio processing), PocketSphinx's words depend on where the turn's
# audio starts, to the sample: over 300 random starts the sentence said once had none of I, WOULD, LIKE 7
# times; said twice, none in 200 (the door sentence, twice, 16 times in 200).
SAID = {"i", "would", "like"}


def spoken(wav: Path, times: int = 2) -> str:
    pcm = silence(500) + from_wav(wav)
    for _ in range(times - 1):
        pcm += silence(300) + from_wav(wav)
    return base64.b64encode(pcm).decode()


# The page plays PCM16 24 kHz recordings into a MediaStream (`speaker.stream`) when the test says so.
SPEAKER = """
const context = new AudioContext({ sampleRate: 24000 });
const destination = context.createMediaStreamDestination();
const decode = (text) => {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const samples = new Int16Array(bytes.buffer);
  const buffer = context.createBuffer(1, samples.length, 24000);
  buffer.getChannelData(0).set(Float32Array.from(samples, (s) => s / 32768));
  return buffer;
};
const speaker = {
  stream: destination.stream,
  say: (text) => new Promise((resolve) => {
    const source = context.createBufferSource();
    source.buffer = decode(text);
    source.connect(destination);
    source.onended = resolve;
    source.start();
  }),
};
await context.resume();
const until = async (condition, what) => {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!condition()) throw new Error("timed out waiting for " + what);
};
"""


# ------------------------------------------------------------------------------------------------- tests


def test_the_turn_detector_commits_after_silence_and_at_max_turn_and_clears_idle_audio(page: Any) -> None:
    """The detector's decisions on level sequences (dBFS per 10 ms block), without audio."""
    result = run(
        page,
        """
const feed = (detector, parts) => {
  const actions = [];
  let at = 0;
  for (const [db, ms] of parts) {
    for (let i = 0; i < ms / 10; i++) {
      at += 10;
      const action = detector.block(db);
      if (action) actions.push(at + " " + action);
    }
  }
  return actions;
};
const make = (extra) => new rt.TurnDetector({ silenceMs: 600, maxTurnMs: 15000, ...extra });
return {
  // Two sentences with a pause: one commit each, 600 ms after each.
  twoSentences: feed(make(), [[-100, 1000], [-20, 2000], [-100, 1500], [-25, 1300], [-100, 2000]]),
  // Words with short gaps (digital silence inside a word, as in recorded speech) stay one turn.
  gaps: feed(make(), [[-20, 300], [-100, 50], [-30, 300], [-100, 400], [-20, 300], [-100, 700]]),
  // A long monologue is cut at max_turn_ms, and the rest is a turn of its own.
  monologue: feed(make(), [[-100, 500], [-20, 16000], [-100, 700]]),
  // Clicks (runs under 100 ms) are not speech: nothing is committed, and idle audio is cleared after 3 s.
  clicks: feed(make(), [[-100, 500], [-10, 50], [-100, 500], [-10, 80], [-100, 2500]]),
  // A steady hum is the noise floor, not speech; speech 10 dB above it is.
  hum: feed(make(), [[-40, 2000], [-20, 1000], [-40, 1000]]),
  // Quieter than the threshold is silence; a lower threshold hears it.
  quiet: feed(make(), [[-100, 500], [-55, 1000], [-100, 2600]]),
  quietTuned: feed(make({ thresholdDb: -60 }), [[-100, 500], [-55, 1000], [-100, 2600]]),
};
""",
    )
    assert result == {
        "twoSentences": ["3600 silence", "6400 silence"],
        "gaps": ["1950 silence"],
        "monologue": ["15500 max_turn", "17100 silence"],
        "clicks": ["3000 clear"],
        "hum": ["3600 silence"],
        "quiet": ["3000 clear"],
        "quietTuned": ["2100 silence"],
    }


def test_client_turns_over_websocket_with_a_token_and_overrides(site: Site, page: Any) -> None:
    """The session has no turn detection: the page's own commits split the two sentences into two turns."""
    started = run(
        page,
        """
window.live = { completed: [], errors: [], states: [] };
const handle = await rt.startTranscription(
  { preset: "live", languages: ["en"], keywords: ["coffee", "door"] },
  {
    onCompleted: ({ transcript }) => window.live.completed.push(transcript),
    onError: (error) => window.live.errors.push(error.code + ": " + error.message),
    onStateChange: (state) => window.live.states.push(state),
  },
  { headers: { Authorization: "Token " + args[0] }, transport: "websocket" },
);
window.live.handle = handle;
return { started: handle !== null, clientTurns: handle && handle.connection.clientTurns,
         errors: window.live.errors, cookies: document.cookie };
""",
        site.token,
    )
    assert started == {
        "started": True,
        "clientTurns": {"silence_duration_ms": 500, "max_turn_ms": 20000},  # the preset's
        "errors": [],
        "cookies": "",  # never logged in: the token alone authenticated the request
    }

    def heard_both() -> bool:
        lines = page.execute_script("return window.live.completed")
        return any(has_words(line, WORDS[COFFEE]) for line in lines) and any(
            has_words(line, WORDS[DOOR]) for line in lines
        )

    deadline = time.monotonic() + 40  # the recording lasts ~7 s and starts anywhere in its loop
    while not heard_both() and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = page.execute_script("return window.live.completed")
    connection = site.standin.realtime[-1]
    assert heard_both(), (lines, connection.sent_types())
    # Two turns, not one: no line holds both sentences.
    assert not any(has_words(line, WORDS[COFFEE]) and has_words(line, WORDS[DOOR]) for line in lines), lines

    closed = run(page, "await live.handle.close(); return { errors: live.errors, states: live.states };")
    assert closed["errors"] == []
    assert closed["states"][-1] == "closed"
    assert connection.wait_closed(WAIT) and connection.close_code == 1000

    # The stand-in's side: no turn detection, so every turn came from the client's commits.
    assert connection.session["audio"]["input"]["turn_detection"] is None
    commits = [event for event in connection.received if event["type"] == "input_audio_buffer.commit"]
    assert len(commits) >= 2
    assert all(event["event_id"].startswith("evt_rts_commit_") for event in commits)
    assert {event["type"] for event in connection.received} <= {
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
    }
    assert "error" not in connection.sent_types()  # no empty or too-short commit
    # Every override reached OpenAI's request as given (none is copied by name in the client).
    minted = next(request for request in site.standin.requests if request.shape == "openai")
    transcription = minted.json["session"]["audio"]["input"]["transcription"]
    assert transcription["languages"] == ["en"] and "language" not in transcription
    assert transcription["keywords"] == ["coffee", "door"]


def test_client_turns_over_webrtc_with_the_standins_peer(site: Site, page: Any) -> None:
    """The same over WebRTC: the stand-in's aiortc peer transcribes the Opus track, and the turns end where a
    worklet measuring the microphone heard the pause."""
    started = run(
        page,
        """
window.rtc = { completed: [], errors: [] };
window.rtc.handle = await rt.startTranscription({ preset: "live" }, {
  onCompleted: ({ transcript }) => window.rtc.completed.push(transcript),
  onError: (error) => window.rtc.errors.push(error.code + ": " + error.message),
}, { headers: { Authorization: "Token " + args[0] }, transport: "webrtc" });
return { transport: window.rtc.handle && window.rtc.handle.connection.transport, errors: window.rtc.errors };
""",
        site.token,
    )
    assert started == {"transport": "webrtc", "errors": []}
    call = site.standin.realtime[-1]
    assert call.transport == "webrtc"

    def heard_both() -> bool:
        lines = page.execute_script("return window.rtc.completed")
        return any(has_words(line, OPUS_WORDS[COFFEE]) for line in lines) and any(
            has_words(line, OPUS_WORDS[DOOR]) for line in lines
        )

    deadline = time.monotonic() + 40  # as over WebSocket
    while not heard_both() and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = page.execute_script("return window.rtc.completed")
    assert heard_both(), (lines, call.sent_types())
    assert not any(
        has_words(line, OPUS_WORDS[COFFEE]) and has_words(line, OPUS_WORDS[DOOR]) for line in lines
    ), lines
    errors = run(page, "await rtc.handle.close(); return rtc.errors;")
    assert errors == []
    assert call.wait_closed(WAIT)

    assert call.session["audio"]["input"]["turn_detection"] is None
    commits = [event for event in call.received if event["type"] == "input_audio_buffer.commit"]
    assert len(commits) >= 2 and all(event["event_id"].startswith("evt_rts_commit_") for event in commits)
    assert {event["type"] for event in call.received} <= {
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
    }
    assert "error" not in call.sent_types()


def test_commit_and_close_end_turns_on_demand(site: Site, page: Any) -> None:
    """With a silence longer than the test, only commit() and close() end turns."""
    result = run(
        page,
        SPEAKER
        + """
const [token, sentence] = args;
const session = await rt.createSession({ preset: "live" }, { headers: { Authorization: "Token " + token } });
session.connect.client_turns = { silence_duration_ms: 10000, max_turn_ms: 120000 };
const seen = { completed: [], errors: [] };
const connection = await rt.connectTranscription(session, speaker.stream, {
  onCompleted: ({ transcript }) => seen.completed.push(transcript),
  onError: (error) => seen.errors.push(error.code + ": " + error.message),
}, { transport: "websocket" });
const before = connection.commit();  // nothing said yet
await speaker.say(sentence);
const first = connection.commit();
const again = connection.commit();  // nothing said since
await until(() => seen.completed.length === 1, "the first transcript");
await speaker.say(sentence);
await connection.close();  // commits what was said since and waits for its transcript
return { before, first, again, completed: seen.completed, errors: seen.errors,
         socket: connection.socket.readyState };
""",
        site.token,
        spoken(COFFEE),
    )
    assert (result["before"], result["first"], result["again"]) == (False, True, False)
    assert result["errors"] == []
    # One transcript per turn, each of the sentence said in it (the second was said only once the first
    # transcript had come).
    first, second = result["completed"]
    assert SAID & set(spoken_words(first)), first
    assert SAID & set(spoken_words(second)), second
    assert result["socket"] in (2, 3)  # CLOSING or CLOSED: close() closed it once the transcript was in
    connection = site.standin.realtime[-1]
    assert connection.wait_closed(WAIT) and connection.close_code == 1000
    kinds = [event["type"] for event in connection.received if event["type"] != "input_audio_buffer.append"]
    assert kinds == ["input_audio_buffer.commit", "input_audio_buffer.commit"]
    assert connection.received[-1]["type"] == "input_audio_buffer.commit"  # close() sent no audio after it
    assert "error" not in connection.sent_types()


def test_a_headers_function_or_a_fetch_wrapper_authenticates(site: Site, page: Any) -> None:
    """What a JWT single-page app does: a token read per request, or its own fetch that adds it."""
    result = run(
        page,
        """
const [token] = args;
const calls = [];
const authFetch = (url, init) => {
  calls.push({ url, credentials: init.credentials, headers: Object.keys(init.headers).sort() });
  return fetch(url, { ...init, headers: { ...init.headers, Authorization: "Token " + token } });
};
const viaFetch = await rt.createSession({ preset: "live" }, { fetch: authFetch });
rt.configure({ headers: async () => ({ Authorization: "Token " + token }) });
try {
  return { viaFetch: viaFetch.preset, calls, presets: (await rt.fetchPresets()).map((p) => p.name),
           viaHeaders: (await rt.createSession({})).preset };
} finally {
  rt.configure({ headers: null });
}
""",
        site.token,
    )
    assert result == {
        "viaFetch": "live",
        # No session cookie here, so no CSRF token either: the wrapper's header is the credential.
        "calls": [
            {
                "url": "/rt/transcription-sessions/",
                "credentials": "same-origin",
                "headers": ["Accept", "Content-Type"],
            }
        ],
        "presets": ["live"],  # not team-only: alice is in no group
        "viaHeaders": "live",
    }


FAILURES = """
const [token, closedPort] = args;
const auth = { headers: { Authorization: "Token " + token } };
const attempt = async (overrides, options) => {
  const reported = [];
  const handle = await rt.startTranscription(overrides, { onError: (e) => reported.push(e) }, options);
  return { handle: handle === null ? null : "a handle",
           reported: reported.map((e) => [e.code, e.status, e instanceof rt.RtSessionsError]) };
};
const results = {
  notAuthenticated: await attempt({ preset: "live" }, {}),
  forbidden: await attempt({ preset: "team-only" }, auth),
  notFound: await attempt({ preset: "no-such-preset" }, auth),
  notOverridable: await attempt({ preset: "live", language: "fr" }, auth),
  invalid: await attempt({ preset: "live", keywords: ["<b>"] }, auth),
  unreachable: await attempt({}, { ...auth, baseUrl: `http://127.0.0.1:${closedPort}/rt/` }),
  noSuchMicrophone: await attempt({}, { ...auth, audio: { deviceId: { exact: "no-such-device" } } }),
};
// A browser without AudioWorklet or WebRTC: refused before the microphone and the session.
const saved = [window.AudioWorkletNode, window.RTCPeerConnection];
window.AudioWorkletNode = undefined;
window.RTCPeerConnection = undefined;
try {
  results.oldBrowser = await attempt({}, auth);
} finally {
  [window.AudioWorkletNode, window.RTCPeerConnection] = saved;
}
// Without onError the promise rejects with the same error.
try {
  await rt.startTranscription({ preset: "no-such-preset" }, {}, auth);
  results.rejected = "resolved";
} catch (e) {
  results.rejected = [e.code, e.status];
}
// The transcription service refuses the key at the WebSocket upgrade (the test queued that).
results.socketRefused = await attempt({ preset: "live" }, { ...auth, transport: "websocket" });
return results;
"""


def test_every_failure_reaches_on_error_with_its_code(site: Site, page: Any) -> None:
    requests_before = len(site.standin.requests)
    # For the last attempt: its token request goes through (Delay(0)), its socket is refused.
    site.standin.enqueue(Delay(0), Error(status=401, code="invalid_api_key"))
    results = run(page, FAILURES, site.token, _free_port())
    no_handle = {"handle": None}
    assert results == {
        # 403, not 401: DRF answers 401 only when its first authentication class names a WWW-Authenticate.
        "notAuthenticated": {**no_handle, "reported": [["not_authenticated", 403, True]]},
        "forbidden": {**no_handle, "reported": [["preset_forbidden", 403, True]]},
        "notFound": {**no_handle, "reported": [["preset_not_found", 404, True]]},
        "notOverridable": {**no_handle, "reported": [["override_not_allowed", 400, True]]},
        "invalid": {**no_handle, "reported": [["invalid", 400, True]]},
        "unreachable": {**no_handle, "reported": [["network_error", None, True]]},
        "noSuchMicrophone": {**no_handle, "reported": [["microphone_unavailable", None, True]]},
        "oldBrowser": {**no_handle, "reported": [["unsupported_browser", None, True]]},
        "rejected": ["preset_not_found", 404],
        "socketRefused": {**no_handle, "reported": [["connection_failed", None, True]]},
    }
    # Only the last attempt reached OpenAI's stand-in: its key was minted, then refused at the upgrade.
    assert [request.shape for request in site.standin.requests[requests_before:]] == ["openai", "realtime"]


# ---------------------------------------------------------------------------------------------------- WebRTC


@pytest.fixture(scope="module")
def sdp_relay() -> Iterator[Front]:
    """`POST /v1/realtime/calls` on loopback: the page's offer to the test, the test's answer to the page."""
    relay = Front(mode="relay")
    server = make_server("127.0.0.1", 0, relay.wsgi, threaded=True, request_handler=_QuietHandler)
    relay.url = f"http://127.0.0.1:{server.server_port}/v1/realtime/calls"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        yield relay
    finally:
        server.shutdown()
        server.server_close()


# OpenAI's side of the call, in the same page: answers the offer, records the client's events on the
# "oai-events" channel and answers each commit with a completed transcript, as the Realtime API does.
ANSWER = """
const [offer] = args;
const pc = new RTCPeerConnection();
window.oai = { pc, received: [], tracks: [] };
pc.ontrack = (event) => window.oai.tracks.push(event.track.kind);
pc.ondatachannel = ({ channel }) => {
  window.oai.label = channel.label;
  channel.onmessage = ({ data }) => {
    const event = JSON.parse(data);
    window.oai.received.push(event);
    if (event.type === "input_audio_buffer.commit") {
      const turn = window.oai.received.filter((e) => e.type === event.type).length;
      channel.send(JSON.stringify({ type: "conversation.item.input_audio_transcription.completed",
                                    item_id: "item_" + turn, content_index: 0, transcript: "turn " + turn }));
    }
  };
};
await pc.setRemoteDescription({ type: "offer", sdp: offer });
await pc.setLocalDescription(await pc.createAnswer());
await new Promise((resolve) => {
  if (pc.iceGatheringState === "complete") resolve();
  pc.addEventListener("icegatheringstatechange", () => {
    if (pc.iceGatheringState === "complete") resolve();
  });
  setTimeout(resolve, 3000);
});
return pc.localDescription.sdp;
"""


def test_client_turns_over_webrtc(page: Any, sdp_relay: Front) -> None:
    """Over WebRTC a worklet measures the microphone's level and the commits go on the data channel: commit()
    ends the first turn, close() the second and waits for its transcript."""
    page.execute_script(
        """
const [moduleUrl, relayUrl, sentence, body] = arguments;
window.call = { completed: [], errors: [], states: [] };
import(moduleUrl).then(async (rt) => {
  try {
    await new Function("rt", "args", "return (async () => {" + body + "})();")(rt, [relayUrl, sentence]);
  } catch (error) {
    window.call.thrown = String(error && error.stack || error);
  }
});
""",
        MODULE_PATH,
        sdp_relay.url,
        spoken(COFFEE, times=1),  # no recognition here: the page answers the commits
        SPEAKER
        + """
const [relayUrl, sentence] = args;
const session = {
  client_secret: { value: "ek_webrtc_test", expires_at: Date.now() / 1000 + 60 },
  connect: { api: "ga", webrtc_url: relayUrl, transports: ["webrtc"],
             client_turns: { silence_duration_ms: 10000, max_turn_ms: 120000 } },
};
const connection = await rt.connectTranscription(session, speaker.stream, {
  onCompleted: ({ transcript }) => window.call.completed.push(transcript),
  onError: (error) => window.call.errors.push(error.code + ": " + error.message),
  onStateChange: (state) => window.call.states.push(state),
});
window.call.transport = connection.transport;
await speaker.say(sentence);
window.call.first = connection.commit();
window.call.again = connection.commit();
await until(() => window.call.completed.length === 1, "the first transcript");
await speaker.say(sentence);
await connection.close();
window.call.channel = connection.dataChannel.readyState;
window.call.done = true;
""",
    )
    offer = sdp_relay.offers.get(timeout=WAIT)
    assert offer["authorization"] == "Bearer ek_webrtc_test"
    answer = run(page, ANSWER, offer["body"])
    assert answer.startswith("v=0"), answer
    sdp_relay.answers.put(answer)

    deadline = time.monotonic() + 40
    while not page.execute_script("return !!(window.call.done || window.call.thrown)"):
        assert time.monotonic() < deadline, page.execute_script("return window.call")
        time.sleep(0.2)
    call = page.execute_script("return window.call")
    oai = page.execute_script("return { label: oai.label, tracks: oai.tracks, received: oai.received }")
    assert "thrown" not in call, call["thrown"]
    assert (call["transport"], call["first"], call["again"]) == ("webrtc", True, False)
    assert call["completed"] == ["turn 1", "turn 2"]  # close() waited for the second one
    assert call["errors"] == []
    assert call["states"] == ["connecting", "connected", "closing", "closed"]
    assert call["channel"] in ("closing", "closed")
    assert (oai["label"], oai["tracks"]) == ("oai-events", ["audio"])
    assert [event["type"] for event in oai["received"]] == ["input_audio_buffer.commit"] * 2


def test_a_webrtc_call_without_a_network_path_fails_the_start(page: Any, sdp_relay: Front) -> None:
    """The answer names no candidate the page can reach (ICE finds no path): the start fails, reported to
    onError, instead of a connection that never carries anything."""
    page.execute_script(
        """
const [moduleUrl, relayUrl] = arguments;
window.noPath = {};
import(moduleUrl).then(async (rt) => {
  const reported = [];
  const session = {
    client_secret: { value: "ek_no_path", expires_at: Date.now() / 1000 + 60 },
    connect: { api: "ga", webrtc_url: relayUrl, transports: ["webrtc"] },
  };
  rt.configure({ fetch: async () => new Response(JSON.stringify(session), { status: 201 }) });
  try {
    const handle = await rt.startTranscription({}, { onError: (e) => reported.push([e.code, e.message]) },
                                               { timeoutMs: 3000 });
    window.noPath = { handle, reported };
  } finally {
    rt.configure({ fetch: null });
  }
});
""",
        MODULE_PATH,
        sdp_relay.url,
    )
    offer = sdp_relay.offers.get(timeout=WAIT)
    answer = run(page, ANSWER, offer["body"])
    # Without its candidates (and with an address nobody listens on) the answer leads nowhere.
    lines = [line for line in answer.split("\r\n") if line and not line.startswith("a=candidate")]
    sdp_relay.answers.put("\r\n".join(lines).replace("c=IN IP4 0.0.0.0", "c=IN IP4 192.0.2.1") + "\r\n")
    deadline = time.monotonic() + WAIT
    while not page.execute_script("return 'handle' in window.noPath") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert page.execute_script("return window.noPath") == {
        "handle": None,
        "reported": [
            [
                "connection_failed",
                "The transcription service could not be reached over WebRTC (no network path).",
            ]
        ],
    }
