from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import SessionPreset, TokenRequest
from .presets import PresetValidationError, validate_preset_options, validate_session


class SessionPresetForm(forms.ModelForm):
    class Meta:
        model = SessionPreset
        fields = [
            "name",
            "title",
            "description",
            "active",
            "default",
            "groups",
            "session",
            "expires_after_seconds",
            "overridable",
            "rate",
        ]

    def clean_session(self) -> dict[str, Any]:
        try:
            return validate_session(self.cleaned_data.get("session") or {})
        except PresetValidationError as exc:
            raise forms.ValidationError(
                [f"{field}: {' '.join(msgs)}" for field, msgs in exc.errors.items()]
            ) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        try:
            validate_preset_options(
                cleaned.get("expires_after_seconds"),
                cleaned.get("overridable") or [],
                cleaned.get("rate") or "",
            )
        except PresetValidationError as exc:
            for field, messages in exc.errors.items():
                self.add_error(field, messages)
        return cleaned


@admin.register(SessionPreset)
class SessionPresetAdmin(admin.ModelAdmin):
    form = SessionPresetForm
    list_display = ["name", "title", "active", "default", "expires_after_seconds", "rate", "updated_at"]
    list_filter = ["active", "default"]
    search_fields = ["name", "title", "description"]
    filter_horizontal = ["groups"]
    readonly_fields = ["created_at", "updated_at", "updated_by"]

    def save_model(self, request: HttpRequest, obj: SessionPreset, form: Any, change: bool) -> None:
        obj.updated_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


@admin.register(TokenRequest)
class TokenRequestAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is written by the issuing service only."""

    list_display = [
        "created_at",
        "username",
        "preset_name",
        "outcome",
        "status_code",
        "upstream_ms",
        "client_ip",
    ]
    list_filter = ["outcome", "created_at"]
    search_fields = [
        "username",
        "client_ip",
        "upstream_session_id",
        "upstream_request_id",
        "secret_fingerprint",
    ]
    date_hierarchy = "created_at"
    list_select_related = ["user", "preset"]
    show_full_result_count = False  # no COUNT(*) over the whole audit table on every page
    raw_id_fields = ["user", "preset"]
    exclude = ["session_config"]
    readonly_fields = ["sent_body"]

    @admin.display(description=_("body sent upstream"))
    def sent_body(self, obj: TokenRequest) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.session_config, indent=2, sort_keys=True))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name != "session_config"] + ["sent_body"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)
