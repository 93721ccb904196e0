"""The audit changelist's summary: requests per day for 30 days, stacked by outcome, drawn as SVG on the
server (no JavaScript, no CDN), and today's top requesters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from ..models import TokenRequest

Outcome = TokenRequest.Outcome

# One colour per outcome, for the chart and the list's badges (white text): far apart from each other
# (CIE76 distance 25 or more, tests/audit/test_report.py) and dark enough for white text.
OUTCOME_COLOURS: dict[str, str] = {
    Outcome.ISSUED: "#2e7d32",  # green
    Outcome.INVALID: "#616161",  # grey
    Outcome.FORBIDDEN: "#6a1b9a",  # purple
    Outcome.NOT_FOUND: "#827717",  # olive
    Outcome.RATE_LIMITED: "#e65100",  # orange
    Outcome.RATE_LIMIT_UNAVAILABLE: "#ad1457",  # magenta
    Outcome.SERVICE_UNAVAILABLE: "#212121",  # near black
    Outcome.UPSTREAM_ERROR: "#c62828",  # red
    Outcome.UPSTREAM_UNAVAILABLE: "#00838f",  # teal
    Outcome.UPSTREAM_TIMEOUT: "#1565c0",  # blue
    Outcome.MISCONFIGURED: "#304ffe",  # bright indigo
}
assert set(OUTCOME_COLOURS) == set(Outcome), "every outcome needs a colour"
CHART_DAYS = 30


@dataclass
class DayCounts:
    day: dt.date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def daily_outcomes(days: int = CHART_DAYS, now: dt.datetime | None = None) -> list[DayCounts]:
    """Requests per local day and outcome for the last `days` days (today included), oldest first.

    One grouped query over the `created_at` range (served by its index).
    """
    now = timezone.localtime(now)
    first_day = now.date() - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first_day, dt.time.min), now.tzinfo)
    rows = (
        TokenRequest.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=now.tzinfo))
        .values("day", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_day = {
        first_day + dt.timedelta(days=i): DayCounts(first_day + dt.timedelta(days=i), {}) for i in range(days)
    }
    for row in rows:
        if row["day"] in by_day:
            by_day[row["day"]].counts[row["outcome"]] = row["n"]
    return list(by_day.values())


def top_requesters(limit: int = 10, now: dt.datetime | None = None) -> list[tuple[str, int]]:
    """Today's (local day) users with the most requests."""
    now = timezone.localtime(now)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        TokenRequest.objects.filter(created_at__gte=start)
        .values("username")
        .annotate(n=Count("id"))
        .order_by("-n", "username")[:limit]
    )
    return [(row["username"] or "-", row["n"]) for row in rows]


def outcome_labels() -> dict[str, str]:
    """Each outcome's label: the one the audit list's outcome filter and badges show."""
    return {value: str(label) for value, label in TokenRequest.Outcome.choices}


# Room around the plot for the axis labels: the last day's label is centred on the last bar, so the
# right margin is half a label wide ("30 Nov" at font-size 10 is about 32 px).
CHART_MARGINS = {"top": 10, "right": 20, "bottom": 30, "left": 40}


def render_chart(days: list[DayCounts], width: int = 720, height: int = 200) -> SafeString:
    """A stacked bar chart as inline SVG; each segment has a <title> tooltip."""
    top, right, bottom, left = (CHART_MARGINS[side] for side in ("top", "right", "bottom", "left"))
    labels = outcome_labels()
    plot_height = height - top - bottom
    peak = max((d.total for d in days), default=0) or 1
    slot = (width - left - right) / max(len(days), 1)
    bar = max(slot * 0.75, 1)
    parts: list[str] = []
    for index, day in enumerate(days):
        x = left + index * slot
        y = float(top + plot_height)
        for outcome, colour in OUTCOME_COLOURS.items():
            count = day.counts.get(outcome, 0)
            if not count:
                continue
            h = plot_height * count / peak
            y -= h
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {}</title></rect>',
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{bar:.1f}",
                    f"{h:.1f}",
                    colour,
                    day.day.isoformat(),
                    labels.get(outcome, outcome),
                    count,
                )
            )
        if index % 5 == 0 or index == len(days) - 1:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
                    f"{x + bar / 2:.1f}",
                    height - 12,
                    day.day.strftime("%d %b"),
                )
            )
    axis = format_html(
        '<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end">0</text>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#888" stroke-width="1"/>',
        left - 4,
        top + 8,
        peak,
        left - 4,
        top + plot_height,
        left,
        top + plot_height,
        width - right,
        top + plot_height,
    )
    legend = format_html_join(
        "",
        '<span class="rt-legend-item" style="display:inline-block;margin-right:12px"><span style="display:'
        'inline-block;width:10px;height:10px;background:{};margin-right:4px"></span>{}</span>',
        ((colour, labels.get(outcome, outcome)) for outcome, colour in OUTCOME_COLOURS.items()),
    )
    svg = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}">{}{}</svg>',
        f"Token requests per day for the last {len(days)} days, by outcome",
        width,
        height,
        width,
        height,
        axis,
        mark_safe("".join(parts)),  # noqa: S308 (parts are format_html output)
    )
    return format_html('<figure class="rt-audit-chart">{}<figcaption>{}</figcaption></figure>', svg, legend)
