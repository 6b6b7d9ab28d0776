"""The console home: the brand's day at a glance.

Each module adds a *section* — a few figures for today and the last 30 days (China days), each linking
to the list it counts, and a line per day for its chart — by registering a provider at application
start (`zhongtai.domains.wire`). The home page lays the sections out and charts them; a module that is
not installed, or that the operator may not read, adds nothing, so the page never shows a figure its
reader could not open.

Figures are exact counts over the operational tables, each one GROUP BY per section served by the
tables' `(tenant_id, time)` indexes; the session is scoped to the brand, so no figure can count another
brand's rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.principals import Principal

HOME_DAYS = 30
CHINA = timezone(timedelta(hours=8))  # the brand's day is China's day


def china_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=CHINA).astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """The home's period: `days` China days ending today (today last), with their UTC bounds."""

    today: date
    days: tuple[date, ...]
    start: datetime  # the first day's start, UTC
    today_start: datetime
    end: datetime  # tomorrow's start, UTC

    @classmethod
    def ending(cls, now: datetime, days: int = HOME_DAYS) -> Window:
        today = now.astimezone(CHINA).date()
        first = today - timedelta(days=days - 1)
        return cls(
            today=today,
            days=tuple(first + timedelta(days=n) for n in range(days)),
            start=china_day_start(first),
            today_start=china_day_start(today),
            end=china_day_start(today + timedelta(days=1)),
        )

    def aligned(self, by_day: dict[str, int]) -> list[int]:
        """Values keyed by ISO day as one value per day of the window, zeros where none."""
        return [int(by_day.get(day.isoformat(), 0)) for day in self.days]


def china_day(session: AsyncSession, column: Any) -> Any:
    """The China day of a UTC timestamp column, as an SQL expression that groups (ISO text on SQLite)."""
    if session.get_bind().dialect.name == "sqlite":
        return func.date(column, "+8 hours")
    return cast(func.timezone("Asia/Shanghai", column), Date)


async def per_day(session: AsyncSession, window: Window, column: Any, *where: Any, value: Any = None) -> list[int]:
    """`value` summed (default: rows counted) per China day of `column` over the window, one number per day."""
    measure = func.count() if value is None else func.sum(value)
    [values] = await per_day_many(session, window, column, [measure], *where)
    return values


async def per_day_many(
    session: AsyncSession, window: Window, column: Any, measures: Sequence[Any], *where: Any
) -> list[list[int]]:
    """Several measures (SQL aggregate expressions) per China day of `column` in one query: one list of
    per-day values for each measure."""
    day = china_day(session, column).label("day")
    rows = await session.execute(
        select(day, *measures).where(column >= window.start, column < window.end, *where).group_by(day)
    )
    found = {str(row[0]): row[1:] for row in rows.all()}
    return [window.aligned({d: int(values[i] or 0) for d, values in found.items()}) for i in range(len(measures))]


@dataclass(frozen=True)
class Figure:
    """One number of a section. `label` and `note` are English sources translated on the page."""

    label: str
    href: str
    period: int  # over the window (or now, for a figure without `today`)
    today: int | None = None  # None: a count of now (open alerts, members at risk), not of a period
    money: bool = False  # fen, shown in yuan
    warn: bool = False  # needs someone's attention
    note: str = ""
    note_values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Series:
    """A line of the section's chart: one value per window day."""

    label: str
    values: list[int]
    money: bool = False


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    href: str
    figures: list[Figure]
    series: list[Series] = field(default_factory=list)


HomeProvider = Callable[[AsyncSession, Window], Awaitable[Section | None]]


@dataclass(frozen=True)
class _Entry:
    order: int
    permission: str
    provider: HomeProvider


_SECTIONS: dict[str, _Entry] = {}


def register_home_section(name: str, provider: HomeProvider, *, permission: str, order: int) -> None:
    """Show `provider`'s section on the console home to operators holding `permission` (again: replaces)."""
    _SECTIONS[name] = _Entry(order, permission, provider)


def unregister_home_section(name: str) -> None:
    _SECTIONS.pop(name, None)


def home_section_names() -> list[str]:
    return [name for name, _entry in sorted(_SECTIONS.items(), key=lambda item: item[1].order)]


async def home_sections(session: AsyncSession, principal: Principal, window: Window) -> list[Section]:
    """The sections this operator may read, in their order; a provider answering None shows nothing."""
    shown = []
    for _name, entry in sorted(_SECTIONS.items(), key=lambda item: item[1].order):
        if not principal.can(entry.permission):
            continue
        section = await entry.provider(session, window)
        if section is not None:
            shown.append(section)
    return shown
