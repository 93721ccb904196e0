"""What the relay forwards: the rules for each client frame (docs/relay.md#what-is-forwarded).

Client → upstream: `input_audio_buffer.append`, `.commit` and `.clear`, and a session update
(`session.update` in the GA shape, `transcription_session.update` in the beta one) only where every field it
changes is in the preset's `overridable` and the merged session passes the API's own validation. Anything
else is answered with an `error` event and not forwarded; the session goes on.

Nearly every frame is an append (25 a second per session with 40 ms chunks), so an append is recognised
without parsing it (`append_audio_bytes`: about 3 µs per 1.7 KB frame, bench/relay_pieces.py) and its audio
counted from the base64 length. The recognised shape is the whole grammar of one frame, not a prefix test:
exactly the keys `type`, `audio` and optionally `event_id`, once each, so no duplicate `"type"` can ride
along (JSON parsers disagree on which duplicate wins). Everything else is parsed with duplicate keys refused.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..sessions.fields import index, lookup
from ..sessions.validation import PresetValidationError, apply_overrides, override_paths
from ..upstreams import Upstream
from ..upstreams.openai import BETA_FORMATS, GA_INPUT_KEYS, beta_to_ga

APPEND = "input_audio_buffer.append"
COMMIT = "input_audio_buffer.commit"
CLEAR = "input_audio_buffer.clear"
GA_UPDATE = "session.update"
BETA_UPDATE = "transcription_session.update"
MAX_FRAME_BYTES = 1024 * 1024  # a larger client frame is never forwarded
# Bytes of audio per second of each input format: PCM16 at 24 kHz mono, G.711 at 8 kHz.
BYTES_PER_SECOND = {"pcm16": 48_000, "g711_ulaw": 8_000, "g711_alaw": 8_000}

_OPENINGS = (
    '{"type":"input_audio_buffer.append","audio":"',  # JSON.stringify (browsers, openai-node)
    '{"type": "input_audio_buffer.append", "audio": "',  # Python's json.dumps (openai-python)
)
_EVENT_ID_TAIL = re.compile(r'", ?"event_id": ?"[A-Za-z0-9_.:-]{1,64}"\}')
_BASE64 = (string.ascii_letters + string.digits + "+/=").encode()
_EVENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def append_audio_bytes(text: str) -> int | None:
    """Bytes of audio in a plain append frame; None when the frame must take the slow path."""
    if text.startswith(_OPENINGS[0]):
        start = len(_OPENINGS[0])
    elif text.startswith(_OPENINGS[1]):
        start = len(_OPENINGS[1])
    else:
        return None
    end = text.find('"', start)
    if end < 0 or not text.isascii():  # isascii() is O(1): CPython keeps the flag
        return None
    tail_length = len(text) - end
    if not (
        (tail_length == 2 and text[end + 1] == "}")
        or (tail_length > 2 and _EVENT_ID_TAIL.fullmatch(text, end) is not None)
    ):
        return None
    # Deleting the base64 alphabet leaves nothing: one C loop over the bytes.
    if text.encode()[start:end].translate(None, _BASE64):
        return None
    return _decoded_length(end - start, text[end - 2 : end])


def _decoded_length(characters: int, last_two: str) -> int:
    padding = 2 if last_two == "==" else 1 if last_two.endswith("=") else 0
    return characters * 3 // 4 - padding


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    event = dict(pairs)
    if len(event) != len(pairs):
        raise _DuplicateKey("duplicate key")
    return event


def parse_event(text: str) -> dict[str, Any] | None:
    """A client event as a dict, or None when it is not one JSON object without duplicate keys."""
    try:
        event = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except (ValueError, RecursionError):  # JSONDecodeError and _DuplicateKey; absurd nesting
        return None
    return event if isinstance(event, dict) else None


def event_id_of(event: Mapping[str, Any] | None) -> str | None:
    """The client's `event_id`, echoed in an error only when it is a plain id (never arbitrary text)."""
    value = event.get("event_id") if event is not None else None
    return value if isinstance(value, str) and _EVENT_ID.fullmatch(value) else None


def audio_bytes_of(event: Mapping[str, Any]) -> int | None:
    """Bytes of audio in a parsed append, or None when its `audio` is not base64 text."""
    audio = event.get("audio")
    if not isinstance(audio, str) or not audio.isascii() or audio.encode().translate(None, _BASE64):
        return None
    return _decoded_length(len(audio), audio[-2:])


def append_frame(event: Mapping[str, Any]) -> str:
    """A parsed append as forwarded: only its own keys (nothing else rides along upstream)."""
    clean = {"type": APPEND, "audio": event["audio"]}
    if event_id_of(event):
        clean["event_id"] = event["event_id"]
    return json.dumps(clean)


def buffer_frame(event: Mapping[str, Any]) -> str:
    """A commit or clear as forwarded."""
    clean: dict[str, Any] = {"type": event["type"]}
    if event_id_of(event):
        clean["event_id"] = event["event_id"]
    return json.dumps(clean)


# ------------------------------------------------------------------------------------- session updates


class Refused(Exception):
    """A client event the relay does not forward: `code` and `message` go into its `error` event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def _ga_to_beta(session: Mapping[str, Any]) -> dict[str, Any]:
    """A GA `session.update`'s session as changes in the preset's (beta) vocabulary."""
    allowed = {"type", "audio", "include"}
    unknown = [key for key in session if key not in allowed]
    if unknown:
        raise Refused("event_not_allowed", f"The relay does not forward session.{unknown[0]}.", unknown[0])
    if session.get("type", "transcription") != "transcription":
        raise Refused(
            "event_not_allowed", "This is a transcription session: session.type stays transcription."
        )
    changes: dict[str, Any] = {}
    audio = session.get("audio", {})
    if not isinstance(audio, Mapping) or any(key != "input" for key in audio):
        raise Refused("event_not_allowed", "The relay forwards only session.audio.input.", "session.audio")
    audio_input = audio.get("input", {})
    if not isinstance(audio_input, Mapping):
        raise Refused("event_not_allowed", "session.audio.input must be an object.", "session.audio.input")
    by_ga = {ga: beta for beta, ga in GA_INPUT_KEYS.items()}
    for key, value in audio_input.items():
        if key == "format":
            kind = value.get("type") if isinstance(value, Mapping) else None
            rate = value.get("rate", 24000) if isinstance(value, Mapping) else None
            if kind not in BETA_FORMATS or (kind == "audio/pcm" and rate != 24000):
                raise Refused("event_not_allowed", "The relay does not change the audio format.", "format")
            changes["input_audio_format"] = BETA_FORMATS[kind]
        elif key in by_ga:
            changes[by_ga[key]] = value
        else:
            raise Refused("event_not_allowed", f"The relay does not forward audio.input.{key}.", key)
    if "include" in session:
        changes["include"] = session["include"]
    return changes


def _merged(current: Any, changes: Any) -> Any:
    """`changes` over `current`: objects merged key by key, anything else (null too) replacing."""
    if isinstance(current, Mapping) and isinstance(changes, Mapping):
        merged = dict(current)
        for key, value in changes.items():
            merged[key] = _merged(current.get(key), value)
        return merged
    return changes


def _changed_paths(before: Any, after: Any, prefix: str = "") -> Iterator[str]:
    for key in sorted(set(before) | set(after)):
        path = f"{prefix}.{key}" if prefix else str(key)
        old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            yield from _changed_paths(old, new, path)
        elif old != new:
            yield path


_ABSENT = object()


@dataclass
class Update:
    session: dict[str, Any]  # the merged, validated session now in effect (the beta vocabulary)
    upstream_event: str  # what is sent upstream


def check_update(
    event: Mapping[str, Any], current: dict[str, Any], overridable: list[str], upstream: Upstream
) -> Update:
    """The session a client's update asks for, if every field it changes may be changed; else Refused.

    The changes are turned into the API's overrides and merged by the API's own `apply_overrides`, so a
    relayed session can become exactly what `POST transcription-sessions/` could have issued.
    """
    session = event.get("session")
    if not isinstance(session, Mapping):
        raise Refused("event_not_allowed", "A session update carries a `session` object.", "session")
    changes = dict(session) if event["type"] == BETA_UPDATE else _ga_to_beta(session)
    proposed = _merged(current, changes)
    paths = override_paths()
    by_path = index().by_path
    overrides: dict[str, Any] = {}
    for path in _changed_paths(current, proposed):
        name = paths.get(f"session.{path}")
        if name is None or name not in overridable:
            spec = by_path.get(path)
            what = f"{path}" if spec is not None else f"{path} (not a session field)"
            raise Refused(
                "event_not_allowed",
                f"This preset does not let the session change {what}; the session goes on unchanged.",
                path,
            )
        spec = index().by_override[name]
        if spec.override_null_off:
            present, parent = lookup(proposed, spec.parent)
            overrides[name] = parent.get(spec.name) if present and isinstance(parent, Mapping) else None
        else:
            overrides[name] = lookup(proposed, spec.path)[1]
    try:
        merged = apply_overrides(current, overrides) if overrides else current
    except PresetValidationError as exc:
        field, messages = next(iter(exc.errors.items()))
        raise Refused("invalid", f"{field}: {' '.join(messages)}", field) from None
    unsupported = upstream.unsupported(merged)
    if unsupported:
        raise Refused("invalid", upstream.unsupported_message(unsupported[0]), unsupported[0])
    return Update(merged, upstream_update(merged, upstream))


def upstream_update(session: dict[str, Any], upstream: Upstream) -> str:
    """The session update that sets `session` (the beta vocabulary) on the upstream's socket."""
    if upstream.api == "beta":
        return json.dumps({"type": BETA_UPDATE, "session": session})
    return json.dumps({"type": GA_UPDATE, "session": beta_to_ga(session, 60)["session"]})


def bytes_per_second(session: Mapping[str, Any]) -> int:
    return BYTES_PER_SECOND.get(str(session.get("input_audio_format") or "pcm16"), 48_000)
