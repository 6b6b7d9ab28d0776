"""Memberships, tiers and points — on both tiers: earning exactly once, FIFO expiry, refunds that never
go below 0, concurrent redemptions, tier boundaries and downgrade modes, merge and unmerge, brands
kept apart."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import Brand, bearer, make_brand, make_token, system_actor
from tests.members_factories import make_consumer
from zhongtai.codes.events import ItemEvent
from zhongtai.core import jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import NotFound
from zhongtai.core.jobs import Worker
from zhongtai.core.models import OutboxJob
from zhongtai.core.runtime import Runtime
from zhongtai.ledger import service as ledger
from zhongtai.lottery import rules as lottery_rules
from zhongtai.lottery.rules import DrawEntry
from zhongtai.members import earning, loyalty, oneid, points, privacy, queries
from zhongtai.members import loyalty_rules as lr
from zhongtai.members.loyalty_models import LoyaltyMembership, PointsLot
from zhongtai.members.oneid import IdentifierInput


async def set_rules(runtime: Runtime, brand: Brand, *drafts: loyalty.RuleDraft) -> None:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await loyalty.do_set_rules(session, system_actor(brand.id), list(drafts))


async def new_member(runtime: Runtime, brand: Brand, *identifiers: IdentifierInput) -> uuid.UUID:
    ids = list(identifiers) or [IdentifierInput("wechat_unionid", uuid.uuid4().hex, True)]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        linked = await oneid.do_link(
            session, system_actor(brand.id), runtime.crypto, identifiers=ids, source="app", reason="test"
        )
        return linked.member.id


async def earn(
    runtime: Runtime, brand: Brand, member_id: uuid.UUID, kind: str, source: str, amount: int, **extra: object
) -> points.Earned | None:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rule = await loyalty.active_rule(session, kind)
        assert rule is not None
        return await points.do_earn(session, member_id, rule, source=source, points=amount, **extra)  # type: ignore[arg-type]


async def state(runtime: Runtime, brand: Brand, member_id: uuid.UUID) -> tuple[int, list[tuple[str, int, int]]]:
    """The member's balance and lots (source, amount, remaining); checks that the lots add up."""
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        balance = await points.balance_of(session, member_id)
        lots = [(x.source, x.amount, x.remaining) for x in await points.lots_of(session, member_id)]
        assert sum(r for _, _, r in lots) == balance
        assert (await ledger.recompute_balances(session)).ok
        return balance, lots


async def save_program(runtime: Runtime, brand: Brand, code: str, mode: str, qualify_by: str = "points") -> None:
    tiers = [lr.TierDraft("silver", "银卡", 0), lr.TierDraft("gold", "金卡", 100, discount_bp=500, free_shipping=True)]
    draft = loyalty.ProgramDraft(code, code, tiers, qualify_by=qualify_by, downgrade_mode=mode)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await loyalty.do_save_program(session, system_actor(brand.id), draft)


async def tiers_held(runtime: Runtime, brand: Brand, member_id: uuid.UUID) -> dict[str, str | None]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        return {s.program.code: (s.tier.code if s.tier else None) for s in await loyalty.standings(session, member_id)}


# --- earning ---------------------------------------------------------------------------------------


async def test_a_bottle_earns_once_under_concurrent_duplicate_events(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("scan", 10))
    consumer, _ = await make_consumer(runtime, brand)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        member = await privacy.ensure_member_for_consumer(session, system_actor(brand.id), runtime.crypto, consumer.id)
    payload = {"kind": "scan", "source": "code:42", "consumer_id": str(consumer.id), "at": utcnow().isoformat()}

    async def once() -> None:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await earning.do_earn_for_consumer(session, runtime.crypto, brand.id, payload)

    await asyncio.gather(*(once() for _ in range(6)))
    assert await state(runtime, brand, member.id) == (10, [("code:42", 10, 10)])


async def test_item_events_enqueue_one_job_that_earns_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("scan", 7))
    consumer, _ = await make_consumer(runtime, brand)
    event = ItemEvent(brand.id, "consumer_open", 9, None, None, utcnow(), "consumer-verify:9", consumer_id=consumer.id)
    sale = ItemEvent(brand.id, "sale", 9, None, None, utcnow(), "channel-scan:1")
    for published in (event, event, sale):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await earning.on_item_event(session, published)
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(OutboxJob)) == 1
    worker = Worker(runtime.db)
    while await worker.run_once():
        pass
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        member = await privacy.member_for_consumer(session, runtime.crypto, consumer.id)
        assert member is not None, "a consumer who scans becomes a member"
        member_id = member.id
    assert await state(runtime, brand, member_id) == (7, [("code:9", 7, 7)])


# --- spending, expiry, refunds ---------------------------------------------------------------------


async def test_spending_takes_the_earliest_expiring_lot_and_expiry_lapses_the_rest(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("review", 1, expiry="days", expiry_days=30))
    member = await new_member(runtime, brand)
    start = utcnow()
    await earn(runtime, brand, member, "review", "b", 20, at=start - timedelta(days=5))  # lapses at start + 25d
    await earn(runtime, brand, member, "review", "a", 10, at=start - timedelta(days=20))  # lapses at start + 10d
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await points.do_redeem(session, member, points=4, idempotency_key="r1")
    assert await state(runtime, brand, member) == (26, [("a", 10, 6), ("b", 20, 20)])

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await earning.do_daily(session, start + timedelta(days=10)) == (6, 0)
    assert await state(runtime, brand, member) == (20, [("a", 10, 0), ("b", 20, 20)])
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await earning.do_daily(session, start + timedelta(days=10)) == (0, 0)  # idempotent
        assert await earning.do_daily(session, start + timedelta(days=25)) == (20, 0)
    assert await state(runtime, brand, member) == (0, [("a", 10, 0), ("b", 20, 0)])


def test_next_year_end_expiry_is_china_new_year_after_next() -> None:
    earned = datetime.fromisoformat("2026-12-31T16:30:00+00:00")  # 2027-01-01 00:30 in China
    assert lr.expires_at("next_year_end", None, earned) == datetime.fromisoformat("2029-01-01T00:00:00+08:00")


async def test_a_refund_takes_back_what_it_can_and_records_the_shortfall(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("purchase", 1), loyalty.RuleDraft("review", 5))
    member = await new_member(runtime, brand)
    await earn(runtime, brand, member, "purchase", "order:1", 100, qualifying_fen=10_000)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await points.do_redeem(session, member, points=70, idempotency_key="gift")
    await earn(runtime, brand, member, "review", "r", 5)
    for _ in range(2):  # a second refund notice changes nothing
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            lot = await points.do_reverse_earning(session, rule="purchase", source="order:1")
            assert lot is not None
            assert (lot.reversed_amount, lot.shortfall) == (35, 65)
    assert await state(runtime, brand, member) == (0, [("order:1", 100, 0), ("r", 5, 0)])


async def test_concurrent_redemptions_never_go_below_zero(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("review", 1))
    member = await new_member(runtime, brand)
    await earn(runtime, brand, member, "review", "x", 100)

    async def spend(key: str) -> bool:
        try:
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await points.do_redeem(session, member, points=30, idempotency_key=key)
        except points.NotEnoughPoints:
            return False
        return True

    results = await asyncio.gather(*(spend(f"k{i}") for i in range(5)))
    assert sorted(results) == [False, False, True, True, True]
    assert await state(runtime, brand, member) == (10, [("x", 100, 10)])
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        replay = await points.do_redeem(session, member, points=30, idempotency_key=f"k{results.index(True)}")
    assert (replay.is_new, replay.balance) == (False, 10)


# --- tiers -----------------------------------------------------------------------------------------


async def test_tiers_upgrade_at_the_threshold_at_once_and_downgrade_by_mode(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("purchase", 1))
    await save_program(runtime, brand, "main", "period_end")
    await save_program(runtime, brand, "club", "rolling")
    member = await new_member(runtime, brand)
    start = utcnow()
    await earn(runtime, brand, member, "purchase", "order:1", 99, at=start)
    assert await tiers_held(runtime, brand, member) == {"main": "silver", "club": "silver"}
    await earn(runtime, brand, member, "purchase", "order:2", 1, at=start)
    assert await tiers_held(runtime, brand, member) == {"main": "gold", "club": "gold"}  # exactly 100
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        benefits = await loyalty.benefits_for_member(session, member)
    assert [(b.program_code, b.tier_code, b.discount_bp, b.free_shipping) for b in benefits] == [
        ("club", "gold", 500, True),
        ("main", "gold", 500, True),
    ]

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await points.do_reverse_earning(session, rule="purchase", source="order:2")
        await earning.do_daily(session, start + timedelta(days=1))
    assert await tiers_held(runtime, brand, member) == {"main": "gold", "club": "silver"}
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await earning.do_daily(session, start + timedelta(days=365))
    assert await tiers_held(runtime, brand, member) == {"main": "silver", "club": "silver"}


# --- merge and unmerge -----------------------------------------------------------------------------


async def _memberships(runtime: Runtime, brand: Brand) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        rows = await session.scalars(select(LoyaltyMembership).order_by(LoyaltyMembership.id))
        return [(m.id, m.member_id, m.tier_id) for m in rows]


async def _lot_owners(runtime: Runtime, brand: Brand) -> list[tuple[str, uuid.UUID, int]]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        rows = await session.scalars(select(PointsLot).order_by(PointsLot.source))
        return [(x.source, x.member_id, x.remaining) for x in rows]


async def test_merge_moves_points_lots_and_memberships_and_unmerge_restores_them(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("purchase", 1))
    await save_program(runtime, brand, "main", "period_end")
    phone = IdentifierInput("phone", "13812345678", True)
    union = IdentifierInput("wechat_unionid", "union-merge", True)
    survivor = await new_member(runtime, brand, phone)
    merged = await new_member(runtime, brand, union)
    await earn(runtime, brand, survivor, "purchase", "order:s", 10)
    await earn(runtime, brand, merged, "purchase", "order:m", 120)
    before = (await _memberships(runtime, brand), await _lot_owners(runtime, brand))

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        linked = await oneid.do_link(
            session, system_actor(brand.id), runtime.crypto, identifiers=[phone, union], source="app", reason="t"
        )
    assert linked.merged_member_ids == [merged]
    assert await state(runtime, brand, survivor) == (130, [("order:s", 10, 10), ("order:m", 120, 120)])
    assert await state(runtime, brand, merged) == (0, [])
    assert await tiers_held(runtime, brand, survivor) == {"main": "gold"}  # the higher of the two
    assert len(await _memberships(runtime, brand)) == 1
    with pytest.raises(points.MemberMerged):  # its points live with the survivor now
        await earn(runtime, brand, merged, "purchase", "order:late", 5)

    async with runtime.db.read_session(tenant_id=brand.id) as session:
        merge_id = (await oneid.merges_of(session, survivor))[0].id
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await oneid.do_unmerge(session, system_actor(brand.id), merge_id, "not the same person")
    assert (await _memberships(runtime, brand), await _lot_owners(runtime, brand)) == before
    assert (await state(runtime, brand, survivor))[0] == 10
    assert (await state(runtime, brand, merged))[0] == 120


async def test_unmerge_gives_back_what_is_left_after_spending(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("review", 1, expiry="days", expiry_days=30))
    phone = IdentifierInput("phone", "13812340000", True)
    union = IdentifierInput("wechat_unionid", "union-spend", True)
    survivor = await new_member(runtime, brand, phone)
    merged = await new_member(runtime, brand, union)
    await earn(runtime, brand, survivor, "review", "s", 50)
    await earn(runtime, brand, merged, "review", "m", 40, at=utcnow() - timedelta(days=1))  # lapses first
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await oneid.do_link(
            session, system_actor(brand.id), runtime.crypto, identifiers=[phone, union], source="app", reason="t"
        )
        await points.do_redeem(session, survivor, points=25, idempotency_key="after-merge")
        merge_id = (await oneid.merges_of(session, survivor))[0].id
        await oneid.do_unmerge(session, system_actor(brand.id), merge_id, "two people")
    assert await state(runtime, brand, merged) == (15, [("m", 40, 15)])
    assert await state(runtime, brand, survivor) == (50, [("s", 50, 50)])


# --- brands ----------------------------------------------------------------------------------------


async def test_brands_keep_their_own_points(runtime: Runtime) -> None:
    one, two = await make_brand(runtime), await make_brand(runtime)
    for brand in (one, two):
        await set_rules(runtime, brand, loyalty.RuleDraft("review", 3))
    first, second = await new_member(runtime, one), await new_member(runtime, two)
    await earn(runtime, one, first, "review", "same-source", 3)
    await earn(runtime, two, second, "review", "same-source", 3)  # a source is unique within a brand only
    assert await state(runtime, one, first) == (3, [("same-source", 3, 3)])
    async with runtime.db.read_session(tenant_id=two.id) as session:
        assert await points.lots_of(session, first) == []
        assert await points.balance_of(session, first) == 0
    with pytest.raises(NotFound, match="No such member"):
        async with runtime.db.unit_of_work(tenant_id=two.id) as session:
            await points.do_redeem(session, first, points=1, idempotency_key="x")


# --- API -------------------------------------------------------------------------------------------


async def test_staff_configure_and_the_member_signs_in_sees_and_redeems(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    brand = await make_brand(runtime)
    staff = bearer(await make_token(runtime, brand))
    program = {
        "code": "main",
        "name": "会员",
        "tiers": [
            {"code": "silver", "name": "银卡", "threshold": 0},
            {"code": "gold", "name": "金卡", "threshold": 15, "discount_bp": 800, "birthday_gift": True},
        ],
    }
    created = await client.post("/api/v1/loyalty/programs", json=program, headers=staff)
    assert created.status_code == 201, created.text
    assert [(t["code"], t["rank"]) for t in created.json()["tiers"]] == [("silver", 1), ("gold", 2)]
    again = await client.post("/api/v1/loyalty/programs", json=program, headers=staff)
    assert (again.status_code, again.json()["error"]) == (409, "conflict")
    falling = dict(
        program,
        code="x",
        tiers=[{"code": "a", "name": "a", "threshold": 5}, {"code": "b", "name": "b", "threshold": 5}],
    )
    refused = await client.post("/api/v1/loyalty/programs", json=falling, headers=staff)
    assert (refused.status_code, refused.json()["error"]) == (422, "validation_error")
    assert "each threshold above the one before" in refused.json()["detail"]
    rules = {"rules": [{"kind": "sign_in", "points": 10, "streak_bonus": 5}, {"kind": "scan", "points": 1}]}
    assert (await client.put("/api/v1/loyalty/points-rules", json=rules, headers=staff)).status_code == 200
    unknown = await client.put(
        "/api/v1/loyalty/points-rules", json={"rules": [{"kind": "likes", "points": 1}]}, headers=staff
    )
    assert unknown.status_code == 422
    assert "kind must be one of" in unknown.json()["detail"]

    consumer, token = await make_consumer(runtime, brand)
    me = bearer(token)
    assert (await client.get("/api/v1/consumer/members/me/points", headers=me)).status_code == 404
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:  # yesterday, through the service
        actor = system_actor(brand.id)
        member = await privacy.ensure_member_for_consumer(session, actor, runtime.crypto, consumer.id)
        yesterday = await earning.do_sign_in(session, member.id, utcnow() - timedelta(days=1))
    assert (yesterday.day_streak, yesterday.earned, yesterday.is_new) == (1, 10, True)
    signed = await client.post("/api/v1/consumer/members/me/sign-in", headers=me)
    assert signed.json() == {"streak": 2, "earned": 15, "is_new": True, "balance": 25}
    twice = await client.post("/api/v1/consumer/members/me/sign-in", headers=me)
    assert twice.json() == {"streak": 2, "earned": 15, "is_new": False, "balance": 25}

    mine = (await client.get("/api/v1/consumer/members/me/memberships", headers=me)).json()
    assert [(m["program_code"], m["tier_code"], m["discount_bp"], m["birthday_gift"], m["progress"]) for m in mine] == [
        ("main", "gold", 800, True, 25)
    ]
    redeem = {"points": 20, "idempotency_key": "cup-1", "reference": "mug"}
    spent = await client.post("/api/v1/consumer/members/me/points/redemptions", json=redeem, headers=me)
    assert (spent.status_code, spent.json()["balance"], spent.json()["is_new"]) == (200, 5, True)
    replay = await client.post("/api/v1/consumer/members/me/points/redemptions", json=redeem, headers=me)
    assert (replay.json()["balance"], replay.json()["is_new"]) == (5, False)
    broke = await client.post(
        "/api/v1/consumer/members/me/points/redemptions", json={"points": 6, "idempotency_key": "cup-2"}, headers=me
    )
    assert (broke.status_code, broke.json()["error"]) == (409, "not_enough_points")
    assert "You have 5 points" in broke.json()["detail"]
    zero = await client.post(
        "/api/v1/consumer/members/me/points/redemptions", json={"points": 0, "idempotency_key": "z"}, headers=me
    )
    assert zero.status_code == 422

    shown = (await client.get("/api/v1/consumer/members/me/points", headers=me)).json()
    assert (shown["balance"], shown["lots"]) == (5, None)
    assert sorted((h["kind"], h["amount"]) for h in shown["history"]) == [
        ("points_earn", 10),
        ("points_earn", 15),
        ("points_redeem", -20),
    ]
    assert sum(e["points"] for e in shown["expiring"]) == 5
    member_id = shown["member_id"]
    staff_view = (await client.get(f"/api/v1/members/{member_id}/points", headers=staff)).json()
    assert [(lot["rule"], lot["amount"], lot["remaining"]) for lot in staff_view["lots"]] == [
        ("sign_in", 10, 0),
        ("sign_in", 15, 5),
    ]
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        benefits = await queries.benefits_for_consumer(session, runtime.crypto, consumer.id)
    assert [(b.tier_code, b.discount_bp, b.birthday_gift) for b in benefits] == [("gold", 800, True)]


def test_the_lottery_draw_takes_no_tier() -> None:
    """Equal odds: a draw's entry carries no weight, and the lottery reads nothing of loyalty."""
    assert [f.name for f in dataclasses.fields(DrawEntry)] == [
        "entry_id",
        "product_id",
        "store_id",
        "leaf_hash",
        "excluded",
    ]
    loyalty_modules = {f"zhongtai.members.{name}" for name in ("loyalty", "points", "earning", "loyalty_models")}
    for path in Path(lottery_rules.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names = {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert not (imported | names) & loyalty_modules, path.name


async def test_spend_tiers_count_paid_fen_and_leave_refunded_orders_out(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("purchase", 0))  # spend counts even with no points
    tiers = [lr.TierDraft("member", "会员", 0), lr.TierDraft("vip", "贵宾", 50_000, discount_bp=1_000)]
    draft = loyalty.ProgramDraft("spend", "消费", tiers, qualify_by="spend", downgrade_mode="rolling")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await loyalty.do_save_program(session, system_actor(brand.id), draft)
    member = await new_member(runtime, brand)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rule = await loyalty.active_rule(session, "purchase")
        assert rule is not None
        await points.do_earn(session, member, rule, source="order:1", points=0, qualifying_fen=49_999)
        await points.do_earn(session, member, rule, source="order:2", points=0, qualifying_fen=1)
    assert await tiers_held(runtime, brand, member) == {"spend": "vip"}
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await points.do_reverse_earning(session, rule="purchase", source="order:2")
        assert await earning.do_daily(session) == (0, 1)
    assert await tiers_held(runtime, brand, member) == {"spend": "member"}


# --- batch earning ---------------------------------------------------------------------------------


async def test_concurrent_duplicate_batches_earn_exactly_once_and_upgrade_tiers(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("review", 1))
    await save_program(runtime, brand, "main", "period_end")
    members = [await new_member(runtime, brand) for _ in range(4)]

    async def run(offset: int) -> list[bool]:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            rule = await loyalty.active_rule(session, "review")
            assert rule is not None
            requests = [
                points.EarnRequest(members[(offset + i) % 4], rule, f"review:{(offset + i) % 4}", 60) for i in range(4)
            ] + [points.EarnRequest(members[offset % 4], rule, f"extra:{offset % 4}", 40)]
            return [e.is_new for e in await points.do_earn_many(session, requests) if e is not None]

    results = await asyncio.gather(*(run(offset) for offset in range(4)))
    assert sum(sum(r) for r in results) == 8  # 4 reviews + 4 extras, each once
    for n, member in enumerate(members):
        balance, lots = await state(runtime, brand, member)
        assert (balance, sorted(lots)) == (100, [(f"extra:{n}", 40, 40), (f"review:{n}", 60, 60)])
        assert await tiers_held(runtime, brand, member) == {"main": "gold"}
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        issued = await ledger.balance_of(session, await points.issued_account(session))
    assert issued == -400


async def test_the_earn_job_takes_pending_siblings_into_one_batch(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("scan", 5))
    consumers = [(await make_consumer(runtime, brand))[0] for _ in range(3)]
    for n, consumer in enumerate(consumers):
        event = ItemEvent(brand.id, "consumer_open", n, None, None, utcnow(), f"cv:{n}", consumer_id=consumer.id)
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await earning.on_item_event(session, event)
    worker = Worker(runtime.db, batch_size=1)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0, "the first job earned its pending siblings too"
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        statuses = list(await session.scalars(select(OutboxJob.status)))
        assert statuses == ["done"] * 3
        assert await session.scalar(select(func.sum(PointsLot.amount))) == 15
        assert (await ledger.recompute_balances(session)).ok


async def test_a_failing_batch_leaves_the_siblings_pending_and_the_job_earns_alone(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await set_rules(runtime, brand, loyalty.RuleDraft("scan", 5))
    consumer, _ = await make_consumer(runtime, brand)
    good = {"kind": "scan", "source": "code:1", "consumer_id": str(consumer.id), "at": utcnow().isoformat()}
    bad = good | {"source": "x" * 121}  # refused by do_earn_many: the whole batch is undone
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await jobs.enqueue(session, earning.EARN_TOPIC, good, dedupe_key="good")
        await jobs.enqueue(session, earning.EARN_TOPIC, bad, dedupe_key="bad")
    worker = Worker(runtime.db, batch_size=1)
    assert await worker.run_once() == 1
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        rows = (await session.execute(select(OutboxJob.dedupe_key, OutboxJob.status).order_by(OutboxJob.id))).all()
        assert [tuple(row) for row in rows] == [("good", "done"), ("bad", "pending")]
        assert list(await session.scalars(select(PointsLot.source))) == ["code:1"]
