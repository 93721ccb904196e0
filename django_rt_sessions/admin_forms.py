"""The preset change form: the `session` JSON laid out as the fields staff think in.

Each form field maps to one place in the seed's session body. A select offers "not sent" (the key is
absent: the upstream's default applies) and, where the API allows it, "off" (the key is sent as null).
The form builds the session dict and hands it to `presets.validate_session`, the one validator, then
puts each error on the field it concerns.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import SessionPreset
from .presets import (
    AUDIO_FORMATS,
    INCLUDE_ITEMS,
    KNOWN_MODELS,
    MAX_PROMPT_LENGTH,
    MAX_VAD_MS,
    OVERRIDABLE_FIELDS,
    PresetValidationError,
    validate_preset_options,
    validate_session,
)

NOT_SENT = ""
OFF = "off"

# Validator path -> form field, so an error lands next to the field that caused it.
ERROR_FIELDS = {
    "session.input_audio_format": "input_audio_format",
    "session.input_audio_noise_reduction": "noise_reduction",
    "session.input_audio_noise_reduction.type": "noise_reduction",
    "session.input_audio_transcription": "model",
    "session.input_audio_transcription.model": "model",
    "session.input_audio_transcription.language": "language",
    "session.input_audio_transcription.prompt": "prompt",
    "session.turn_detection": "turn_detection",
    "session.turn_detection.type": "turn_detection",
    "session.turn_detection.threshold": "vad_threshold",
    "session.turn_detection.prefix_padding_ms": "vad_prefix_padding_ms",
    "session.turn_detection.silence_duration_ms": "vad_silence_duration_ms",
    "session.include": "include_logprobs",
}

FORMAT_LABELS = {
    "pcm16": _("PCM 16-bit, 24 kHz, mono (pcm16)"),
    "g711_ulaw": _("G.711 μ-law (g711_ulaw)"),
    "g711_alaw": _("G.711 A-law (g711_alaw)"),
}
OVERRIDE_LABELS = {
    "language": _("Language"),
    "prompt": _("Prompt"),
    "noise_reduction": _("Noise reduction"),
}


class ModelInput(forms.TextInput):
    """A free text input that suggests the known transcription models (HTML datalist)."""

    template_name = "django_rt_sessions/widgets/model_input.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"list": "rt-sessions-known-models", "autocomplete": "off", **(attrs or {})})

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["known_models"] = KNOWN_MODELS
        return context


class SessionPresetForm(forms.ModelForm):
    input_audio_format = forms.ChoiceField(
        label=_("Audio format"),
        required=False,
        choices=[(NOT_SENT, _("Not sent (upstream default: pcm16)"))]
        + [(f, FORMAT_LABELS[f]) for f in AUDIO_FORMATS],
        help_text=_(
            "The format of the audio the browser sends. For pcm16, audio must be 16-bit PCM at 24 kHz, "
            "single channel (mono), little-endian. G.711 suits telephony."
        ),
    )
    noise_reduction = forms.ChoiceField(
        label=_("Noise reduction"),
        required=False,
        choices=[
            (NOT_SENT, _("Not sent (upstream default)")),
            (OFF, _("Off")),
            ("near_field", _("Near field: headsets, close-talking microphones")),
            ("far_field", _("Far field: laptop or conference-room microphones")),
        ],
        help_text=_(
            "Filters audio before voice detection and the model. It can improve detection accuracy "
            "(fewer false positives) and transcription on noisy input."
        ),
    )
    model = forms.CharField(
        label=_("Transcription model"),
        required=False,
        max_length=100,
        widget=ModelInput(),
        help_text=_(
            "Any model name; the list suggests the known ones. Use gpt-4o-transcribe-diarize for speaker "
            "labels. Empty: no transcription settings are sent unless a language or prompt is set."
        ),
    )
    language = forms.CharField(
        label=_("Language"),
        required=False,
        max_length=2,
        help_text=_(
            "ISO-639-1 code of the spoken language, two lowercase letters (en, fr, de). Setting it improves "
            "accuracy and latency. Empty: the model detects the language."
        ),
    )
    prompt = forms.CharField(
        label=_("Prompt"),
        required=False,
        max_length=MAX_PROMPT_LENGTH,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "Optional text guiding the transcription's style or vocabulary. For whisper-1, a list of "
            'keywords; for gpt-4o-transcribe models, free text such as "expect words related to '
            'technology". Not accepted by gpt-4o-transcribe-diarize and gpt-realtime-whisper.'
        ),
    )
    turn_detection = forms.ChoiceField(
        label=_("Turn detection"),
        required=False,
        choices=[
            (NOT_SENT, _("Not sent (upstream default: server VAD)")),
            (OFF, _("Off")),
            ("server_vad", _("Server voice activity detection")),
        ],
        help_text=_(
            "Server VAD detects the start and end of speech from the audio volume and cuts the audio into "
            "segments. Must be off for gpt-realtime-whisper."
        ),
    )
    vad_threshold = forms.FloatField(
        label=_("Activation threshold"),
        required=False,
        help_text=_(
            "0.0 to 1.0 (upstream default 0.5). Higher needs louder audio to count as speech, which can "
            "work better in noisy rooms."
        ),
    )
    vad_prefix_padding_ms = forms.IntegerField(
        label=_("Prefix padding (ms)"),
        required=False,
        help_text=_("Audio kept before detected speech, 0 to %(max)s ms (upstream default 300).")
        % {"max": MAX_VAD_MS},
    )
    vad_silence_duration_ms = forms.IntegerField(
        label=_("Silence duration (ms)"),
        required=False,
        help_text=_(
            "Silence that ends a segment, 0 to %(max)s ms (upstream default 500). Shorter answers faster but "
            "may cut in on short pauses."
        )
        % {"max": MAX_VAD_MS},
    )
    include_logprobs = forms.BooleanField(
        label=_("Include log probabilities"),
        required=False,
        help_text=_(
            "Ask for the transcription's log probabilities (item.input_audio_transcription.logprobs)."
        ),
    )
    overridable = forms.MultipleChoiceField(
        label=_("Users may change"),
        required=False,
        choices=[(f, OVERRIDE_LABELS[f]) for f in OVERRIDABLE_FIELDS],
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "What a requesting user may set in their own request. Presets guide the browser; they cannot "
            "stop a key's holder from changing its session once connected, so keep lifetimes short."
        ),
    )

    class Meta:
        model = SessionPreset
        fields = [
            "name",
            "title",
            "description",
            "active",
            "default",
            "groups",
            "expires_after_seconds",
            "rate",
            "daily_quota",
        ]
        help_texts = {
            "name": _('Identifier browsers send as "preset": letters, digits, hyphens, underscores.'),
            "active": _("Inactive presets cannot be used and are not listed to users."),
            "default": _(
                "Used when a request names no preset. Making this the default is refused while another is."
            ),
            "groups": _(
                "Only members of these groups may use the preset. None selected: every logged-in user."
            ),
            "expires_after_seconds": _(
                "How long the ephemeral key can start sessions, 10 to 7200 seconds (GA upstreams; the beta "
                "shape's keys last about a minute). Short is safer."
            ),
            "rate": _(
                "Per-user limit for this preset, like 5/m or 100/h, replacing USER_RATE. Empty: USER_RATE."
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial.update(session_initial(self.instance.session))
            self.initial["overridable"] = list(self.instance.overridable or [])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        vad = cleaned.get("turn_detection")  # read before add_error() can drop it from cleaned_data
        session = build_session(cleaned)
        try:
            cleaned["session"] = validate_session(session)
        except PresetValidationError as exc:
            for path, messages in exc.errors.items():
                field = ERROR_FIELDS.get(path)
                self.add_error(field if field in self.fields else None, messages)
        try:
            validate_preset_options(
                cleaned.get("expires_after_seconds"),
                cleaned.get("overridable") or [],
                cleaned.get("rate") or "",
            )
        except PresetValidationError as exc:
            for field, messages in exc.errors.items():
                if field not in self.errors:
                    self.add_error(field if field in self.fields else None, messages)
        if vad != "server_vad":
            for key in ("vad_threshold", "vad_prefix_padding_ms", "vad_silence_duration_ms"):
                if cleaned.get(key) is not None:
                    self.add_error(key, _("Only used with server voice activity detection: choose it above."))
        if cleaned.get("default") and cleaned.get("active") is False:
            self.add_error("default", _("The default preset must be active."))
        return cleaned

    def save(self, commit: bool = True) -> SessionPreset:
        self.instance.session = self.cleaned_data["session"]
        self.instance.overridable = list(self.cleaned_data.get("overridable") or [])
        return super().save(commit)


def session_initial(session: dict[str, Any]) -> dict[str, Any]:
    """The form fields' initial values for a stored session."""
    initial: dict[str, Any] = {"input_audio_format": session.get("input_audio_format", NOT_SENT)}
    if "input_audio_noise_reduction" in session:
        noise = session["input_audio_noise_reduction"]
        initial["noise_reduction"] = OFF if noise is None else noise.get("type", NOT_SENT)
    transcription = session.get("input_audio_transcription") or {}
    for key in ("model", "language", "prompt"):
        initial[key] = transcription.get(key) or ""
    if "turn_detection" in session:
        vad = session["turn_detection"]
        initial["turn_detection"] = OFF if vad is None else vad.get("type", "server_vad")
        for key in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
            initial[f"vad_{key}"] = (vad or {}).get(key)
    initial["include_logprobs"] = bool(session.get("include"))
    return initial


def build_session(data: dict[str, Any]) -> dict[str, Any]:
    """The session dict (seed vocabulary) that the form's fields describe."""
    session: dict[str, Any] = {}
    if data.get("input_audio_format"):
        session["input_audio_format"] = data["input_audio_format"]
    noise = data.get("noise_reduction")
    if noise:
        session["input_audio_noise_reduction"] = None if noise == OFF else {"type": noise}
    transcription = {key: data[key] for key in ("model", "language", "prompt") if data.get(key)}
    if transcription:
        session["input_audio_transcription"] = transcription
    vad = data.get("turn_detection")
    if vad == OFF:
        session["turn_detection"] = None
    elif vad:
        session["turn_detection"] = {"type": vad}
        for key in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
            if data.get(f"vad_{key}") is not None:
                session["turn_detection"][key] = data[f"vad_{key}"]
    if data.get("include_logprobs"):
        session["include"] = list(INCLUDE_ITEMS)
    return session
