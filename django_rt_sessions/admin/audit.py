"""The audit log's admin: read-only, built for investigations on large tables (docs/admin.md)."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..audit import export as audit_export
from ..audit import report as audit_report
from ..issuing import fingerprint
from ..models import SessionPreset, TokenRequest
from .presets import preset_pk

logger = logging.getLogger("django_rt_sessions.admin")


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


# The audit row's page: every field, in the export's order (audit/export.py holds the list), read-only,
# with links instead of raw ids, the outcome as its badge and the sent body pretty-printed; then the relay
# session the row opened, if any.
_SHOWN_AS = {
    "id": None,
    "user_id": "user_link",
    "preset_id": "preset_link",
    "outcome": "outcome_badge",
    "session_config": "sent_body",
}
DETAIL_FIELDS = (
    *(shown for name in audit_export.EXPORT_FIELDS if (shown := _SHOWN_AS.get(name, name)) is not None),
    "relay_session_link",
)


@admin.register(TokenRequest)
class TokenRequestAdmin(admin.ModelAdmin):
    """Read-only for everyone: rows are written by the issuing service, removed by rt_sessions_prune
    (or by a superuser). The ephemeral key is never stored; its fingerprint is."""

    change_list_template = "admin/django_rt_sessions/tokenrequest/change_list.html"
    # Short cells, so that every column fits a 1,400 px screen beside the filters and the admin's menu.
    list_display = [
        "time",
        "username",
        "preset_name",
        "outcome_badge",
        "status_code",
        "upstream_ms",
        "key_expires",
        "ip",
    ]
    list_display_links = ["time"]

    class Media:
        css = {"all": ["django_rt_sessions/admin.css"]}

    list_filter = [OutcomeFilter, "origin", PresetFilter, ("created_at", admin.DateFieldListFilter)]
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

    @admin.display(description=_("time"), ordering="created_at")
    def time(self, obj: TokenRequest) -> str:
        local = timezone.localtime(obj.created_at)
        return format_html("{}<br>{}", local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S"))

    @admin.display(description=_("key expires"), ordering="expires_at")
    def key_expires(self, obj: TokenRequest) -> str:
        if obj.expires_at is None:
            return "—"
        local = timezone.localtime(obj.expires_at)
        return format_html('<span title="{}">{}</span>', local.isoformat(), local.strftime("%H:%M:%S"))

    @admin.display(description=_("client IP"), ordering="client_ip")
    def ip(self, obj: TokenRequest) -> str:
        # An IPv6 address may break anywhere rather than widen the table.
        return format_html('<span style="word-break:break-all">{}</span>', obj.client_ip or "—")

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

    @admin.display(description=_("relay session"))
    def relay_session_link(self, obj: TokenRequest) -> str:
        """For a relay ticket: the session it opened (docs/relay.md#staff)."""
        row = obj.relay_sessions.first()
        if row is None:
            return "—"
        url = reverse("admin:django_rt_sessions_relaysession_change", args=[row.pk])
        return format_html('<a href="{}">{}</a>', url, row.pk)

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
