"""The preset change form: the `session` JSON laid out as the fields staff think in.

Every session form field, its label, help text, choices and fieldset come from the description of the
session fields (`sessions.fields.FIELDS`): one form field per value there. A select offers "not sent"
(the key is absent: the upstream's default applies) and, where the API allows it, "off" (the key's object
is sent as null). The form builds the session dict and hands it to the one validator
(`sessions.validation.validate_session`), then puts each error on the field it concerns.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from ..models import SessionPreset
from ..presets.validation import validate_preset_options
from ..sessions import catalog
from ..sessions.docs import field_notes
from ..sessions.fields import (
    CLIENT_TURNS_FIELDS,
    FIELDS,
    RELAY_FIELDS,
    SessionField,
    index,
    lookup,
    set_path,
)
from ..sessions.validation import (
    PresetValidationError,
    validate_client_turns,
    validate_relay_options,
    validate_session,
)
from ..upstreams import configured_upstream

NOT_SENT = ""
OFF = "off"


class ModelInput(forms.TextInput):
    """A free text input that suggests values (HTML datalist): the known transcription models."""

    template_name = "django_rt_sessions/widgets/model_input.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"list": "rt-sessions-known-models", "autocomplete": "off", **(attrs or {})})

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["known_models"] = catalog.known_models()  # read now: RT_SESSIONS["MODELS"] may add some
        return context


class _AnyChoiceField(forms.ChoiceField):
    """A select whose posted value the one validator judges, so staff read its message, not Django's."""

    def valid_value(self, value: Any) -> bool:
        return True


class _AnyMultipleChoiceField(forms.MultipleChoiceField):
    def valid_value(self, value: Any) -> bool:
        return True


def _leaves(fields: tuple[SessionField, ...]) -> list[SessionField]:
    return [spec for spec in fields if spec.rule.kind != "object"]


def _selector_of(spec: SessionField, fields: tuple[SessionField, ...]) -> SessionField | None:
    """The field that switches `spec`'s parent object on and off (noise reduction's type …), if any."""
    return next(
        (s for s in index(fields).children.get(spec.parent, []) if s.selector and s is not spec), None
    )


def _number_attrs(spec: SessionField) -> dict[str, Any]:
    # The browser's hint only: the validator's messages stay the ones staff read.
    attrs: dict[str, Any] = {}
    if spec.rule.minimum is not None:
        attrs["min"] = spec.rule.minimum
    if spec.rule.maximum is not None:
        attrs["max"] = spec.rule.maximum
    return attrs


def help_text(spec: SessionField) -> str:
    """A form field's help: the field's notes and, for typed-in values, what is allowed."""
    notes = field_notes(spec, markdown=False)
    if spec.rule.kind in ("text", "number", "integer", "list") and not spec.suggest_models:
        notes.insert(1, _("Allowed: %(values)s.") % {"values": spec.rule.describe().replace("`", "")})
    return " ".join(map(str, notes))


def form_field(spec: SessionField, fields: tuple[SessionField, ...] = FIELDS) -> forms.Field:
    """The admin form field for one value of the description."""
    rule = spec.rule
    if rule.kind == "boolean":
        return forms.BooleanField(label=spec.label, help_text=lazy(help_text, str)(spec), required=False)
    common: dict[str, Any] = {
        "label": spec.label,
        # Lazy: the notes name the known models, which RT_SESSIONS["MODELS"] may change at any time.
        "help_text": lazy(help_text, str)(spec),
        "required": False,
    }
    if rule.kind == "choice":
        parent = index(fields).by_path.get(spec.parent)
        choices: list[tuple[str, Any]] = [(NOT_SENT, _("Not sent (upstream default)"))]
        if spec.selector and parent is not None and parent.nullable:
            choices.append((OFF, _("Off")))
        choices += [
            (c.value, (f"{c.label} ({_('GA upstreams only')})" if c.ga_only else c.label))
            for c in rule.choices
        ]
        return _AnyChoiceField(choices=choices, **common)
    if rule.kind == "text":
        # One line for one value (a model, a language code); a box only for free, long text (a prompt).
        long_text = rule.pattern is None and not rule.single_line and (rule.max_length or 201) > 200
        if spec.suggest_models:
            widget: forms.Widget = ModelInput()
        elif long_text:
            widget = forms.Textarea(attrs={"rows": 3})
        else:
            widget = forms.TextInput()
        return forms.CharField(widget=widget, strip=not long_text, **common)
    if rule.kind == "number":
        return forms.FloatField(
            widget=forms.NumberInput(attrs={**_number_attrs(spec), "step": "any"}), **common
        )
    if rule.kind == "integer":
        return forms.IntegerField(widget=forms.NumberInput(attrs=_number_attrs(spec)), **common)
    if rule.kind == "list":
        assert rule.items is not None
        if rule.items.kind == "choice":
            return _AnyMultipleChoiceField(
                choices=[(c.value, f"{c.label} ({c.value})") for c in rule.items.choices],
                widget=forms.CheckboxSelectMultiple,
                **common,
            )
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), **common)  # one item per line
    raise AssertionError(f"no form field for {rule.kind}")


class SessionPresetFormBase(forms.ModelForm):
    """The preset form without its session fields; `session_form_class` adds them from a description."""

    session_fields: tuple[SessionField, ...] = FIELDS
    client_turn_fields: tuple[SessionField, ...] = CLIENT_TURNS_FIELDS
    relay_fields: tuple[SessionField, ...] = RELAY_FIELDS

    overridable = forms.MultipleChoiceField(
        label=_("Users may change"),
        required=False,
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
        widgets = {
            # Compact: the form is long enough (a two-pane group chooser alone is 300 px).
            "description": forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
            "groups": forms.SelectMultiple(attrs={"size": 4}),
        }
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
                "endpoint's keys last about a minute). Short is safer."
            ),
            "rate": _(
                "Per-user limit for this preset, like 5/m or 100/h, replacing USER_RATE. Empty: USER_RATE."
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        overridable = self.fields["overridable"]
        assert isinstance(overridable, forms.MultipleChoiceField)
        overridable.choices = [
            (name, spec.label) for name, spec in index(self.session_fields).by_override.items()
        ]
        if self.instance.pk and not self.is_bound:
            self.initial.update(session_initial(self.instance.session, self.session_fields))
            self.initial.update(session_initial(self.instance.client_turns or {}, self.client_turn_fields))
            self.initial["overridable"] = list(self.instance.overridable or [])
            self.initial.update(relay_initial(self.instance, self.relay_fields))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        fields = self.session_fields
        by_path = index(fields).by_path
        session, misplaced = build_session(cleaned, fields)
        for form_name, message in misplaced:
            self.add_error(form_name, message)
        try:
            cleaned["session"] = validate_session(session, upstream=configured_upstream(), fields=fields)
        except PresetValidationError as exc:
            self._add_field_errors(exc, "session.", by_path)
        client_turns, _misplaced = build_session(cleaned, self.client_turn_fields)
        try:
            cleaned["client_turns"] = validate_client_turns(client_turns or None)
        except PresetValidationError as exc:
            self._add_field_errors(exc, "client_turns.", index(self.client_turn_fields).by_path)
        # The relay options: a blank limit takes its default; a limit on a preset without relay is refused.
        given = {
            spec.form_name: cleaned.get(spec.form_name)
            for spec in self.relay_fields
            if cleaned.get(spec.form_name) is not None
        }
        try:
            cleaned["relay_options"] = validate_relay_options(given)
        except PresetValidationError as exc:
            self._add_field_errors(exc, "", index(self.relay_fields).by_path)
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
        if cleaned.get("default") and cleaned.get("active") is False:
            self.add_error("default", _("The default preset must be active."))
        return cleaned

    def _add_field_errors(
        self, exc: PresetValidationError, prefix: str, by_path: dict[str, SessionField]
    ) -> None:
        """Each validator message on the form field of its path (or the form itself)."""
        for path, messages in exc.errors.items():
            spec = by_path.get(path.removeprefix(prefix))
            field = spec.form_name if spec is not None else None
            if field is None or field not in self.errors:
                self.add_error(field if field in self.fields else None, messages)

    def save(self, commit: bool = True) -> SessionPreset:
        self.instance.session = self.cleaned_data["session"]
        self.instance.client_turns = self.cleaned_data.get("client_turns")
        self.instance.overridable = list(self.cleaned_data.get("overridable") or [])
        for name, value in (self.cleaned_data.get("relay_options") or {}).items():
            setattr(self.instance, name, value)
        return super().save(commit)


def session_form_class(fields: tuple[SessionField, ...] = FIELDS) -> type[SessionPresetFormBase]:
    """The preset form with one field per value of `fields` (FIELDS, or a test's extended copy)."""
    leaves = _leaves(fields)
    names = [spec.form_name for spec in leaves]
    assert len(set(names)) == len(names), f"two session fields share a form field: {names}"
    attrs: dict[str, Any] = {"session_fields": fields, "__module__": __name__}
    attrs.update({spec.form_name: form_field(spec, fields) for spec in leaves})
    attrs.update({spec.form_name: form_field(spec, CLIENT_TURNS_FIELDS) for spec in CLIENT_TURNS_FIELDS})
    attrs.update({spec.form_name: form_field(spec, RELAY_FIELDS) for spec in RELAY_FIELDS})
    return type("SessionPresetForm", (SessionPresetFormBase,), attrs)


SessionPresetForm = session_form_class()


def session_fieldsets(
    fields: tuple[SessionField, ...] = FIELDS, stored: dict[str, Any] | None = None
) -> list[tuple[Any, Any]]:
    """The admin fieldsets of the session fields: one per group, in the description's order.

    With `stored` (a preset's session, or its client_turns), a group that sets none of its fields, and
    holds no required one, is collapsed: most presets leave most settings to the upstream's defaults.
    """
    groups: dict[str, tuple[Any, list[SessionField]]] = {}
    for spec in _leaves(fields):
        groups.setdefault(str(spec.group), (spec.group, []))[1].append(spec)
    fieldsets = []
    for label, specs in groups.values():
        options: dict[str, Any] = {"fields": [spec.form_name for spec in specs]}
        if stored is not None and not any(_required(spec, fields) or _is_set(stored, spec) for spec in specs):
            options["classes"] = ["collapse"]
        fieldsets.append((label, options))
    return fieldsets


def _required(spec: SessionField, fields: tuple[SessionField, ...]) -> bool:
    """Required in every session (the model), not only inside an object that may be left out."""
    by_path = index(fields).by_path
    while spec.required:
        if not spec.parent:
            return True
        spec = by_path[spec.parent]
    return False


def _is_set(stored: dict[str, Any], spec: SessionField) -> bool:
    """Whether a stored session sets this field, or (for the select that switches its object) turns the
    object off: null is shown as "Off"."""
    if lookup(stored, spec.path)[0]:
        return True
    present, parent = lookup(stored, spec.parent) if spec.selector else (False, None)
    return present and parent is None


def relay_initial(preset: Any, fields: tuple[SessionField, ...] = RELAY_FIELDS) -> dict[str, Any]:
    """The relay fields' initial values: a relay preset's options; blank limits for any other preset."""
    if not preset.relay:
        return {spec.form_name: (False if spec.rule.kind == "boolean" else None) for spec in fields}
    return {spec.form_name: getattr(preset, spec.name) for spec in fields}


def relay_stored(preset: Any) -> dict[str, Any]:
    """What `session_fieldsets(RELAY_FIELDS, stored=…)` folds by: nothing set unless a relay preset."""
    return {spec.name: getattr(preset, spec.name) for spec in RELAY_FIELDS} if preset.relay else {}


def session_initial(session: dict[str, Any], fields: tuple[SessionField, ...] = FIELDS) -> dict[str, Any]:
    """The form fields' initial values for a stored session."""
    initial: dict[str, Any] = {}
    for spec in _leaves(fields):
        present, value = lookup(session, spec.path)
        if spec.selector:
            parent_present, parent = lookup(session, spec.parent)
            if parent_present and parent is None:
                initial[spec.form_name] = OFF
                continue
            if parent_present and not present and spec.default is not None:
                value, present = spec.default, True
        if not present or value is None:
            initial[spec.form_name] = [] if _is_choice_list(spec) else NOT_SENT
        elif spec.rule.kind == "list" and not _is_choice_list(spec):
            initial[spec.form_name] = "\n".join(str(item) for item in value)
        else:
            initial[spec.form_name] = value
    return initial


def build_session(
    data: dict[str, Any], fields: tuple[SessionField, ...] = FIELDS
) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The session dict (the beta endpoint's vocabulary) that the form's fields describe.

    Also returns (form field, message) for values given where their object is not sent.
    """
    session: dict[str, Any] = {}
    misplaced: list[tuple[str, Any]] = []
    for spec in _leaves(fields):
        value = _form_value(spec, data.get(spec.form_name))
        if value is _NOT_SENT:
            continue
        if value is _OFF:
            set_path(session, spec.parent, None)
            continue
        selector = _selector_of(spec, fields)
        if selector is not None and data.get(selector.form_name) in (NOT_SENT, OFF, None):
            misplaced.append(
                (
                    spec.form_name,
                    _("Only used when %(what)s is on: choose it above.") % {"what": selector.label},
                )
            )
            continue
        set_path(session, spec.path, value)
    return session, misplaced


_NOT_SENT = object()
_OFF = object()


def _is_choice_list(spec: SessionField) -> bool:
    return spec.rule.kind == "list" and spec.rule.items is not None and spec.rule.items.kind == "choice"


def _form_value(spec: SessionField, raw: Any) -> Any:
    if spec.selector and raw == OFF:
        return _OFF
    if raw is None or raw == NOT_SENT or raw == []:
        return _NOT_SENT
    if spec.rule.kind == "list" and not _is_choice_list(spec):
        items = [line.strip() for line in str(raw).splitlines() if line.strip()]
        return items or _NOT_SENT
    return list(raw) if _is_choice_list(spec) else raw
