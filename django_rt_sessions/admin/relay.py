"""The relayed sessions' admin: open sessions first, their minutes, the audit row that minted each, the
"End session" action, and minutes per user and per preset over the last 30 days (docs/relay.md#staff).

Read-only like the audit log; importable without Channels (ending a session goes through relay.control)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.db.models import F, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import RelaySession
from ..relay import control

END_PERMISSION = "end_relay_session"
STATS_DAYS = 30
STATS_ROWS = 10


class OpenFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list:
        return [("yes", _("open")), ("no", _("ended"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(ended_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(ended_at__isnull=False)
        return queryset


@admin.register(RelaySession)
class RelaySessionAdmin(admin.ModelAdmin):
    change_list_template = "admin/django_rt_sessions/relaysession/change_list.html"
    list_display = [
        "id",
        "username",
        "preset_name",
        "started_at",
        "duration",
        "audio_minutes",
        "end_reason_shown",
        "audit_link",
    ]
    list_filter = [OpenFilter, "end_reason"]
    search_fields = ["=id", "username", "preset_name"]
    list_select_related = ["token_request"]
    show_full_result_count = False
    date_hierarchy = "started_at"  # indexed (rt_relay_started)
    actions = ["end_sessions"]
    fields = (
        "id",
        "username",
        "user",
        "preset_name",
        "preset",
        "audit_link",
        "started_at",
        "ended_at",
        "end_reason",
        "duration",
        "audio_seconds",
        "upstream_audio_seconds",
        "upstream_tokens",
        "turns",
        "client_ip",
        "user_agent",
        "last_seen_at",
        "relay_process",
        "end_requested_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Open sessions first, newest first.
        return super().get_queryset(request).order_by(F("ended_at").desc(nulls_first=True), "-started_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_end_relay_session_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(f"{self.opts.app_label}.{END_PERMISSION}"))

    # -- columns

    @admin.display(description=_("duration"))
    def duration(self, obj: RelaySession) -> str:
        end = obj.ended_at or timezone.now()
        seconds = max(0, int((end - obj.started_at).total_seconds()))
        shown = f"{seconds // 60}:{seconds % 60:02d}"
        return shown if obj.ended_at else format_html("{} <strong>{}</strong>", shown, _("open"))

    @admin.display(description=_("audio (min)"), ordering="audio_seconds")
    def audio_minutes(self, obj: RelaySession) -> str:
        return f"{obj.audio_seconds / 60:.2f}"

    @admin.display(description=_("end reason"), ordering="end_reason")
    def end_reason_shown(self, obj: RelaySession) -> str:
        return obj.get_end_reason_display() if obj.end_reason else "—"

    @admin.display(description=_("audit row"))
    def audit_link(self, obj: RelaySession) -> str:
        if obj.token_request_id is None:
            return "—"
        url = reverse("admin:django_rt_sessions_tokenrequest_change", args=[obj.token_request_id])
        return format_html('<a href="{}">#{}</a>', url, obj.token_request_id)

    # -- "End session"

    @admin.action(description=_("End the selected sessions"), permissions=[END_PERMISSION])
    def end_sessions(self, request: HttpRequest, queryset: QuerySet) -> None:
        ended = control.end_sessions(queryset.filter(ended_at__isnull=True).values_list("pk", flat=True))
        count = len(ended)
        if count:
            self.message_user(
                request,
                ngettext(
                    "Asked %d session to end: it ends within 2 seconds wherever it runs.",
                    "Asked %d sessions to end: they end within 2 seconds wherever they run.",
                    count,
                )
                % count,
                messages.SUCCESS,
            )
        else:
            self.message_user(request, _("None of the selected sessions is open."), messages.WARNING)

    # -- minutes over the last 30 days

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        since = timezone.now() - dt.timedelta(days=STATS_DAYS)
        recent = RelaySession.objects.filter(started_at__gte=since)  # the started_at index

        def top(field: str) -> list[dict[str, Any]]:
            rows = (
                recent.values(field)
                .annotate(seconds=Sum("audio_seconds"))
                .order_by("-seconds", field)[:STATS_ROWS]
            )
            return [{"name": row[field] or "—", "minutes": (row["seconds"] or 0) / 60} for row in rows]

        context = {
            "rt_stats_days": STATS_DAYS,
            "rt_minutes_by_user": top("username"),
            "rt_minutes_by_preset": top("preset_name"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)
