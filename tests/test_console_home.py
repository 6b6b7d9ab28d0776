"""The console home: every figure equals a count taken directly from generated rows (China days, the
window's edges included and excluded), no figure counts another brand's rows, a section shows only to
operators who may read its module, and the page renders the figures, their links and chart data."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import httpx

from tests.factories import PASSWORD, Brand, console_login, make_brand, system_actor
from zhongtai.authenticity import models as am
from zhongtai.authenticity.models import CloneAlert, Scan
from zhongtai.channel.models import Dealer
from zhongtai.channel.scan_models import DiversionAlert
from zhongtai.core.clock import utcnow
from zhongtai.core.principals import Principal
from zhongtai.core.runtime import Runtime
from zhongtai.kit.home import CHINA, Window, home_sections
from zhongtai.members.models import Member
from zhongtai.members.segment_models import MemberFacts
from zhongtai.rewards import service as rewards_service
from zhongtai.rewards.models import RewardGrant
from zhongtai.sales.models import SalesOrder

ROWS = 240  # of each kind per brand


@dataclass
class Expected:
    """Per China day, what the home must count, computed from the generated rows only."""

    days: dict[str, dict[date, int]] = field(default_factory=dict)
    now: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, when: datetime, amount: int = 1) -> None:
        day = when.astimezone(CHINA).date()
        per_day = self.days.setdefault(name, {})
        per_day[day] = per_day.get(day, 0) + amount

    def series(self, name: str, window: Window) -> list[int]:
        return [self.days.get(name, {}).get(day, 0) for day in window.days]


def _moments(rng: random.Random, window: Window) -> list[datetime]:
    """Times spread over the window and the days before it, with both edges of the window in."""
    edges = [
        window.start,
        window.start - timedelta(microseconds=1),
        window.today_start,
        window.end - timedelta(seconds=1),
    ]
    span = (window.end - window.start).total_seconds()
    spread = [window.start + timedelta(seconds=rng.uniform(-5 * 86400, span - 1)) for _ in range(ROWS - len(edges))]
    return edges + spread


async def _generate(runtime: Runtime, brand: Brand, window: Window, seed: int) -> Expected:
    rng = random.Random(seed)
    expected = Expected()

    def counted(when: datetime) -> bool:
        return window.start <= when < window.end

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        dealer = Dealer(code="D1", name="华南商贸")
        session.add(dealer)
        await session.flush()
        for n, when in enumerate(_moments(rng, window)):
            kind = rng.choice(am.KINDS)
            verdict = rng.choice((am.GENUINE, am.VERIFIED_BEFORE, am.SUSPICIOUS)) if kind == am.KIND_PIN_OK else None
            number = rng.choice((1, 2, 2, 3, 3, 3)) if kind == am.KIND_PIN_OK else None
            session.add(
                Scan(
                    tenant_id=brand.id,
                    code_id=n,
                    serial=f"S{n}",
                    kind=kind,
                    verdict=verdict,
                    verification_number=number,
                    occurred_at=when,
                )
            )
            if counted(when) and kind == am.KIND_PIN_OK:
                expected.add("Verifications", when)
                if verdict == am.SUSPICIOUS:
                    expected.add("Suspicious verdicts", when)
                if number == 1:
                    expected.add("Activations", when)
        for n in range(12):
            status = rng.choice(am.ALERT_STATUSES)
            session.add(
                CloneAlert(
                    code_id=n,
                    serial=f"S{n}",
                    first_scan_id=n,
                    second_scan_id=n + 1,
                    distance_km=900.0,
                    seconds_between=60.0,
                    speed_kmh=54000.0,
                    status=status,
                )
            )
            expected.now["Open clone alerts"] = expected.now.get("Open clone alerts", 0) + (status == am.ALERT_OPEN)
        for n, when in enumerate(_moments(rng, window)):
            status = rng.choice(("open", "confirmed", "penalized", "dismissed"))
            session.add(
                DiversionAlert(
                    kind="foreign_store",
                    severity="low",
                    status=status,
                    dealer_id=dealer.id,
                    code_id=n,
                    serial=f"C{n}",
                    actor_kind="store",
                    source_ref=f"channel-scan:{n}",
                    created_at=when,
                )
            )
            expected.now["Open diversion alerts"] = expected.now.get("Open diversion alerts", 0) + (status == "open")
            if counted(when):
                expected.add("Diversion alerts", when)
        for n, when in enumerate(_moments(rng, window)):
            status = rng.choice(("paid", "held", "released", "rejected", "refused"))
            amount = rng.randint(1, 5000)
            session.add(
                RewardGrant(
                    code_id=n,
                    event_kind="consumer_open",
                    role="consumer",
                    party=f"device:{n}",
                    amount_fen=amount,
                    status=status,
                    source_ref=f"scan:{n}",
                    occurred_at=when,
                    created_at=when,
                )
            )
            expected.now["Held for review"] = expected.now.get("Held for review", 0) + (status == "held")
            if counted(when) and status in ("paid", "released"):
                expected.add("Rewards paid", when, amount)
        for n, when in enumerate(_moments(rng, window)):
            paid_at = when + timedelta(minutes=rng.randint(1, 600)) if rng.random() < 0.7 else None
            picked_at = paid_at + timedelta(hours=rng.randint(1, 72)) if paid_at and rng.random() < 0.5 else None
            amount = rng.randint(1, 3) * 149_900
            session.add(
                SalesOrder(
                    order_no=f"O{seed}{n:06d}",
                    source="flashsale",
                    source_ref=f"buy:{n}",
                    consumer_id=uuid.uuid4(),
                    product_id=uuid.uuid4(),
                    quantity=amount // 149_900,
                    unit_price_fen=149_900,
                    amount_fen=amount,
                    state="picked_up" if picked_at else "paid" if paid_at else "pending_payment",
                    pay_deadline=when + timedelta(minutes=15),
                    created_at=when,
                    paid_at=paid_at,
                    picked_up_at=picked_at,
                )
            )
            if counted(when):
                expected.add("Orders", when)
            if paid_at and counted(paid_at):
                expected.add("Payments received", paid_at, amount)
            if picked_at and counted(picked_at):
                expected.add("Pickups", picked_at)
        members = []
        for when in _moments(rng, window):
            status = rng.choice(("active", "active", "active", "merged"))
            member = Member(status=status, profile={}, created_at=when, updated_at=when)
            members.append(member)
            session.add(member)
            if counted(when) and status == "active":
                expected.add("New members", when)
        await session.flush()
        for seq, member in enumerate(members):
            stage = rng.choice(("new", "active", "at_risk", "dormant"))
            active = member.status == "active"
            session.add(
                MemberFacts(member_id=member.id, seq=seq, is_active=active, stage=stage, stage_since=window.today)
            )
            if active and stage in ("active", "at_risk"):
                key = "Members in the active stage" if stage == "active" else "Members at risk"
                expected.now[key] = expected.now.get(key, 0) + 1
    return expected


def _figures(sections: list) -> dict[str, object]:  # type: ignore[type-arg]
    return {figure.label: figure for section in sections for figure in section.figures}


async def _fund(runtime: Runtime, brand: Brand, amounts: list[int]) -> int:
    actor = system_actor(brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for n, amount in enumerate(amounts):
            pool = await rewards_service.do_create_pool(
                session, actor, rewards_service.PoolDraft(code=f"P{n}", name=f"池 {n}", campaign="")
            )
            await rewards_service.do_fund_pool(session, actor, pool.id, amount, idempotency_key=f"fund-{n}")
    return sum(amounts)


async def test_every_figure_equals_a_direct_count_and_no_brand_sees_another(runtime: Runtime) -> None:
    window = Window.ending(utcnow())
    brand, other = await make_brand(runtime), await make_brand(runtime)
    expected = await _generate(runtime, brand, window, seed=1)
    other_expected = await _generate(runtime, other, window, seed=2)
    funded = await _fund(runtime, brand, [500_000, 250_000])

    owner: Principal = system_actor(brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        sections = await home_sections(session, owner, window)
    assert [s.key for s in sections] == ["authenticity", "rewards", "channel", "sales", "members"]
    figures = _figures(sections)
    for name in (
        "Verifications",
        "Suspicious verdicts",
        "Activations",
        "Diversion alerts",
        "Rewards paid",
        "Orders",
        "Payments received",
        "Pickups",
        "New members",
    ):
        series = expected.series(name, window)
        assert sum(series) > 0, name  # the generated data exercises every figure
        figure = figures[name]
        assert (figure.today, figure.period) == (series[-1], sum(series)), name  # type: ignore[attr-defined]
    for name, count in expected.now.items():
        assert figures[name].period == count, name  # type: ignore[attr-defined]
        assert figures[name].today is None, name  # type: ignore[attr-defined]
    by_key = {s.key: s for s in sections}
    assert by_key["authenticity"].series[0].values == expected.series("Verifications", window)
    assert by_key["sales"].series[1].values == expected.series("Pickups", window)
    paid = figures["Rewards paid"]
    assert paid.money
    assert paid.note_values == {"left": "¥7,500.00", "funded": f"¥{funded / 100:,.2f}"}

    # The other brand's figures are its own rows only (no pools: nothing funded).
    async with runtime.db.unit_of_work(tenant_id=other.id) as session:
        other_figures = _figures(await home_sections(session, system_actor(other.id), window))
    assert other_figures["Verifications"].period == sum(other_expected.series("Verifications", window))  # type: ignore[attr-defined]
    assert other_figures["Verifications"].period != figures["Verifications"].period  # type: ignore[attr-defined]
    assert other_figures["Rewards paid"].note_values == {"left": "¥0.00", "funded": "¥0.00"}  # type: ignore[attr-defined]

    # A section shows only to operators who may read its module.
    sales_only = dataclasses.replace(owner, permissions=frozenset({"sales.read", "members.read"}))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert [s.key for s in await home_sections(session, sales_only, window)] == ["sales", "members"]
        assert await home_sections(session, dataclasses.replace(owner, permissions=frozenset()), window) == []


async def test_the_window_is_thirty_china_days_ending_today() -> None:
    # 2026-12-07 17:30 UTC is 2026-12-08 01:30 in China: "today" is the 8th.
    window = Window.ending(datetime(2026, 12, 7, 17, 30, tzinfo=CHINA).astimezone(CHINA) + timedelta(hours=8))
    assert window.today == date(2026, 12, 8)
    assert len(window.days) == 30
    assert window.days[0] == date(2026, 11, 9)
    assert window.days[-1] == window.today
    assert window.start.isoformat() == "2026-11-08T16:00:00+00:00"
    assert window.end - window.start == timedelta(days=30)


async def test_the_page_shows_the_sections_an_operator_may_read(runtime: Runtime, client: httpx.AsyncClient) -> None:
    window = Window.ending(utcnow())
    brand = await make_brand(runtime)
    expected = await _generate(runtime, brand, window, seed=3)
    await console_login(client, brand.owner.email, PASSWORD)
    page = await client.get("/console", headers={"accept": "text/html", "accept-language": "zh-CN"})
    assert page.status_code == 200
    html = page.text
    verifications = expected.series("Verifications", window)
    tile = re.search(r'data-figure="Verifications".*?data-today="(\d+)".*?data-period="(\d+)"', html, re.S)
    assert tile
    assert (int(tile.group(1)), int(tile.group(2))) == (verifications[-1], sum(verifications))
    assert 'href="/console/channel/diversion?status=open"' in html
    assert "可疑判定" in html
    assert "待处理窜货告警" in html
    chart = re.search(r'<script type="application/json" id="chart-sales">(.*?)</script>', html, re.S)
    assert chart is not None
    data = json.loads(chart.group(1))
    assert len(data["days"]) == 30
    assert data["series"][0]["name"] == "订单"
    assert data["series"][0]["data"] == expected.series("Orders", window)
    # The menu: grouped by area, the home's areas folded.
    assert re.search(r'<details class="nav-group" data-group="settings">\s*<summary', html)
    assert '<details class="nav-group" data-group="settings" open>' not in html
