"""The one description of a preset's session: every field, its values, its model rules and its help text.

A preset's `session` speaks the beta endpoint's vocabulary (`POST /v1/realtime/transcription_sessions`),
extended in the same nesting with the fields only the GA shape has. Everything about a field lives in its
entry in FIELDS, and everything else derives from that table:

* the validator (`presets.validate_session`: the admin, the import, the API and POLICY re-validation),
* the request body's overrides (`payload.py`, `presets.apply_overrides`),
* the admin form's fields, help texts and fieldsets (`admin_forms.py`),
* the OpenAPI schema (`openapi.py`),
* what an upstream cannot send (`upstreams.base.Upstream.cannot_send`),
* the field table in docs/presets.md (`markdown_table`, compared by tests/test_session_fields.py).

Adding a field means adding one entry here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.utils.translation import gettext_lazy as _

Kind = Literal["object", "choice", "text", "number", "integer", "list"]

# Characters no string may hold anywhere: PostgreSQL cannot store NUL, and an unpaired UTF-16 surrogate
# cannot be encoded to UTF-8 (json.loads accepts "\ud800"; the upstream call or the audit row would fail).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` with what cannot be stored replaced by U+FFFD (for audit fields that must keep a trace)."""
    return UNSTORABLE.sub("\ufffd", text)


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be sent or stored, or None."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "holds a NUL character"
    return f"holds an unpaired surrogate ({ascii(found.group())[1:-1]})"


@dataclass(frozen=True)
class Choice:
    value: str
    label: Any  # a lazy translation
    ga_only: bool = False


@dataclass(frozen=True)
class Rule:
    """What a JSON value must be. `describe()` and `problem()` both read it, so docs and errors agree."""

    kind: Kind
    choices: tuple[Choice, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_length: int = 0
    max_length: int | None = None
    pattern: str | None = None  # fullmatch
    pattern_text: str = ""  # what the pattern means, for messages
    forbidden: str = ""  # characters a text may not hold
    forbidden_text: str = ""
    single_line: bool = False
    not_blank: bool = False  # more than whitespace
    items: Rule | None = None  # for lists
    min_items: int = 0
    max_items: int | None = None
    distinct: bool = False

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(choice.value for choice in self.choices)

    def problem(self, value: Any) -> str | None:
        """Why `value` breaks this rule (naming the value), or None."""
        if self.kind == "choice":
            if isinstance(value, str) and value in self.values:
                return None
            return f"{_show(value)} is not one of {', '.join(self.values)}."
        if self.kind == "text":
            return self._text_problem(value)
        if self.kind in ("number", "integer"):
            whole = self.kind == "integer"
            ok_type = _is_int(value) if whole else _is_number(value)
            low, high = self.minimum, self.maximum
            if ok_type and (low is None or value >= low) and (high is None or value <= high):
                return None
            what = "a whole number" if whole else "a number"
            return f"{_show(value)} is not {what} from {_num(low)} to {_num(high)}."
        if self.kind == "list":
            return self._list_problem(value)
        raise AssertionError(f"no value rule for {self.kind}")  # objects are checked field by field

    def _text_problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{_show(value)} is not a string."
        reason = unstorable_reason(value)
        if reason:
            return f"The text {reason}."
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"{_show(value)} is not {self.pattern_text}."
        if len(value) < self.min_length:
            return (
                "Must not be empty."
                if self.min_length == 1 and not value
                else (f"{_show(value)} is shorter than {self.min_length} characters.")
            )
        if self.not_blank and not value.strip():
            return "Must not be blank."
        if self.max_length is not None and len(value) > self.max_length:
            return f"Has {len(value)} characters; at most {self.max_length} are allowed."
        if self.single_line and ("\r" in value or "\n" in value):
            return f"{_show(value)} must be on one line."
        bad = sorted({c for c in value if c in self.forbidden})
        if bad:
            return f"{_show(value)} holds {' and '.join(map(repr, bad))}, which {self.forbidden_text}."
        return None

    def _list_problem(self, value: Any) -> str | None:
        if not isinstance(value, list):
            return f"{_show(value)} is not a list."
        if len(value) < self.min_items:
            return f"Must list at least {self.min_items}." if value else "Must not be an empty list."
        if self.max_items is not None and len(value) > self.max_items:
            return f"Lists {len(value)}; at most {self.max_items} are allowed."
        assert self.items is not None
        for index, item in enumerate(value):
            problem = self.items.problem(item)
            if problem:
                return f"Item {index + 1}: {problem}"
        if self.distinct:
            seen: set[Any] = set()
            for item in value:
                if _hashable(item) in seen:
                    return f"Lists {_show(item)} twice."
                seen.add(_hashable(item))
        return None

    def describe(self) -> str:
        """The allowed values in words (the docs' table)."""
        if self.kind == "choice":
            return ", ".join(f"`{c.value}`" + (" (GA only)" if c.ga_only else "") for c in self.choices)
        if self.kind == "text":
            parts = [self.pattern_text] if self.pattern_text else ["text"]
            if self.min_length:
                parts.append("not empty")
            if self.max_length is not None:
                parts.append(f"at most {self.max_length} characters")
            if self.single_line:
                parts.append("one line")
            if self.forbidden_text:
                parts.append(f"no {' '.join(f'`{c}`' for c in self.forbidden)}")
            return ", ".join(parts)
        if self.kind in ("number", "integer"):
            what = "whole number" if self.kind == "integer" else "number"
            return f"{what} from {_num(self.minimum)} to {_num(self.maximum)}"
        if self.kind == "list":
            assert self.items is not None
            count = f"{self.min_items} to {self.max_items}" if self.max_items else f"{self.min_items} or more"
            distinct = " distinct" if self.distinct else ""
            return f"list of {count}{distinct}: {self.items.describe()}"
        return "object"


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
    only_models: tuple[str, ...] = ()  # known models that accept it (empty: all)
    excluded_models: tuple[str, ...] = ()  # known models that refuse it
    null_for_models: tuple[str, ...] = ()  # known models for which it must be given as null
    when: tuple[str, tuple[str, ...]] | None = None  # (sibling, values): only with that sibling value
    selector: bool = False  # a choice that also switches its parent object: "not sent" / "off" in the form
    suggestions: tuple[str, ...] = ()  # values the admin suggests for free text

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def parent(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def depth(self) -> int:
        return self.path.count(".")


@dataclass(frozen=True)
class KnownModel:
    """A transcription model the app knows the rules of."""

    name: str
    transports: tuple[str, ...] = ("webrtc", "websocket")  # realtime transports, preferred first
    shutdown: dt.date | None = None  # announced by OpenAI
    replacement: str | None = None


# OpenAI's announced shutdown of the older transcription models (openai-python 3.57.0,
# types/realtime/audio_transcription.py: "Announced shutdown date: 2027-02-26").
_SHUTDOWN_2027 = dt.date(2027, 2, 26)
RECOMMENDED_MODEL = "gpt-live-transcribe"

MODELS: tuple[KnownModel, ...] = (
    KnownModel("gpt-live-transcribe"),
    # OpenAI serves gpt-transcribe in realtime only for committed turns, over WebSocket.
    KnownModel("gpt-transcribe", transports=("websocket",)),
    KnownModel("gpt-realtime-whisper"),
    KnownModel("gpt-4o-transcribe", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
    KnownModel("gpt-4o-mini-transcribe", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
    KnownModel("gpt-4o-mini-transcribe-2025-12-15", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
    KnownModel("gpt-4o-transcribe-diarize", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
    KnownModel("whisper-1", shutdown=_SHUTDOWN_2027, replacement=RECOMMENDED_MODEL),
)
MODELS_BY_NAME: dict[str, KnownModel] = {m.name: m for m in MODELS}
KNOWN_MODELS: tuple[str, ...] = tuple(MODELS_BY_NAME)

_LANGUAGE = Rule(
    "text", pattern="[a-z]{2}", pattern_text="an ISO-639-1 code (two lowercase letters, like 'fr')"
)
_AUDIO = _("Audio")
_TRANSCRIPTION = _("Transcription")
_TURNS = _("Turn detection")
_KEYWORD_MODELS = ("gpt-transcribe", "gpt-live-transcribe")
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
            "Any model name; the list suggests the known ones. gpt-live-transcribe is OpenAI's recommended "
            "realtime model; gpt-transcribe is served over WebSocket only. Older models (whisper-1, "
            "gpt-4o-*-transcribe) shut down on 2027-02-26."
        ),
        Rule("text", min_length=1, max_length=100, single_line=True, not_blank=True, pattern_text="a model"),
        _TRANSCRIPTION,
        "model",
        required=True,
        suggestions=KNOWN_MODELS,
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
        only_models=_KEYWORD_MODELS,
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
        only_models=_KEYWORD_MODELS,
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
        excluded_models=("gpt-4o-transcribe-diarize", "gpt-realtime-whisper"),
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
        only_models=("gpt-realtime-whisper", "gpt-live-transcribe"),
    ),
    SessionField(
        "turn_detection",
        _("Turn detection"),
        _("Voice activity detection; null turns it off."),
        Rule("object"),
        _TURNS,
        "turn_detection",
        nullable=True,
        null_for_models=("gpt-realtime-whisper",),
    ),
    SessionField(
        "turn_detection.type",
        _("Turn detection"),
        _(
            "Server VAD cuts the audio into turns by its volume; semantic VAD also uses a model to judge "
            "whether the speaker has finished. Off (null) for gpt-realtime-whisper."
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
        _TURNS,
        "vad_threshold",
        when=_SERVER_VAD,
    ),
    SessionField(
        "turn_detection.prefix_padding_ms",
        _("Prefix padding (ms)"),
        _("Audio kept before detected speech (upstream default 300 ms)."),
        Rule("integer", minimum=0, maximum=VAD_MAX_MS),
        _TURNS,
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
        _TURNS,
        "vad_silence_duration_ms",
        when=_SERVER_VAD,
    ),
    SessionField(
        "turn_detection.idle_timeout_ms",
        _("Idle timeout (ms)"),
        _("End the turn after this long without speech."),
        Rule("integer", minimum=5000, maximum=30000),
        _TURNS,
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
        _TURNS,
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


def transports_for(model: str | None) -> tuple[str, ...]:
    """The realtime transports a model supports, preferred first (the 201's `connect.transports`)."""
    known = MODELS_BY_NAME.get(model or "")
    return known.transports if known else ("webrtc", "websocket")


# ---------------------------------------------------------------------------------- the docs' table

DOCS_TABLE_START = "<!-- session-fields:start (generated from django_rt_sessions/session_fields.py) -->"
DOCS_TABLE_END = "<!-- session-fields:end -->"


def field_notes(spec: SessionField, *, markdown: bool = True) -> list[str]:
    """What the docs' table, the OpenAPI schema and the admin's help texts say about a field beyond its help
    text: its values and rules, derived from the entry."""
    code = (lambda text: f"`{text}`") if markdown else str

    def names(models: tuple[str, ...]) -> str:
        shown = [code(m) for m in models]
        return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]

    notes = [str(spec.help_text)]
    if spec.required:
        notes.append("**Required.**" if markdown else "Required.")
    if spec.ga_only:
        notes.append("GA upstreams only (not the beta endpoint).")
    if spec.only_models:
        notes.append(f"Only for {names(spec.only_models)}.")
    if spec.excluded_models:
        notes.append(f"Not for {names(spec.excluded_models)}.")
    if spec.null_for_models:
        notes.append(f"Must be {code('null')} for {names(spec.null_for_models)}.")
    if spec.when:
        sibling, values = spec.when
        notes.append(f"Only with {code(sibling)} {' or '.join(code(v) for v in values)}.")
    if spec.replaces:
        notes.append(f"Never together with {code(spec.replaces)}.")
    if spec.default is not None:
        notes.append(f"Default {code(spec.default)}.")
    if spec.override:
        notes.append(f"Users may change it with {code(spec.override)} when the preset allows.")
    return notes


def markdown_table(fields: tuple[SessionField, ...] = FIELDS) -> str:
    """The field table of docs/presets.md, between its markers."""
    rows = [
        "| key | allowed values | notes |",
        "|---|---|---|",
    ]
    for spec in fields:
        value = "object" if spec.rule.kind == "object" else spec.rule.describe()
        if spec.nullable:
            value += ", or `null` (off)"
        rows.append(f"| `{spec.path}` | {value} | {' '.join(field_notes(spec))} |")
    return "\n".join([DOCS_TABLE_START, *rows, DOCS_TABLE_END])


# ------------------------------------------------------------------------------------------ helpers


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def _num(value: float | None) -> str:
    return "any" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _show(value: Any) -> str:
    """A value as shown in a message: short, and always printable ASCII-safe for odd characters."""
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(UNSTORABLE.sub("\ufffd", shown))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


show_value = _show
