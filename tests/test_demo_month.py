"""`zhongtai demo --days N`: a month of the demo brand's life, made through the modules' services."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from zhongtai.authenticity.models import KIND_PIN_OK, CloneAlert, Scan
from zhongtai.channel.models import Dealer, Store
from zhongtai.channel.scan_models import DiversionAlert
from zhongtai.cli import demo_month
from zhongtai.cli.demo import DEMO_SLUG, load_demo
from zhongtai.core import clock
from zhongtai.core.models import Tenant
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.ledger import service as ledger
from zhongtai.members import lifecycle
from zhongtai.rewards.models import PAID, FeePool, RewardGrant
from zhongtai.sales.models import SalesOrder

DAYS = 14


def test_travel_sets_the_clock_and_restores_it() -> None:
    then = datetime(2026, 3, 1, 8, tzinfo=UTC)
    clock.advance(60)
    try:
        with clock.travel(then):
            assert abs((clock.utcnow() - then).total_seconds()) < 5
        assert abs((clock.utcnow() - datetime.now(UTC)).total_seconds() - 60) < 5
    finally:
        clock.reset()


def test_the_plan_is_deterministic() -> None:
    cases = {d[0]: [f"{d[0]}-{i}" for i in range(d[4])] for d in demo_month.DEALERS}
    contents = {case: [f"{case}/{n}" for n in range(6)] for found in cases.values() for case in found}
    start = date(2026, 3, 1)
    first = demo_month.plan_month(30, start, cases, contents)
    assert first == demo_month.plan_month(30, start, cases, contents)
    assert [a.at for a in first] == sorted(a.at for a in first)
    sold = [code for a in first if a.kind == "sale" for code in a.args["codes"]]
    assert len(sold) == len(set(sold))  # no bottle is sold twice


async def test_demo_month(settings: Settings, runtime: Runtime) -> None:
    first = await load_demo(settings, days=DAYS)
    month = first["month"]
    guides = sum(1 for s in demo_month.STORES if s[6])
    assert (month["dealers"], month["stores"], month["guides"]) == (4, 12, guides)
    assert month["partners"] == 4 + 12 + guides
    assert month["bottles"] == 6 * month["cases"] == 6 * sum(d[4] for d in demo_month.DEALERS)
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
        assert tenant is not None
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        kinds = set(await session.scalars(select(DiversionAlert.kind)))
        assert "store_outside_territory" in kinds
        assert await session.scalar(select(func.count()).select_from(CloneAlert)) >= 1
        checked = list(await session.scalars(select(Scan.occurred_at).where(Scan.kind == KIND_PIN_OK)))
        assert len({(at + timedelta(hours=8)).date() for at in checked}) > 10
        assert len(checked) == month["verifications"]
        # The books balance, and what left the pool is what the grants paid.
        report = await ledger.recompute_balances(session)
        assert report.ok, report
        pool = await session.scalar(select(FeePool).where(FeePool.code == demo_month.POOL_CODE))
        assert pool is not None
        assert pool.funded_fen == demo_month.POOL_FUNDED_FEN
        left = await ledger.balance_of(session, pool.account_id)
        granted = await session.scalar(
            select(func.coalesce(func.sum(RewardGrant.amount_fen), 0)).where(RewardGrant.pool_id == pool.id)
        )
        paid = await session.scalar(
            select(func.coalesce(func.sum(RewardGrant.amount_fen), 0)).where(
                RewardGrant.pool_id == pool.id, RewardGrant.status == PAID
            )
        )
        assert paid == month["rewards_paid_fen"] > 0
        assert pool.funded_fen - left == granted
        stages = await lifecycle.stage_counts(session)
        assert sum(1 for n in stages.values() if n) >= 3, stages
        assert month["members"] >= 30
        # The lottery: ten verified entrants, four bottles drawn; three winners paid and picked up at the
        # store (each a bottle of the case it kept), one let the deadline pass.
        assert month["lottery_entries"] == demo_month.LOTTERY_ENTRANTS
        assert month["orders"] == demo_month.LOTTERY_BOTTLES
        assert (month["orders_paid"], month["pickups"]) == (3, 3)
        handed = (await session.execute(select(SalesOrder.state, SalesOrder.store_id, SalesOrder.item_code_id))).all()
        picked = [row for row in handed if row[0] == "picked_up"]
        store_id = await session.scalar(select(Store.id).where(Store.code == demo_month.LOTTERY_STORE))
        assert {row[1] for row in picked} == {store_id}
        assert len({row[2] for row in picked}) == 3  # three different bottles
    again = await load_demo(settings, days=DAYS)
    assert again == first
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        assert await session.scalar(select(func.count()).select_from(Dealer)) == 4
