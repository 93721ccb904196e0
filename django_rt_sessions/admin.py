"""The staff experience: presets edited in plain fields, an audit log built for investigations."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import re
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_variables

from . import audit_export, audit_report, error_reports, preset_cache
from .admin_forms import SessionPresetForm, session_fieldsets
from .conf import rt_settings
from .errors import IssueError
from .issuing import IssueContext, fingerprint, issue_session
from .lifecycle import retirement_of
from .models import SessionPreset, TokenRequest
from .planning import plan_session
from .session_fields import model_of
from .upstreams import get_upstream

logger = logging.getLogger("django_rt_sessions.admin")

# ---------------------------------------------------------------------------------------------- presets

TEST_TOKEN_PERMISSION = "issue_test_token"  # noqa: S105 (a permission codename, SessionPreset.Meta)


@admin.register(SessionPreset)
class SessionPresetAdmin(admin.ModelAdmin):
    form = SessionPresetForm
    change_form_template = "admin/django_rt_sessions/sessionpreset/change_form.html"
    list_display = [
        "name",
        "title",
        "active",
        "default",
        "model_name",
        "language",
        "vad_summary",
        "expires_after_seconds",
        "rate_display",
        "daily_quota",
        "group_names",
        "last_changed",
    ]
    list_filter = ["active", "default", "groups"]
    search_fields = ["name", "title", "description"]
    filter_horizontal = ["groups"]
    readonly_fields = ["created_at", "updated_at", "updated_by"]
    actions = ["duplicate", "activate", "deactivate", "make_default"]
    fieldsets = [
        (
            _("Identity and access"),
            {"fields": ["name", "title", "description", "active", "default", "groups"]},
        ),
        # One fieldset per group of the session fields' description (Audio, Transcription, Turn detection).
        *session_fieldsets(),
        (_("Token lifetime and limits"), {"fields": ["expires_after_seconds", "rate", "daily_quota"]}),
        (_("What users may override"), {"fields": ["overridable"]}),
    ]
    change_fieldsets = [
        (_("History"), {"fields": ["created_at", "updated_at", "updated_by"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: SessionPreset | None = None) -> list:
        return self.fieldsets + (self.change_fieldsets if obj else [])

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
            retirement = retirement_of(model_of(preset.session))
            if retirement is not None and request.method == "GET":
                self.message_user(request, retirement.notice(preset.name), messages.WARNING)
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
        retirement = retirement_of(model)
        if retirement is None:
            return model or "—"
        when = (_("shut down %(date)s") if retirement.is_past() else _("shuts down %(date)s")) % {
            "date": retirement.shutdown.isoformat()
        }
        return format_html(
            '{} <span class="rt-retiring" title="{}" style="color:#b45309;white-space:nowrap">⚠ {}</span>',
            model,
            retirement.notice(obj.name),
            when,
        )

    @admin.display(description=_("language"))
    def language(self, obj: SessionPreset) -> str:
        return (obj.session.get("input_audio_transcription") or {}).get("language") or str(_("auto"))

    @admin.display(description=_("turn detection"))
    def vad_summary(self, obj: SessionPreset) -> str:
        if "turn_detection" not in obj.session:
            return str(_("default"))
        vad = obj.session["turn_detection"]
        if vad is None:
            return str(_("off"))
        return "VAD {} · {} ms · {} ms".format(
            vad.get("threshold", "0.5"),
            vad.get("prefix_padding_ms", 300),
            vad.get("silence_duration_ms", 500),
        )

    @admin.display(description=_("rate"))
    def rate_display(self, obj: SessionPreset) -> str:
        return obj.rate or str(_("%(rate)s (USER_RATE)") % {"rate": rt_settings.USER_RATE or "none"})

    @admin.display(description=_("groups"))
    def group_names(self, obj: SessionPreset) -> str:
        return ", ".join(sorted(g.name for g in obj.groups.all())) or str(_("everyone"))

    @admin.display(description=_("last changed"), ordering="updated_at")
    def last_changed(self, obj: SessionPreset) -> str:
        when = timezone.localtime(obj.updated_at).strftime("%Y-%m-%d %H:%M")
        return f"{when} · {obj.updated_by.get_username()}" if obj.updated_by else when

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
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        pk = preset_pk(unquote(object_id))
        preset = self.get_object(request, str(pk)) if pk is not None else None
        if preset is None:
            raise Http404
        if not self.has_test_token_permission(request):
            raise PermissionDenied
        context = IssueContext.from_request(request, request.user)
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
        return TemplateResponse(
            request,
            "admin/django_rt_sessions/sessionpreset/test_token.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": preset,
                "title": _("Test token for %(name)s") % {"name": preset.name},
                "outcome": outcome,
            },
        )


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


# ------------------------------------------------------------------------------------------- audit log


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered audit table from PostgreSQL's statistics instead of a COUNT(*) scan.

    Filtered lists are counted exactly (the filter narrows the scan); an estimate is only used above
    ESTIMATE_ABOVE rows, where the last page number being a little off does not matter.
    """

    ESTIMATE_ABOVE = 100_000

    @cached_property
    def count(self) -> int:
        queryset = cast(QuerySet, self.object_list)
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [connection.ops.quote_name(queryset.model._meta.db_table)],
                )
                row = cursor.fetchone()
            if row and row[0] > self.ESTIMATE_ABOVE:
                return int(row[0])
        return super().count


class OutcomeFilter(admin.SimpleListFilter):
    title = _("outcome")
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list:
        return list(TokenRequest.Outcome.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(outcome=self.value()) if self.value() else queryset


class PresetFilter(admin.SimpleListFilter):
    """Lists presets from the preset table (small), never DISTINCT over the audit table."""

    title = _("preset")
    parameter_name = "preset"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list:
        return [
            (str(pk), name) for pk, name in SessionPreset.objects.order_by("name").values_list("pk", "name")
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        pk = preset_pk(value)
        if pk is None:
            # The changelist answers it as any bad lookup (back to the list, ?e=1); the export with 400.
            raise IncorrectLookupParameters(f"preset={value!r} is not a preset id.")
        return queryset.filter(preset_id=pk)


HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


# The audit row's page: every field, read-only, links instead of raw ids, the sent body pretty-printed.
DETAIL_FIELDS = (
    "created_at",
    "user_link",
    "username",
    "preset_link",
    "preset_name",
    "outcome_badge",
    "status_code",
    "upstream",
    "upstream_status",
    "upstream_request_id",
    "upstream_ms",
    "error_code",
    "error_message",
    "upstream_session_id",
    "expires_at",
    "secret_fingerprint",
    "client_ip",
    "user_agent",
    "sent_body",
)


@admin.register(TokenRequest)
class TokenRequestAdmin(admin.ModelAdmin):
    """Read-only for everyone: rows are written by the issuing service, removed by rt_sessions_prune
    (or by a superuser). The ephemeral key is never stored; its fingerprint is."""

    change_list_template = "admin/django_rt_sessions/tokenrequest/change_list.html"
    list_display = [
        "created_at",
        "username",
        "preset_name",
        "outcome_badge",
        "status_code",
        "upstream_ms",
        "expires_at",
        "client_ip",
    ]
    list_filter = [OutcomeFilter, PresetFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["username"]  # see get_search_results: each kind of term goes to its own index
    search_help_text = _(
        "A username, client IP, upstream session id (sess_…), request id (req_…) or key fingerprint (64 hex)."
    )
    date_hierarchy = "created_at"
    list_select_related = ["user", "preset"]
    show_full_result_count = False  # no COUNT(*) over the whole table on every page view
    paginator = EstimatedCountPaginator
    list_per_page = 100
    fields = DETAIL_FIELDS
    readonly_fields = DETAIL_FIELDS

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple:
        """Exact matches on indexed columns, chosen by the shape of the term: never a table scan."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if HEX64.match(term):
            return queryset.filter(secret_fingerprint=term.lower()), False
        if term.startswith("sess_"):
            return queryset.filter(upstream_session_id=term), False
        if term.startswith("req_"):
            return queryset.filter(upstream_request_id=term), False
        try:
            return queryset.filter(client_ip=str(ipaddress.ip_address(term))), False
        except ValueError:
            return queryset.filter(username=term), False

    @admin.display(description=_("outcome"), ordering="outcome")
    def outcome_badge(self, obj: TokenRequest) -> str:
        colour = audit_report.OUTCOME_COLOURS.get(obj.outcome, "#555")
        return format_html(
            '<span class="rt-outcome" style="background:{};color:#fff;padding:1px 6px;border-radius:8px;'
            'white-space:nowrap">{}</span>',
            colour,
            obj.get_outcome_display(),
        )

    @admin.display(description=_("user"))
    def user_link(self, obj: TokenRequest) -> str:
        user = obj.user
        if user is None:
            return str(_("(deleted)")) if obj.username else "—"
        meta = user._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[user.pk])
        return format_html('<a href="{}">{}</a>', url, user.get_username())

    @admin.display(description=_("preset"))
    def preset_link(self, obj: TokenRequest) -> str:
        preset = obj.preset
        if preset is None:
            return str(_("(deleted)")) if obj.preset_name else "—"
        url = reverse("admin:django_rt_sessions_sessionpreset_change", args=[preset.pk])
        return format_html('<a href="{}">{}</a>', url, preset.name)

    @admin.display(description=_("body sent upstream"))
    def sent_body(self, obj: TokenRequest) -> str:
        if obj.session_config is None:
            return str(_("(nothing was sent)"))
        return format_html("<pre>{}</pre>", json.dumps(obj.session_config, indent=2, sort_keys=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    # -- summary above the list, export, key lookup

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), **self.summary_context()}
        return super().changelist_view(request, extra_context)

    def summary_context(self) -> dict[str, Any]:
        # The chart is the same for every viewer and changes slowly: one grouped query a minute at most.
        today = timezone.localdate().isoformat()
        key = f"rt_sessions:audit-summary:{today}"
        try:
            summary = cache.get(key)
        except Exception as exc:  # the cache is down (Redis outage): the page must still answer
            logger.warning("Audit summary computed without the cache (%s).", type(exc).__name__)
            return self._summary()
        if summary is None:
            summary = self._summary()
            try:
                cache.set(key, summary, 60)
            except Exception as exc:  # went down in between
                logger.warning("Audit summary computed without the cache (%s).", type(exc).__name__)
        return summary

    def _summary(self) -> dict[str, Any]:
        return {
            "rt_chart": audit_report.render_chart(audit_report.daily_outcomes()),
            "rt_top_requesters": audit_report.top_requesters(),
        }

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("export.csv", wrap(self.export_view), name="django_rt_sessions_tokenrequest_export"),
            path(
                "who-received/",
                wrap(self.who_received_view),
                name="django_rt_sessions_tokenrequest_who_received",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        """The changelist's current selection (filters, search, date drill-down) as a streamed CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters as exc:
            return HttpResponseBadRequest(
                f"Invalid filter parameters: {exc}", content_type="text/plain; charset=utf-8"
            )
        queryset = changelist.get_queryset(request).order_by("-created_at", "-id")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(
            audit_export.csv_lines(queryset), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="token-requests-{stamp}.csv"'
        response["Cache-Control"] = "no-store"
        return response

    def who_received_view(self, request: HttpRequest) -> HttpResponse:
        """Paste a leaked ephemeral key (POST only: a key must never land in a URL or an access log)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = None
        searched = False
        if request.method == "POST":
            key = request.POST.get("key", "").strip()
            searched = bool(key)
            if key:
                rows = list(
                    TokenRequest.objects.filter(secret_fingerprint=fingerprint(key)).select_related(
                        "user", "preset"
                    )
                )
        return TemplateResponse(
            request,
            "admin/django_rt_sessions/tokenrequest/who_received.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Who received this key?"),
                "rows": rows,
                "searched": searched,
            },
        )
