"""A date drill-down for the audit list that never scans the table.

Django's `date_hierarchy` lists the years, months or days that hold rows with
`SELECT DISTINCT date_trunc(...)` over the whole selection: a full scan of a large audit table on every
page view. This one takes the first and last time of the selection (MIN/MAX, two index lookups) and
offers every period between them; a period without rows just shows an empty list.
"""

from __future__ import annotations

import calendar
import datetime as dt
import inspect
from typing import Any

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()
_NODE_TAKES_NAME = "name" in inspect.signature(InclusionAdminNode.__init__).parameters


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def light_date_hierarchy(cl: Any) -> dict[str, Any]:
    field = cl.date_hierarchy
    year_field, month_field, day_field = f"{field}__year", f"{field}__month", f"{field}__day"
    year = _int(cl.params.get(year_field))
    month = _int(cl.params.get(month_field))
    day = _int(cl.params.get(day_field))

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    if year and month and day:
        chosen = dt.date(year, month, day)
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    span = cl.queryset.aggregate(first=Min(field), last=Max(field))
    if not (span["first"] and span["last"]):
        return {"show": bool(year), "back": {"link": link({}), "title": _("All dates")}, "choices": []}
    first, last = timezone.localtime(span["first"]).date(), timezone.localtime(span["last"]).date()
    if not year and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month:
        days_in_month = calendar.monthrange(year, month)[1]
        start = first.day if (first.year, first.month) == (year, month) else 1
        end = last.day if (last.year, last.month) == (year, month) else days_in_month
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d}),
                    "title": capfirst(formats.date_format(dt.date(year, month, d), "MONTH_DAY_FORMAT")),
                }
                for d in range(start, end + 1)
            ],
        }
    if year:
        start = first.month if first.year == year else 1
        end = last.month if last.year == year else 12
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m}),
                    "title": capfirst(formats.date_format(dt.date(year, m, 1), "YEAR_MONTH_FORMAT")),
                }
                for m in range(start, end + 1)
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: str(y)}), "title": str(y)} for y in range(first.year, last.year + 1)
        ],
    }


@register.tag(name="rt_date_hierarchy")
def rt_date_hierarchy_tag(parser: Any, token: Any) -> InclusionAdminNode:
    # Django 6.1 added a leading `name` parameter to InclusionAdminNode (django-stubs follows 6.1).
    options: dict[str, Any] = {"func": light_date_hierarchy, "template_name": "date_hierarchy.html"}
    if _NODE_TAKES_NAME:
        return InclusionAdminNode("rt_date_hierarchy", parser, token, takes_context=False, **options)
    return InclusionAdminNode(parser, token, takes_context=False, **options)
