"""The one description of a preset's session: every field, its values, its model rules and its help text.

A preset's `session` speaks the beta endpoint's vocabulary (`POST /v1/realtime/transcription_sessions`),
extended in the same nesting with the fields only the GA shape has. Everything about a field lives in its
entry in FIELDS, and everything else derives from that table:

* the validator (`sessions.validation`: the admin, the import, the API and POLICY re-validation),
* the request body's overrides (`issuing.payload`, `sessions.validation.apply_overrides`),
* the admin form's fields, help texts and fieldsets (`admin.forms`),
* the OpenAPI schema (`api.openapi`),
* what an upstream cannot send (`upstreams.base.Upstream.cannot_send`),
* the field table in docs/presets.md (`sessions.docs`).

Adding a field means adding one entry here. The value rules are `sessions.rules`; the known models and
their rules are `sessions.catalog`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

from .rules import Choice, Rule


@dataclass(frozen=True)
class SessionField:
    """One key of a preset's session, at its dotted path in the beta endpoint's vocabulary."""

    path: str
    label: Any
    help_text: Any
    rule: Rule
    group: Any  # the admin fieldset
    form_name: str  # the admin form field (for an object: the field its own errors are shown on)
    nullable: bool = False  # null is sent as null (turns the feature off)
    required: bool = False
    default: Any = None  # filled in when the parent object is sent without it
    ga_only: bool = False  # the beta endpoint has no such field
    override: str | None = None  # the request field a user may change it with
    override_null_off: bool = False  # the override's null turns the parent object off (not: drop the key)
    replaces: str | None = None  # a sibling this one replaces (never both)
    # Some known models take it and others do not: which do is their entry in sessions/catalog.py.
    per_model: bool = False
    # Server turn detection: a value other than null needs a model that takes it (sessions/catalog.py).
    server_turns: bool = False
    when: tuple[str, tuple[str, ...]] | None = None  # (sibling, values): only with that sibling value
    selector: bool = False  # a choice that also switches its parent object: "not sent" / "off" in the form
    suggest_models: bool = False  # the admin suggests the known models (free text)
    relay_only: bool = False  # a relay option that a preset without `relay: true` may not set

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def parent(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def depth(self) -> int:
        return self.path.count(".")


_LANGUAGE = Rule(
    "text", pattern="[a-z]{2}", pattern_text="an ISO-639-1 code (two lowercase letters, like 'fr')"
)
_AUDIO = _("Audio")
_TRANSCRIPTION = _("Transcription")
_TURNS = _("Turn detection")
# Their settings in fieldsets of their own: the admin collapses those a preset leaves unset.
_SERVER_VAD_GROUP = _("Server VAD settings")
_SEMANTIC_VAD_GROUP = _("Semantic VAD settings")
_SERVER_VAD = ("type", ("server_vad",))
_SEMANTIC_VAD = ("type", ("semantic_vad",))
VAD_MAX_MS = 10000

FIELDS: tuple[SessionField, ...] = (
    SessionField(
        "input_audio_format",
        _("Audio format"),
        _(
            "The format of the audio the browser sends. For pcm16, audio must be 16-bit PCM at 24 kHz, "
            "single channel (mono), little-endian. G.711 suits telephony."
        ),
        Rule(
            "choice",
            choices=(
                Choice("pcm16", _("PCM 16-bit, 24 kHz, mono (pcm16)")),
                Choice("g711_ulaw", _("G.711 μ-law (g711_ulaw)")),
                Choice("g711_alaw", _("G.711 A-law (g711_alaw)")),
            ),
        ),
        _AUDIO,
        "input_audio_format",
    ),
    SessionField(
        "input_audio_noise_reduction",
        _("Noise reduction"),
        _("Noise reduction settings; null turns noise reduction off."),
        Rule("object"),
        _AUDIO,
        "noise_reduction",
        nullable=True,
    ),
    SessionField(
        "input_audio_noise_reduction.type",
        _("Noise reduction"),
        _(
            "Filters audio before voice detection and the model. It can improve detection accuracy "
            "(fewer false positives) and transcription on noisy input."
        ),
        Rule(
            "choice",
            choices=(
                Choice("near_field", _("Near field: headsets, close-talking microphones")),
                Choice("far_field", _("Far field: laptop or conference-room microphones")),
            ),
        ),
        _AUDIO,
        "noise_reduction",
        required=True,  # a noise_reduction object names its type (null turns noise reduction off)
        override="noise_reduction",
        override_null_off=True,
        selector=True,
    ),
    SessionField(
        "input_audio_noise_reduction.strength",
        _("Noise reduction strength"),
        _("Higher suppresses more noise (upstream default 1 when noise reduction is on)."),
        Rule("number", minimum=0.0, maximum=1.0),
        _AUDIO,
        "noise_strength",
        ga_only=True,
    ),
    SessionField(
        "input_audio_transcription",
        _("Transcription"),
        _("The transcription model and what guides it."),
        Rule("object"),
        _TRANSCRIPTION,
        "model",
        required=True,
    ),
    SessionField(
        "input_audio_transcription.model",
        _("Transcription model"),
        _(
            "Any model name; the list suggests the known ones, whose rules (transports, turn detection, "
            "the fields each takes, shutdowns) the app applies."
        ),
        Rule("text", min_length=1, max_length=100, single_line=True, not_blank=True, pattern_text="a model"),
        _TRANSCRIPTION,
        "model",
        required=True,
        suggest_models=True,
    ),
    SessionField(
        "input_audio_transcription.language",
        _("Language"),
        _(
            "The spoken language (en, fr, de …). Setting it improves accuracy and latency. Empty: the model "
            "detects the language."
        ),
        _LANGUAGE,
        _TRANSCRIPTION,
        "language",
        override="language",
        replaces="languages",
    ),
    SessionField(
        "input_audio_transcription.languages",
        _("Languages"),
        _("The languages the audio may be in, one ISO-639-1 code per line."),
        Rule("list", items=_LANGUAGE, min_items=1, max_items=10, distinct=True),
        _TRANSCRIPTION,
        "languages",
        ga_only=True,
        override="languages",
        replaces="language",
        per_model=True,
    ),
    SessionField(
        "input_audio_transcription.keywords",
        _("Keywords"),
        _("Words or phrases to listen for (names, product codes), one per line."),
        Rule(
            "list",
            items=Rule(
                "text",
                min_length=1,
                max_length=100,
                single_line=True,
                forbidden="<>",
                forbidden_text="OpenAI refuses in keywords",
            ),
            min_items=1,
            max_items=100,
            distinct=True,
        ),
        _TRANSCRIPTION,
        "keywords",
        ga_only=True,
        override="keywords",
        per_model=True,
    ),
    SessionField(
        "input_audio_transcription.prompt",
        _("Prompt"),
        _(
            "Optional text guiding the transcription's style or vocabulary; with gpt-live-transcribe prefer "
            "keywords."
        ),
        Rule("text", max_length=4000),
        _TRANSCRIPTION,
        "prompt",
        override="prompt",
        per_model=True,
    ),
    SessionField(
        "input_audio_transcription.delay",
        _("Delay"),
        _("How long the model waits before emitting text: higher is more accurate, lower is faster."),
        Rule(
            "choice",
            choices=tuple(
                Choice(v, label)
                for v, label in (
                    ("minimal", _("Minimal")),
                    ("low", _("Low")),
                    ("medium", _("Medium")),
                    ("high", _("High")),
                    ("xhigh", _("Extra high")),
                )
            ),
        ),
        _TRANSCRIPTION,
        "delay",
        ga_only=True,
        per_model=True,
    ),
    SessionField(
        "turn_detection",
        _("Turn detection"),
        _(
            "Turn detection by the upstream; null turns it off, and the browser client then commits each "
            "turn itself (client_turns)."
        ),
        Rule("object"),
        _TURNS,
        "turn_detection",
        nullable=True,
        server_turns=True,
    ),
    SessionField(
        "turn_detection.type",
        _("Turn detection"),
        _(
            "Server VAD cuts the audio into turns by its volume; semantic VAD also uses a model to judge "
            "whether the speaker has finished."
        ),
        Rule(
            "choice",
            choices=(
                Choice("server_vad", _("Server voice activity detection")),
                Choice("semantic_vad", _("Semantic voice activity detection"), ga_only=True),
            ),
        ),
        _TURNS,
        "turn_detection",
        default="server_vad",  # the GA shape requires a type
        selector=True,
    ),
    SessionField(
        "turn_detection.threshold",
        _("Activation threshold"),
        _(
            "Higher needs louder audio to count as speech, which can work better in noisy rooms (upstream "
            "default 0.5)."
        ),
        Rule("number", minimum=0.0, maximum=1.0),
        _SERVER_VAD_GROUP,
        "vad_threshold",
        when=_SERVER_VAD,
    ),
    SessionField(
        "turn_detection.prefix_padding_ms",
        _("Prefix padding (ms)"),
        _("Audio kept before detected speech (upstream default 300 ms)."),
        Rule("integer", minimum=0, maximum=VAD_MAX_MS),
        _SERVER_VAD_GROUP,
        "vad_prefix_padding_ms",
        when=_SERVER_VAD,
    ),
    SessionField(
        "turn_detection.silence_duration_ms",
        _("Silence duration (ms)"),
        _(
            "Silence that ends a turn (upstream default 500 ms). Shorter answers faster but may cut in on "
            "short pauses."
        ),
        Rule("integer", minimum=0, maximum=VAD_MAX_MS),
        _SERVER_VAD_GROUP,
        "vad_silence_duration_ms",
        when=_SERVER_VAD,
    ),
    SessionField(
        "turn_detection.idle_timeout_ms",
        _("Idle timeout (ms)"),
        _("End the turn after this long without speech."),
        Rule("integer", minimum=5000, maximum=30000),
        _SERVER_VAD_GROUP,
        "vad_idle_timeout_ms",
        nullable=True,
        ga_only=True,
        when=_SERVER_VAD,
    ),
    SessionField(
        "turn_detection.eagerness",
        _("Eagerness"),
        _(
            "How soon semantic VAD ends a turn: low waits longer (up to 8 s), high answers sooner (2 s); "
            "auto is medium."
        ),
        Rule(
            "choice",
            choices=(
                Choice("low", _("Low")),
                Choice("medium", _("Medium")),
                Choice("high", _("High")),
                Choice("auto", _("Auto (medium)")),
            ),
        ),
        _SEMANTIC_VAD_GROUP,
        "vad_eagerness",
        ga_only=True,
        when=_SEMANTIC_VAD,
    ),
    SessionField(
        "include",
        _("Include"),
        _(
            "Extra fields in the transcription events: item.input_audio_transcription.logprobs adds "
            "log probabilities."
        ),
        Rule(
            "list",
            items=Rule(
                "choice",
                choices=(Choice("item.input_audio_transcription.logprobs", _("Log probabilities")),),
            ),
        ),
        _TRANSCRIPTION,
        "include",
    ),
)


_CLIENT_TURNS = _("Client turns")

# `client_turns`, a preset key beside `session` (never sent upstream): how the browser client ends turns
# itself when the upstream detects none (turn_detection null, or absent for a model without server VAD).
CLIENT_TURNS_FIELDS: tuple[SessionField, ...] = (
    SessionField(
        "silence_duration_ms",
        _("Silence that ends a turn (ms)"),
        _("The browser commits the turn after this much silence following speech."),
        Rule("integer", minimum=100, maximum=10000),
        _CLIENT_TURNS,
        "client_silence_duration_ms",
        default=600,
    ),
    SessionField(
        "max_turn_ms",
        _("Longest turn (ms)"),
        _("The browser commits a turn that has gone on this long, speech or not."),
        Rule("integer", minimum=1000, maximum=120000),
        _CLIENT_TURNS,
        "client_max_turn_ms",
        default=15000,
    ),
)


_RELAY = _("Relay")

# The relay options, preset keys beside `session` (docs/presets.md#relay-presets): whether the site relays
# the session itself (the browser gets a single-use relay ticket, never an OpenAI key) and the limits it
# then enforces. Model columns of SessionPreset; this table is their one description (validation, the
# admin's "Relay" fieldset, import/export, the OpenAPI schema, the docs' table).
RELAY_FIELDS: tuple[SessionField, ...] = (
    SessionField(
        "relay",
        _("Relay sessions through this site"),
        _(
            "The browser gets a single-use relay ticket instead of an OpenAI key and streams to this "
            "site, which streams to OpenAI with its own key: the site meters the audio, enforces the "
            "preset and the limits below, and staff can end any session. Needs the relay deployment "
            "(docs/deployment.md)."
        ),
        Rule("boolean"),
        _RELAY,
        "relay",
        default=False,
    ),
    SessionField(
        "max_session_seconds",
        _("Longest session (seconds)"),
        _("The longest one relayed session may run, in wall-clock time and in metered audio alike."),
        Rule("integer", minimum=10, maximum=3600),
        _RELAY,
        "max_session_seconds",
        default=900,
        relay_only=True,
    ),
    SessionField(
        "max_concurrent_sessions",
        _("Open sessions per user"),
        _("Relayed sessions one user may have open at once on this preset, counted exactly across hosts."),
        Rule("integer", minimum=1, maximum=100),
        _RELAY,
        "max_concurrent_sessions",
        default=1,
        relay_only=True,
    ),
    SessionField(
        "daily_audio_minutes",
        _("Audio minutes per user per day"),
        _(
            "Metered audio one user may stream on this preset per UTC day, open sessions included; null: "
            "no limit."
        ),
        Rule("number", minimum=0.1, maximum=100000.0),
        _RELAY,
        "daily_audio_minutes",
        nullable=True,
        relay_only=True,
    ),
    SessionField(
        "idle_timeout_seconds",
        _("Idle timeout (seconds)"),
        _("A relayed session that receives no audio for this long ends."),
        Rule("integer", minimum=5, maximum=600),
        _RELAY,
        "idle_timeout_seconds",
        default=60,
        relay_only=True,
    ),
)
RELAY_LIMITS: tuple[str, ...] = tuple(spec.name for spec in RELAY_FIELDS if spec.relay_only)


class FieldIndex:
    """Lookups over a tuple of fields (FIELDS, or a test's extended copy)."""

    def __init__(self, fields: tuple[SessionField, ...]) -> None:
        self.fields = fields
        self.by_path: dict[str, SessionField] = {f.path: f for f in fields}
        self.children: dict[str, list[SessionField]] = {}
        for f in fields:
            self.children.setdefault(f.parent, []).append(f)
        self.by_override: dict[str, SessionField] = {f.override: f for f in fields if f.override}

    @property
    def overrides(self) -> tuple[str, ...]:
        return tuple(self.by_override)


_INDEXES: dict[int, FieldIndex] = {}


def index(fields: tuple[SessionField, ...] = FIELDS) -> FieldIndex:
    """The (cached) index of a field table."""
    found = _INDEXES.get(id(fields))
    if found is None or found.fields is not fields:
        found = _INDEXES[id(fields)] = FieldIndex(fields)
    return found


#: The request fields a preset may list in `overridable`, in the table's order.
OVERRIDABLE_FIELDS: tuple[str, ...] = index().overrides


def ga_only_tokens(fields: tuple[SessionField, ...] = FIELDS) -> frozenset[str]:
    """What the beta endpoint cannot be sent: GA-only field paths and `path=value` for GA-only values."""
    tokens = {f.path for f in fields if f.ga_only}
    tokens |= {f"{f.path}={c.value}" for f in fields for c in f.rule.choices if c.ga_only}
    return frozenset(tokens)


def sent_tokens(session: Mapping[str, Any], fields: tuple[SessionField, ...] = FIELDS) -> Iterator[str]:
    """Each field path a (valid) session sends, and `path=value` for each choice it sends."""
    by_path = index(fields).by_path

    def walk(obj: Mapping[str, Any], prefix: str) -> Iterator[str]:
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            spec = by_path.get(path)
            if spec is None:
                continue
            yield path
            if spec.rule.kind == "object" and isinstance(value, Mapping):
                yield from walk(value, path)
            elif spec.rule.kind == "choice" and isinstance(value, str):
                yield f"{path}={value}"

    yield from walk(session, "")


def model_of(session: Mapping[str, Any]) -> str | None:
    transcription = session.get("input_audio_transcription")
    model = transcription.get("model") if isinstance(transcription, Mapping) else None
    return model if isinstance(model, str) else None


# ------------------------------------------------------------------------------ paths in a session


def lookup(obj: Any, path: str) -> tuple[bool, Any]:
    """(present, value) of the dotted `path` in nested objects."""
    for key in path.split("."):
        if not isinstance(obj, Mapping) or key not in obj:
            return False, None
        obj = obj[key]
    return True, obj


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted `path`, creating (or replacing non-object) parents on the way."""
    *parents, leaf = path.split(".")
    for key in parents:
        if not isinstance(obj.get(key), dict):
            obj[key] = {}
        obj = obj[key]
    obj[leaf] = value
