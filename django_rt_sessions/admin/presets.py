"""The preset admin: presets edited in plain fields, the exact body a request would send, a test token."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_variables

from ..api import error_reports
from ..conf import rt_settings
from ..errors import IssueError
from ..issuing import IssueContext, fingerprint, issue_session
from ..issuing.planning import plan_session
from ..models import SessionPreset, TokenRequest
from ..presets import cache as preset_cache
from ..sessions import catalog
from ..sessions.fields import CLIENT_TURNS_FIELDS, RELAY_FIELDS, index, lookup, model_of
from ..upstreams import get_upstream
from .forms import SessionPresetForm, relay_stored, session_fieldsets

logger = logging.getLogger("django_rt_sessions.admin")
FIELD_INDEX = index()

# ---------------------------------------------------------------------------------------------- presets

TEST_TOKEN_PERMISSION = "issue_test_token"  # noqa: S105 (a permission codename, SessionPreset.Meta)


@admin.register(SessionPreset)
class SessionPresetAdmin(admin.ModelAdmin):
    form = SessionPresetForm
    change_form_template = "admin/django_rt_sessions/sessionpreset/change_form.html"
    # Short cells, so that every column fits a 1,400 px screen beside the filters and the admin's menu.
    list_display = [
        "preset",
        "model_name",
        "language",
        "vad_summary",
        "lifetime",
        "limits",
        "group_names",
        "last_changed",
    ]
    list_display_links = ["preset"]

    class Media:
        css = {"all": ["django_rt_sessions/admin.css"]}

    list_filter = ["active", "default", "groups"]
    search_fields = ["name", "title", "description"]
    readonly_fields = ["created_at", "updated_at", "updated_by"]
    actions = ["duplicate", "activate", "deactivate", "make_default"]
    fieldsets = [
        (
            _("Identity and access"),
            {"fields": ["name", "title", "description", "active", "default", "groups"]},
        ),
        # One fieldset per group of the session fields' description (Audio, Transcription, Turn detection).
        *session_fieldsets(),
        *session_fieldsets(CLIENT_TURNS_FIELDS),
        *session_fieldsets(RELAY_FIELDS),
        (_("Token lifetime and limits"), {"fields": ["expires_after_seconds", "rate", "daily_quota"]}),
        (_("What users may override"), {"fields": ["overridable"]}),
    ]
    change_fieldsets = [
        (_("History"), {"fields": ["created_at", "updated_at", "updated_by"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: SessionPreset | None = None) -> list:
        identity, *_session, limits, overridable = self.fieldsets
        session = (obj.session or {}) if obj else {}
        client_turns = (obj.client_turns or {}) if obj else {}
        return [
            identity,
            *session_fieldsets(stored=session),
            *session_fieldsets(CLIENT_TURNS_FIELDS, stored=client_turns),
            # Folded unless this is a relay preset.
            *session_fieldsets(RELAY_FIELDS, stored=relay_stored(obj) if obj else {}),
            limits,
            overridable,
            *(self.change_fieldsets if obj else []),
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("updated_by").prefetch_related("groups")

    def save_model(self, request: HttpRequest, obj: SessionPreset, form: Any, change: bool) -> None:
        obj.updated_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        preset = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        if preset is not None:
            extra["rt_preview"] = self.upstream_preview(request, preset)
            retiring = catalog.retiring(model_of(preset.session))
            if retiring is not None and request.method == "GET":
                self.message_user(request, retiring.retirement_notice(preset.name), messages.WARNING)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def upstream_preview(self, request: HttpRequest, preset: SessionPreset) -> dict[str, Any]:
        """The exact body a request by this staff user would send: the issuance's own planning step."""
        upstream = get_upstream()
        preview: dict[str, Any] = {"url": upstream.url(rt_settings.BASE_URL), "upstream": upstream.name}
        try:
            plan = plan_session(request.user, preset, {}, request=request, upstream=upstream)
        except IssueError as error:
            preview["refusal"] = f"{error.status} {error.code} ({error.error_code or error.code}): " + (
                error.error_message or error.detail
            )
        else:
            preview["body"] = json.dumps(plan.body, indent=2)
        return preview

    # -- list columns

    @admin.display(description=_("model"))
    def model_name(self, obj: SessionPreset) -> str:
        model = model_of(obj.session)
        retiring = catalog.retiring(model)
        if retiring is None or retiring.shutdown is None:
            return model or "—"
        when = (_("shut down %(date)s") if retiring.is_shut_down() else _("shuts down %(date)s")) % {
            "date": retiring.shutdown.isoformat()
        }
        return format_html(
            '{} <span class="rt-retiring" title="{}" style="color:#b45309;white-space:nowrap">⚠ {}</span>',
            model,
            retiring.retirement_notice(obj.name),
            when,
        )

    @admin.display(description=_("language"))
    def language(self, obj: SessionPreset) -> str:
        transcription = obj.session.get("input_audio_transcription") or {}
        languages = transcription.get("languages") or [transcription.get("language")]
        return ", ".join(str(code) for code in languages if code) or str(_("auto"))

    @admin.display(description=_("turn detection"))
    def vad_summary(self, obj: SessionPreset) -> str:
        """The preset's turn detection as stored, each value with its label (nothing the preset leaves to
        the upstream's defaults is shown as if it were set)."""
        present, vad = lookup(obj.session, "turn_detection")
        if not present:
            return str(_("default"))  # not sent: the upstream's default
        if not isinstance(vad, dict):
            return str(_("off"))
        settings = [
            f"{spec.label}: {vad[spec.name]}"
            for spec in FIELD_INDEX.children.get("turn_detection", [])
            if spec.name != "type" and spec.name in vad
        ]
        return " · ".join([str(vad.get("type", "")), *settings])

    @admin.display(description=_("preset"), ordering="name")
    def preset(self, obj: SessionPreset) -> str:
        # The preset's state beside its name (the list filters on both): one column fewer.
        state = _("(default)") if obj.default else ("" if obj.active else _("(inactive)"))
        marker = format_html(' <strong class="rt-state">{}</strong>', state) if state else ""
        title = format_html('<br><span class="quiet">{}</span>', obj.title) if obj.title else ""
        return format_html("{}{}{}", obj.name, marker, title)

    @admin.display(description=_("key lifetime"), ordering="expires_after_seconds")
    def lifetime(self, obj: SessionPreset) -> str:
        return f"{obj.expires_after_seconds} s"

    @admin.display(description=_("limits"))
    def limits(self, obj: SessionPreset) -> str:
        if obj.rate:
            rate = format_html("{}", obj.rate)
        else:
            rate = format_html("{}<br>{}", rt_settings.USER_RATE or _("none"), _("(USER_RATE)"))
        if obj.daily_quota:
            rate = format_html("{}<br>{}", rate, _("%(count)d a day") % {"count": obj.daily_quota})
        if obj.relay:
            rate = format_html(
                '{}<br><span class="rt-relay">{}</span>',
                rate,
                _("relayed, ≤ %(seconds)d s") % {"seconds": obj.max_session_seconds},
            )
        return rate

    @admin.display(description=_("groups"))
    def group_names(self, obj: SessionPreset) -> str:
        return ", ".join(sorted(g.name for g in obj.groups.all())) or str(_("everyone"))

    @admin.display(description=_("last changed"), ordering="updated_at")
    def last_changed(self, obj: SessionPreset) -> str:
        when = timezone.localtime(obj.updated_at).strftime("%Y-%m-%d %H:%M")
        if obj.updated_by is None:
            return when
        return format_html(
            '<span style="white-space:nowrap">{}</span><br>{}', when, obj.updated_by.get_username()
        )

    # -- actions

    @admin.action(description=_("Duplicate the selected presets (copies start inactive)"))
    def duplicate(self, request: HttpRequest, queryset: QuerySet) -> None:
        names = set(SessionPreset.objects.values_list("name", flat=True))
        copies = []
        for preset in queryset:
            name = _unique_name(f"{preset.name}-copy", names)
            names.add(name)
            groups = list(preset.groups.all())
            # The admin queryset prefetches groups: drop that cache, or set() would think them linked.
            preset._prefetched_objects_cache = {}
            preset.pk = preset.id = None
            preset._state.adding = True
            preset.name, preset.default, preset.active, preset.updated_by = name, False, False, request.user
            preset.title = f"{preset.title} (copy)" if preset.title else ""
            preset.save()
            preset.groups.set(groups)
            copies.append(name)
        self.message_user(request, _("Created %(names)s.") % {"names": ", ".join(copies)}, messages.SUCCESS)

    @admin.action(description=_("Activate the selected presets"))
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(active=True, updated_at=timezone.now(), updated_by=request.user)
        preset_cache.invalidate()  # update() sends no signal
        self.message_user(request, ngettext("Activated %d preset.", "Activated %d presets.", count) % count)

    @admin.action(description=_("Deactivate the selected presets"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.filter(default=True).exists():
            self.message_user(
                request,
                _("The default preset is now inactive: requests naming no preset get preset_not_found."),
                messages.WARNING,
            )
        count = queryset.update(active=False, updated_at=timezone.now(), updated_by=request.user)
        preset_cache.invalidate()  # update() sends no signal
        self.message_user(
            request, ngettext("Deactivated %d preset.", "Deactivated %d presets.", count) % count
        )

    @admin.action(description=_("Make the selected preset the default"))
    def make_default(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one preset to make it the default."), messages.ERROR)
            return
        preset = queryset.get()
        with transaction.atomic():
            SessionPreset.objects.filter(default=True).exclude(pk=preset.pk).update(default=False)
            SessionPreset.objects.filter(pk=preset.pk).update(
                default=True, active=True, updated_at=timezone.now(), updated_by=request.user
            )
            preset_cache.invalidate()  # update() sends no signal
        self.message_user(
            request, _("%(name)s is now the default preset.") % {"name": preset.name}, messages.SUCCESS
        )

    # -- "Issue a test token"

    def has_test_token_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return bool(request.user.has_perm(f"{opts.app_label}.{TEST_TOKEN_PERMISSION}"))

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context["rt_can_issue_test_token"] = self.has_test_token_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    def get_urls(self) -> list:
        # non_atomic_requests: the audit row of the test must be committed even on a site with
        # ATOMIC_REQUESTS, and no transaction should stay open during the upstream call.
        view = transaction.non_atomic_requests(self.admin_site.admin_view(self.test_token_view))
        return [
            path("<path:object_id>/test-token/", view, name="django_rt_sessions_sessionpreset_test_token"),
            *super().get_urls(),
        ]

    @method_decorator(sensitive_variables("issued", "body", "secret"))
    def test_token_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        error_reports.protect(request)  # no key in a debug page or its DEBUG logging
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        pk = preset_pk(unquote(object_id))
        preset = self.get_object(request, str(pk)) if pk is not None else None
        if preset is None:
            raise Http404
        if not self.has_test_token_permission(request):
            raise PermissionDenied
        page = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": preset,
            "title": _("Test token for %(name)s") % {"name": preset.name},
        }
        template = "admin/django_rt_sessions/sessionpreset/test_token.html"
        if request.method == "GET" or request.POST.get("confirm") != "yes":
            # A test token is a real, billed key: ask first, with what it will do.
            return TemplateResponse(request, template, {**page, "confirm": True})
        context = IssueContext.from_request(request, request.user, origin=TokenRequest.Origin.ADMIN)
        outcome: dict[str, Any]
        try:
            issued = issue_session(context, {"preset": preset.name})
        except IssueError as error:
            outcome = {
                "ok": False,
                "status": error.status,
                "code": error.code,
                "detail": error.detail,
                # Staff may read the upstream's own words (users never do).
                "upstream_status": getattr(error, "upstream_status", None),
                "upstream_code": getattr(error, "error_code", ""),
                "upstream_message": getattr(error, "error_message", ""),
                "row": getattr(error, "token_request", None),
            }
        else:
            body = dict(issued.body)
            secret = body.pop("client_secret")
            outcome = {
                "ok": True,
                "status": 201,
                "row": issued.token_request,
                # The key itself is never shown in the admin; its fingerprint identifies it.
                "fingerprint": fingerprint(secret["value"]),
                "expires_at": secret["expires_at"],
                **_expiry(secret["expires_at"]),
                "session_json": json.dumps(body, indent=2),
            }
        return TemplateResponse(request, template, {**page, "outcome": outcome})


def _expiry(expires_at: Any) -> dict[str, Any]:
    """The key's expiry (Unix time) as an aware datetime and the seconds left, for the test-token page."""
    try:
        moment = dt.datetime.fromtimestamp(int(expires_at), tz=dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return {}
    return {"expires": moment, "expires_in": max(0, int((moment - timezone.now()).total_seconds()))}


def preset_pk(value: str) -> int | None:
    """`value` as a preset primary key, or None when it cannot be one (not a number, out of range)."""
    try:
        # clean() runs the field's validators, which include the database's integer range.
        return int(SessionPreset._meta.pk.clean(value, None))
    except ValidationError:
        return None


def _unique_name(base: str, taken: set[str]) -> str:
    base = base[:58]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name
