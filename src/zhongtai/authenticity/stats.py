"""Scan statistics for the console: checks per day, per product and per province over a period, and
the small server-rendered SVG chart that shows them (no chart library, a few kilobytes per page).

Days are China days (UTC+8). Counts are exact: one GROUP BY over `authenticity_scans` per view,
served by its `(tenant_id, occurred_at)` index.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import models as m
from zhongtai.authenticity.models import Scan
from zhongtai.catalog import queries as catalog_queries
from zhongtai.kit.home import china_day, china_day_start

MAX_DAYS = 366


@dataclass
class Counts:
    views: int = 0
    verifications: int = 0  # PIN matched
    suspicious: int = 0  # of the verifications
    wrong_pins: int = 0

    @property
    def checks(self) -> int:
        return self.views + self.verifications + self.wrong_pins


@dataclass
class ScanStats:
    since: date
    until: date
    total: Counts = field(default_factory=Counts)
    days: list[tuple[date, Counts]] = field(default_factory=list)
    products: list[tuple[uuid.UUID | None, str, Counts]] = field(default_factory=list)
    provinces: list[tuple[str | None, Counts]] = field(default_factory=list)


def _count_columns() -> list[Any]:
    return [
        func.sum(case((Scan.kind == m.KIND_VIEW, 1), else_=0)),
        func.sum(case((Scan.kind == m.KIND_PIN_OK, 1), else_=0)),
        func.sum(case(((Scan.kind == m.KIND_PIN_OK) & (Scan.verdict == m.SUSPICIOUS), 1), else_=0)),
        func.sum(case((Scan.kind == m.KIND_PIN_BAD, 1), else_=0)),
    ]


def _counts(row: Any, offset: int) -> Counts:
    return Counts(*(int(row[offset + i] or 0) for i in range(4)))


async def scan_stats(
    session: AsyncSession, *, since: date, until: date, product_id: uuid.UUID | None = None
) -> ScanStats:
    """Counts of the brand's scans (the session is scoped to it) from `since` to `until`, China days."""
    start, end = china_day_start(since), china_day_start(until + timedelta(days=1))
    where = [Scan.occurred_at >= start, Scan.occurred_at < end]
    if product_id is not None:
        where.append(Scan.product_id == product_id)
    stats = ScanStats(since, until)

    day = china_day(session, Scan.occurred_at).label("day")
    by_day = {
        str(row[0]): _counts(row, 1)
        for row in await session.execute(select(day, *_count_columns()).where(*where).group_by(day))
    }
    current = since
    while current <= until:
        stats.days.append((current, by_day.get(current.isoformat(), Counts())))
        current += timedelta(days=1)
    for _day, counts in stats.days:
        stats.total.views += counts.views
        stats.total.verifications += counts.verifications
        stats.total.suspicious += counts.suspicious
        stats.total.wrong_pins += counts.wrong_pins

    product_rows = await session.execute(
        select(Scan.product_id, *_count_columns()).where(*where).group_by(Scan.product_id)
    )
    per_product = [(row[0], _counts(row, 1)) for row in product_rows]
    names = await catalog_queries.product_names(session, [pid for pid, _c in per_product])
    stats.products = sorted(
        ((pid, names.get(pid, "") if pid else "", counts) for pid, counts in per_product),
        key=lambda item: (-item[2].checks, item[1]),
    )

    province_rows = await session.execute(
        select(Scan.province_code, *_count_columns()).where(*where).group_by(Scan.province_code)
    )
    stats.provinces = sorted(
        ((row[0], _counts(row, 1)) for row in province_rows), key=lambda item: (-item[1].checks, item[0] or "~")
    )
    return stats


# The chart.

CHART_WIDTH, CHART_HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 36, 8, 12, 28


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return value


def day_chart(days: list[tuple[date, Counts]], *, title: str) -> Markup:
    """Bars of checks per day (views, verifications and wrong PINs), suspicious verifications in red
    over them. An accessible SVG: a title, and each bar's numbers in its tooltip."""
    count = max(len(days), 1)
    peak = _nice_max(max((c.checks for _d, c in days), default=0))
    inner_w = CHART_WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = CHART_HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = inner_w / count
    bar_w = max(slot * 0.7, 1.0)
    parts = [
        f'<svg class="chart" id="day-chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for fraction in (0, 0.5, 1):
        y = PAD_TOP + inner_h * (1 - fraction)
        parts.append(
            f'<line class="axis" x1="{PAD_LEFT}" y1="{y:.1f}" x2="{CHART_WIDTH - PAD_RIGHT}" y2="{y:.1f}"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{round(peak * fraction):,}</text>'
        )
    label_every = max(1, count // 8)
    for index, (day, counts) in enumerate(days):
        x = PAD_LEFT + slot * index + (slot - bar_w) / 2
        tip = escape(
            f"{day.isoformat()}: {counts.checks:,} checks, {counts.verifications:,} verifications, "
            f"{counts.suspicious:,} suspicious"
        )
        height = inner_h * counts.checks / peak
        parts.append(
            f'<g data-day="{day.isoformat()}" data-checks="{counts.checks}" data-suspicious="{counts.suspicious}">'
            f"<title>{tip}</title>"
            f'<rect class="bar" x="{x:.1f}" y="{PAD_TOP + inner_h - height:.1f}" '
            f'width="{bar_w:.1f}" height="{height:.1f}"/>'
        )
        if counts.suspicious:
            red = inner_h * counts.suspicious / peak
            parts.append(
                f'<rect class="bar suspicious" x="{x:.1f}" y="{PAD_TOP + inner_h - red:.1f}" '
                f'width="{bar_w:.1f}" height="{red:.1f}"/>'
            )
        parts.append("</g>")
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{CHART_HEIGHT - 8}" text-anchor="middle">{day:%m-%d}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it is escaped above
