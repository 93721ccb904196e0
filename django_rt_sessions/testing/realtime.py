"""The stand-in's realtime WebSocket: OpenAI's GA transcription events, transcribed by an offline engine.

``GET {BASE_URL}/realtime?intent=transcription``, upgraded to a WebSocket. The key is an ``ek_…`` key the
stand-in issued (``Authorization: Bearer ek_…``, or the browser subprotocol ``openai-insecure-api-key.ek_…``
beside ``realtime``) or the stand-in's API key. An unknown, forged or expired ephemeral key is refused at the
upgrade with 401, an already used one with 403, each with OpenAI's error body. An ephemeral key's session is
the configuration the key was minted with; an API-key session starts unconfigured, so its audio waits for a
``session.update`` that sets the transcription model.

Client events: ``session.update``, ``input_audio_buffer.append`` (base64 PCM16, 24 kHz, mono),
``input_audio_buffer.commit``, ``input_audio_buffer.clear``. Server events: ``session.created``,
``session.updated``, ``input_audio_buffer.speech_started`` / ``speech_stopped`` / ``committed`` /
``cleared``, ``conversation.item.input_audio_transcription.delta`` (while a turn is spoken) and
``.completed`` (after each turn), and ``error`` shaped like OpenAI's (names and fields as in openai-python's
``types/realtime``). With ``server_vad`` the turns come from an energy VAD (``speech.EnergyVAD``), which also
stands in for ``semantic_vad`` (a turn ends after a silence that is longer the lower the eagerness); with
``turn_detection: null`` a turn opens with its first audio, streams deltas while the audio arrives, and ends
when the client commits it (``clear`` drops it). Like OpenAI, a session with VAD on a model that takes none
(``validation.NO_TURN_DETECTION_MODELS``) is refused, and such a session that says nothing about turn
detection has none.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable
from contextlib import ExitStack
from typing import Any

from aiohttp import WSMsgType, web

from . import validation, wire
from .behaviours import Behaviour, DropSocket, SlowEvents
from .speech import INPUT_RATE, EnergyVAD, Recognizer, SpeechEngine
from .state import RealtimeConnection, StandInState
from .wire import abort_connection, error_response

__all__ = [
    "EventSender",
    "RealtimeConnection",
    "RealtimeSession",
    "abort_connection",
    "claim_ephemeral_key",
    "error_event",
    "ga_session_from_beta",
    "new_session",
    "recorded_event",
    "serve_realtime",
]

SUBPROTOCOL = "realtime"
KEY_SUBPROTOCOL = "openai-insecure-api-key."
CLIENT_EVENTS = (
    "session.update",
    "transcription_session.update",  # the beta shape's (an API-key connection of the relay, docs/relay.md)
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)
MIN_COMMIT_MS = 100  # like the live API: a shorter buffer cannot be committed
PARTIAL_EVERY_MS = 200  # how often a spoken turn's partial text is read (each read costs a backtrace)
MAX_MESSAGE = 16 * 1024 * 1024  # an append may carry up to 15 MiB of audio
BYTES_PER_MS = INPUT_RATE * 2 // 1000
# semantic_vad waits for the speaker to finish, longer the lower its eagerness; the energy VAD has no
# semantics, so it stands in with a silence this long (and the server_vad defaults otherwise).
SEMANTIC_SILENCE_MS = {"low": 1500, "medium": 800, "auto": 800, "high": 500}

_BETA_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": INPUT_RATE},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}


def ga_session_from_beta(beta: dict[str, Any]) -> dict[str, Any]:
    """The GA transcription session equivalent to a beta transcription_sessions answer."""
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": beta.get("id"),
        "expires_at": beta.get("expires_at"),
        "include": beta.get("include"),
        "audio": {
            "input": {
                "format": dict(_BETA_FORMATS.get(beta.get("input_audio_format") or "pcm16", {})),
                "transcription": beta.get("input_audio_transcription"),
                "noise_reduction": beta.get("input_audio_noise_reduction"),
                "turn_detection": beta.get("turn_detection"),
            }
        },
    }


def _unconfigured_session() -> dict[str, Any]:
    """An API-key connection's session: no transcription model until a session.update, server VAD unless
    that update picks a model that takes none."""
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": wire.session_id(),
        "expires_at": None,
        "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": INPUT_RATE},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(validation.DEFAULT_TURN_DETECTION),
            }
        },
    }


# --------------------------------------------------------------------------------------- the protocol


def error_event(
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An ``error`` server event; ``event_id`` inside ``error`` is the client event that caused it."""
    return {
        "type": "error",
        "event_id": wire.event_id(),
        "error": {"type": type, "code": code, "message": message, "param": param, "event_id": event_id},
    }


class RealtimeSession:
    """One realtime session's state: client events in, server events out. No I/O, so tests can drive it.

    ``handle`` may block (speech recognition): the server runs it in a worker thread, one call at a time.
    """

    def __init__(
        self,
        session: dict[str, Any] | None,
        *,
        engine: SpeechEngine | None,
        speech_problem: str | None = None,
    ) -> None:
        self.session = session if session is not None else _unconfigured_session()
        # The API-key session's server VAD was not asked for: a model that takes no VAD turns it off.
        self._turn_detection_defaulted = session is None
        self._engine = engine
        self._speech_problem = speech_problem
        self._resources = ExitStack()
        self._recognizer: Recognizer | None = None
        self._vad: EnergyVAD | None = None
        self._uncommitted_ms = 0
        self._item: str | None = None  # the open turn: being spoken (server VAD) or not yet committed
        self._emitted = ""  # the part of the turn's partial text already sent as deltas
        self._turn_ms = 0
        self._turn_bytes = 0  # the open turn's audio without VAD (its ms, rounded down, in _turn_ms)
        self._partial_at_ms = 0
        self._previous_item: str | None = None
        self._warned_unconfigured = False
        self._warned_format = False
        self._configure()

    # -------------------------------------------------------------------------------------- config

    @property
    def has_engine(self) -> bool:
        """Whether audio is transcribed (else the session says why in its opening ``error`` event)."""
        return self._engine is not None

    @property
    def _input(self) -> dict[str, Any]:
        return self.session["audio"]["input"]

    def _configure(self) -> None:
        turn = self._input.get("turn_detection")
        if self._item is not None and self._recognizer is not None:
            self._recognizer.cancel()  # a new configuration starts a new turn
        self._item, self._emitted, self._turn_ms, self._turn_bytes, self._uncommitted_ms = None, "", 0, 0, 0
        self._vad = None
        if self._engine is not None and isinstance(turn, dict) and turn.get("type") == "server_vad":
            self._vad = EnergyVAD(
                threshold=turn.get("threshold", 0.5),
                prefix_padding_ms=turn.get("prefix_padding_ms", 300),
                silence_duration_ms=turn.get("silence_duration_ms", 500),
            )
        elif self._engine is not None and isinstance(turn, dict) and turn.get("type") == "semantic_vad":
            self._vad = EnergyVAD(
                silence_duration_ms=SEMANTIC_SILENCE_MS.get(turn.get("eagerness") or "auto", 800)
            )
        self._warned_unconfigured = False

    def _model_configured(self) -> bool:
        transcription = self._input.get("transcription")
        return isinstance(transcription, dict) and bool(transcription.get("model"))

    def opening_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [
            {"type": "session.created", "event_id": wire.event_id(), "session": self.session}
        ]
        if self._speech_problem is not None:
            events.append(self._speech_error())
        return events

    def _speech_error(self, event_id: str | None = None) -> dict[str, Any]:
        return error_event(
            self._speech_problem or "No speech engine.",
            type="server_error",
            code="speech_engine_unavailable",
            event_id=event_id,
        )

    def prepare(self) -> None:
        """Borrow a recognizer from the engine now (may take a moment the first time)."""
        if self._engine is not None and self._recognizer is None:
            self._recognizer = self._resources.enter_context(self._engine.recognizer())

    def close(self) -> None:
        self._resources.close()
        self._recognizer = None

    # ------------------------------------------------------------------------------------- events

    def handle(self, raw: str) -> list[dict[str, Any]]:
        """One client message (a JSON text frame) → the server events it causes."""
        try:
            event = json.loads(raw)
        except ValueError:
            return [
                error_event(
                    "The event is not valid JSON. Send each client event as one JSON object in a text frame.",
                    code="invalid_json",
                )
            ]
        if not isinstance(event, dict):
            return [error_event("A client event must be a JSON object.", code="invalid_value")]
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        kind = event.get("type")
        if kind is None:
            return [
                error_event(
                    "Missing required parameter: 'type'.",
                    code="missing_required_parameter",
                    param="type",
                    event_id=event_id,
                )
            ]
        if kind not in CLIENT_EVENTS:
            supported = ", ".join(f"'{name}'" for name in CLIENT_EVENTS)
            return [
                error_event(
                    f"Invalid value: {json.dumps(kind)}. Supported values in a transcription session are: "
                    f"{supported}.",
                    code="invalid_value",
                    param="type",
                    event_id=event_id,
                )
            ]
        if kind == "session.update":
            return self._update(event, event_id)
        if kind == "transcription_session.update":
            return self._beta_update(event, event_id)
        if kind == "input_audio_buffer.append":
            return self._append(event, event_id)
        if kind == "input_audio_buffer.commit":
            return self._commit(event_id)
        return self._clear()

    def _update(self, event: dict[str, Any], event_id: str | None) -> list[dict[str, Any]]:
        update = event.get("session")
        if isinstance(update, dict) and update.get("type") not in (None, "transcription"):
            return [
                error_event(
                    f"Invalid value: {json.dumps(update.get('type'))}. This is a transcription session: "
                    "session.type must be 'transcription'.",
                    code="invalid_value",
                    param="session.type",
                    event_id=event_id,
                )
            ]
        if isinstance(update, dict) and "type" not in update:
            update = {**update, "type": "transcription"}
        problem = validation.validate_request("openai", {"session": update})
        assert problem is not None or isinstance(update, dict)
        changes = ((update.get("audio") or {}).get("input") or {}) if isinstance(update, dict) else {}
        merged = {**self._input, **changes}
        if "turn_detection" not in changes and self._turn_detection_defaulted:
            merged["turn_detection"] = validation.default_turn_detection(_model(merged))
        if problem is None:
            # The update with the session it changes: a model that takes no VAD on a session with VAD, say.
            problem = validation.turn_detection_problem(
                _model(merged), merged.get("turn_detection"), "session.audio.input.turn_detection"
            )
        if problem is not None:
            return [error_event(problem.message, code=problem.code, param=problem.param, event_id=event_id)]
        assert isinstance(update, dict)
        if "include" in update:
            self.session["include"] = update["include"]
        if "turn_detection" in changes:
            self._turn_detection_defaulted = False
        self._input.update(merged)
        self._configure()
        return [{"type": "session.updated", "event_id": wire.event_id(), "session": self.session}]

    def _beta_update(self, event: dict[str, Any], event_id: str | None) -> list[dict[str, Any]]:
        """The beta shape's update (its session in the beta vocabulary), applied as the GA one would be and
        answered with the beta shape's ``transcription_session.updated``."""
        beta = event.get("session")
        if not isinstance(beta, dict):
            return [error_event("Missing required parameter: 'session'.", code="missing_required_parameter")]
        audio_input: dict[str, Any] = {}
        if "input_audio_format" in beta:
            audio_input["format"] = dict(_BETA_FORMATS.get(beta["input_audio_format"], {}))
        for beta_key, ga_key in (
            ("input_audio_transcription", "transcription"),
            ("input_audio_noise_reduction", "noise_reduction"),
            ("turn_detection", "turn_detection"),
        ):
            if beta_key in beta:
                audio_input[ga_key] = beta[beta_key]
        update: dict[str, Any] = {"type": "transcription", "audio": {"input": audio_input}}
        if "include" in beta:
            update["include"] = beta["include"]
        events = self._update({"session": update}, event_id)
        for answer in events:
            if answer["type"] == "session.updated":
                answer["type"] = "transcription_session.updated"
        return events

    def _append(self, event: dict[str, Any], event_id: str | None) -> list[dict[str, Any]]:
        audio = event.get("audio")
        if not isinstance(audio, str):
            return [
                error_event(
                    "Missing required parameter: 'audio'."
                    if audio is None
                    else "Invalid type for 'audio': expected a base64-encoded string.",
                    code="missing_required_parameter" if audio is None else "invalid_type",
                    param="audio",
                    event_id=event_id,
                )
            ]
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            return [
                error_event(
                    "Invalid 'audio'. Expected base64-encoded audio bytes.",
                    code="invalid_value",
                    param="audio",
                    event_id=event_id,
                )
            ]
        if len(pcm) % 2:
            return [
                error_event(
                    "Invalid 'audio': PCM16 audio has an even number of bytes (2 per sample).",
                    code="invalid_value",
                    param="audio",
                    event_id=event_id,
                )
            ]
        if self._engine is None:
            return []  # said once at connect; the audio goes nowhere
        if not self._model_configured():
            if self._warned_unconfigured:
                return []
            self._warned_unconfigured = True
            return [
                error_event(
                    "Input audio transcription is not configured for this session: send a session.update "
                    "that sets session.audio.input.transcription.model before the audio.",
                    code="missing_required_parameter",
                    param="session.audio.input.transcription",
                    event_id=event_id,
                )
            ]
        audio_format = self._input.get("format") or {}
        if audio_format.get("type", "audio/pcm") != "audio/pcm":
            if self._warned_format:
                return []
            self._warned_format = True
            return [
                error_event(
                    "The stand-in's speech engine takes audio/pcm (24 kHz) only, "
                    f"not {audio_format['type']}.",
                    type="server_error",
                    code="unsupported_audio_format",
                    param="session.audio.input.format",
                    event_id=event_id,
                )
            ]
        return self.feed_audio(pcm)

    def feed_audio(self, pcm: bytes) -> list[dict[str, Any]]:
        """Audio of the session's input (PCM16, 24 kHz, mono) → the server events it causes."""
        self.prepare()
        if self._vad is None:
            return self._open_turn_feed(pcm)
        return self._vad_feed(pcm)

    def _open_turn_feed(self, pcm: bytes) -> list[dict[str, Any]]:
        """Without turn detection: the audio joins the open turn (opened by its first audio), which the
        client commits; its words stream as deltas meanwhile, as in a spoken turn with VAD."""
        assert self._recognizer is not None
        if self._item is None:
            self._item, self._emitted, self._turn_bytes, self._partial_at_ms = wire.item_id(), "", 0, 0
        self._turn_bytes += len(pcm)
        self._turn_ms = self._uncommitted_ms = self._turn_bytes // BYTES_PER_MS
        self._recognizer.accept(pcm)
        if self._turn_ms - self._partial_at_ms < PARTIAL_EVERY_MS:
            return []
        self._partial_at_ms = self._turn_ms
        return self._deltas(self._item, self._recognizer.partial())

    def _vad_feed(self, pcm: bytes) -> list[dict[str, Any]]:
        assert self._vad is not None and self._recognizer is not None
        events: list[dict[str, Any]] = []
        for vad_event, audio in self._vad.feed(pcm):
            if vad_event is not None and vad_event.kind == "start":
                self._item, self._emitted, self._turn_ms, self._partial_at_ms = wire.item_id(), "", 0, 0
                events.append(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "event_id": wire.event_id(),
                        "audio_start_ms": vad_event.at_ms,
                        "item_id": self._item,
                    }
                )
                audio = vad_event.audio
            elif vad_event is not None and vad_event.kind == "stop" and self._item is not None:
                item = self._item
                events.append(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "event_id": wire.event_id(),
                        "audio_end_ms": vad_event.at_ms,
                        "item_id": item,
                    }
                )
                events.extend(self._finish_turn(item, self._recognizer.finish()))
                continue
            if audio and self._item is not None:
                self._turn_ms += len(audio) // BYTES_PER_MS
                self._recognizer.accept(audio)
                if self._turn_ms - self._partial_at_ms >= PARTIAL_EVERY_MS:
                    self._partial_at_ms = self._turn_ms
                    events.extend(self._deltas(self._item, self._recognizer.partial()))
        self._uncommitted_ms = 0 if self._item is None else self._turn_ms
        return events

    def _deltas(self, item: str, partial: str) -> list[dict[str, Any]]:
        # Deltas only ever add whole words to what was sent: a revised partial waits for the completed
        # transcript, which replaces the deltas.
        if self._emitted and not partial.startswith(self._emitted + " "):
            return []
        if not partial:
            return []
        delta, self._emitted = partial[len(self._emitted) :], partial
        return [
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "event_id": wire.event_id(),
                "item_id": item,
                "content_index": 0,
                "delta": delta,
            }
        ]

    def _finish_turn(self, item: str, transcript: str) -> list[dict[str, Any]]:
        previous, self._previous_item = self._previous_item, item
        events: list[dict[str, Any]] = [
            {
                "type": "input_audio_buffer.committed",
                "event_id": wire.event_id(),
                "item_id": item,
                "previous_item_id": previous,
            }
        ]
        events.extend(self._deltas(item, transcript))
        events.append(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": wire.event_id(),
                "item_id": item,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": round(self._turn_ms / 1000, 3)},
            }
        )
        self._item, self._emitted, self._turn_ms, self._turn_bytes = None, "", 0, 0
        return events

    def _commit(self, event_id: str | None) -> list[dict[str, Any]]:
        if self._engine is None:
            return [self._speech_error(event_id)]
        if self._item is not None and self._vad is not None and self._recognizer is not None:
            # A commit during a spoken turn ends the turn now.
            item = self._item
            self._vad.reset()
            self._uncommitted_ms = 0
            return self._finish_turn(item, self._recognizer.finish())
        if self._uncommitted_ms < MIN_COMMIT_MS or self._item is None or self._recognizer is None:
            return [
                error_event(
                    "Error committing input audio buffer: buffer too small. Expected at least "
                    f"{MIN_COMMIT_MS}ms of audio, but buffer only has {self._uncommitted_ms:.2f}ms of audio.",
                    code="input_audio_buffer_commit_empty",
                    event_id=event_id,
                )
            ]
        self._uncommitted_ms = 0
        return self._finish_turn(self._item, self._recognizer.finish())

    def _clear(self) -> list[dict[str, Any]]:
        if self._recognizer is not None and self._item is not None:
            self._recognizer.cancel()
        if self._vad is not None:
            self._vad.reset()
        self._item, self._emitted, self._turn_ms, self._uncommitted_ms = None, "", 0, 0
        self._turn_bytes = 0
        return [{"type": "input_audio_buffer.cleared", "event_id": wire.event_id()}]


# ------------------------------------------------------------------------------------------ the socket


def _model(audio_input: dict[str, Any]) -> Any:
    transcription = audio_input.get("transcription")
    return transcription.get("model") if isinstance(transcription, dict) else None


def new_session(state: StandInState, session: dict[str, Any] | None) -> RealtimeSession:
    """A realtime session on the stand-in's speech engine (``session`` None: an API-key connection's)."""
    return RealtimeSession(session, engine=state.speech_engine, speech_problem=state.speech_problem)


def claim_ephemeral_key(state: StandInState, key: str) -> dict[str, Any] | web.Response:
    """The session an ephemeral key was minted with (the key is used from then on), or the refusal to answer:
    401 for an unknown, forged or expired key, 403 for one that has already opened a session."""
    verdict, session = state.keys.claim(key)
    if verdict == "ok" and session is not None:
        return session
    if verdict == "expired":
        return error_response(
            401, "The ephemeral key has expired: ask your server for a new session.", "ephemeral_key_expired"
        )
    if verdict == "used":
        return error_response(
            403,
            "This ephemeral key has already opened a session: ask your server for a new one.",
            "ephemeral_key_used",
        )
    return error_response(401, "Incorrect API key provided.", "invalid_api_key")


class EventSender:
    """Sends one connection's server events and records them, applying the connection's socket behaviour:
    ``SlowEvents`` holds each event, ``DropSocket`` cuts the connection (``drop``) after that many."""

    def __init__(
        self,
        record: RealtimeConnection,
        behaviour: Behaviour | None,
        release: asyncio.Event,
        *,
        transmit: Callable[[str], Awaitable[None]],
        drop: Callable[[], None],
        is_closed: Callable[[], bool],
    ) -> None:
        self._record = record
        self._behaviour = behaviour
        self._release = release
        self._transmit = transmit
        self._drop = drop
        self._is_closed = is_closed
        self.dropped = False

    def drop_now(self) -> None:
        self.dropped = True
        self._drop()

    def drop_before_any_event(self) -> None:
        """``DropSocket(after_events=0)``: cut the connection before it says anything."""
        if isinstance(self._behaviour, DropSocket) and self._behaviour.after_events <= 0:
            self.drop_now()

    async def send(self, event: dict[str, Any]) -> None:
        if isinstance(self._behaviour, SlowEvents):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._release.wait(), max(0.0, self._behaviour.seconds))
        if self.dropped or self._is_closed():
            return
        await self._transmit(json.dumps(event))
        self._record.sent.append(event)
        if isinstance(self._behaviour, DropSocket) and len(self._record.sent) >= self._behaviour.after_events:
            self.drop_now()

    async def send_all(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            if self.dropped:
                return
            await self.send(event)


# ------------------------------------------------------------------------------------- the WebSocket


def _offered_subprotocols(request: web.Request) -> list[str]:
    return [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]


def _upgrade_refusal(
    request: web.Request, offered: list[str], ws: web.WebSocketResponse
) -> web.Response | None:
    """Why this request cannot become a realtime WebSocket (an HTTP answer), or None."""
    if request.method != "GET":
        response = error_response(
            405, f"Method {request.method} is not allowed on {request.path}.", "method_not_allowed"
        )
        response.headers["Allow"] = "GET"
        return response
    not_websocket = error_response(
        426,
        "The realtime endpoint speaks WebSocket: open it with a WebSocket client "
        "(GET with Upgrade: websocket).",
        "websocket_required",
    )
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return not_websocket
    # Checked before aiohttp sees them: it logs offered subprotocols it cannot match, the key's included.
    if offered and SUBPROTOCOL not in offered:
        return error_response(
            400, "Offer the 'realtime' subprotocol beside the key's subprotocol.", "invalid_subprotocol"
        )
    if not ws.can_prepare(request).ok:
        return not_websocket
    return None


def _presented_key(request: web.Request, offered: list[str]) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for protocol in offered:
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
    return None


def _admit(
    state: StandInState, request: web.Request, offered: list[str]
) -> tuple[str, dict[str, Any] | None] | web.Response:
    """(the credential, the session: None for the API key's) for the key the upgrade presents, or the
    refusal."""
    key = _presented_key(request, offered)
    if not key:
        return error_response(
            401,
            "You didn't provide an API key. Give it as 'Authorization: Bearer ek_…' or, in a browser, as the "
            "subprotocol 'openai-insecure-api-key.ek_…' beside 'realtime'.",
            None,
        )
    if state.is_api_key(key):
        if request.query.get("intent") != "transcription":
            return error_response(
                400,
                "This stand-in serves transcription sessions only: connect with ?intent=transcription.",
                "invalid_value",
                param="intent",
            )
        return "api_key", None
    claimed = claim_ephemeral_key(state, key)
    if isinstance(claimed, web.Response):
        return claimed
    return "ephemeral_key", claimed


async def serve_realtime(state: StandInState, request: web.Request) -> web.StreamResponse:
    """The upgrade's checks, then the session's events until either side closes."""
    offered = _offered_subprotocols(request)
    ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=MAX_MESSAGE, autoping=True)
    refusal = _upgrade_refusal(request, offered, ws)
    if refusal is not None:
        return refusal
    admitted = _admit(state, request, offered)
    if isinstance(admitted, web.Response):
        return admitted
    credential, session = admitted
    behaviour, release = state.behaviours.take(socket=True)
    realtime = new_session(state, session)
    record = RealtimeConnection(
        path=request.path,
        credential=credential,
        subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None,
        session=json.loads(json.dumps(realtime.session)),
    )
    await ws.prepare(request)
    sender = EventSender(
        record,
        behaviour,
        release,
        transmit=ws.send_str,
        drop=lambda: abort_connection(request),
        is_closed=lambda: ws.closed,
    )
    closed = state.connections.opened(record, lambda: ws.close(code=1001, message=b"server stopped"))
    try:
        await _converse(ws, realtime, record, sender)
    finally:
        closed()
        await asyncio.get_running_loop().run_in_executor(None, realtime.close)
        record.close_code = None if sender.dropped else ws.close_code
        record.closed.set()
    return ws


async def _converse(
    ws: web.WebSocketResponse, realtime: RealtimeSession, record: RealtimeConnection, sender: EventSender
) -> None:
    """The session's opening events, then each client message's events, until either side closes."""
    loop = asyncio.get_running_loop()
    try:
        sender.drop_before_any_event()
        await sender.send_all(realtime.opening_events())
        if realtime.has_engine and not sender.dropped:
            await loop.run_in_executor(None, realtime.prepare)
        async for message in ws:
            if sender.dropped:
                break
            if message.type == WSMsgType.TEXT:
                record.received.append(recorded_event(message.data))
                events = await loop.run_in_executor(None, realtime.handle, message.data)
            elif message.type == WSMsgType.BINARY:
                events = [
                    error_event(
                        "Binary frames are not supported: send each client event as JSON in a text frame.",
                        code="invalid_value",
                    )
                ]
            else:
                break
            await sender.send_all(events)
    except ConnectionError:
        sender.dropped = True


def recorded_event(raw: str) -> dict[str, Any]:
    """A client event as recorded for tests: an append's audio replaced by its size (``audio_bytes``)."""
    try:
        event = json.loads(raw)
    except ValueError:
        return {"type": None, "invalid_json": True}
    if not isinstance(event, dict):
        return {"type": None}
    if event.get("type") == "input_audio_buffer.append" and isinstance(event.get("audio"), str):
        audio = event["audio"]
        return {**{k: v for k, v in event.items() if k != "audio"}, "audio_bytes": len(audio) * 3 // 4}
    return event
