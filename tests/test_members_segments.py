"""Touches, lifecycle stages, RFM, tags and segments of members — on both tiers.

The reference check evaluates every segment expression a second time, member by member, with the Rust
CEL evaluator (`cel.evaluate`, an implementation independent of ours), over a few thousand members
with random facts (some missing), and expects the very same members.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import cel
import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import Brand, bearer, make_brand, make_token, system_actor
from tests.members_factories import make_consumer
from zhongtai.codes.events import ItemEvent
from zhongtai.core import domain_events
from zhongtai.core.clock import utcnow
from zhongtai.core.jobs import Worker
from zhongtai.core.models import OutboxJob
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.members import expressions, facts, lifecycle, oneid, privacy, segments, tags, touches
from zhongtai.members.cli import run_lifecycle
from zhongtai.members.models import Member
from zhongtai.members.oneid import IdentifierInput, ProfileInput
from zhongtai.members.segment_models import MemberFacts, MemberStageTransition, MemberTagLog, MemberTouch
from zhongtai.sales.events import OrderPaid

CITIES = ["杭州", "上海", "北京", "成都"]
EXPRESSIONS = [
    'city == "杭州"',
    '!(city == "杭州")',
    'city != "杭州"',
    'gender in ["male", "other"]',
    '!(gender in ["male"]) && age >= 30',
    'age >= 18 && age < 30 || "vip" in tags',
    'age >= 18 && (age < 30 || "vip" in tags)',
    'stage in ["at_risk", "dormant"] || days_since_touch > 60',
    "!(days_since_touch <= 30) && purchases > 0",
    "recency_score >= 4 && frequency_score >= 4 && monetary_score == 5",
    '"tmall" in channels && !("jd" in channels)',
    'birthday_month == 5 || birthday_month == 6 && city != "上海"',
    'spend_fen > 50000 || scans >= 10 && !(stage == "churned")',
    '!("vip" in tags) || !(city in ["北京", "上海"])',
    '"新客" in tags && gender == "female"',
    "true && scans > 5",
    "false || -1 < scans && purchases < 4",
    "city in []",
    "!(!(age > 40) || monetary_score < 3)",
    "30 <= age && 5 >= recency_score",
]


# --- helpers ---------------------------------------------------------------------------------------


def _profile(city: str | None, gender: str | None, birthday: date | None) -> dict[str, Any]:
    at = utcnow().isoformat()
    entries: dict[str, Any] = {}
    for name, value in (("city", city), ("gender", gender), ("birthday", birthday.isoformat() if birthday else None)):
        if value is not None:
            entries[name] = {"value": value, "source": "app", "verified": True, "at": at}
    return entries


async def _members(
    runtime: Runtime, brand: Brand, count: int, rng: random.Random, *, joined_days_ago: int = 0
) -> list[uuid.UUID]:
    """`count` members inserted directly (fast), with random profiles, some fields missing."""
    created = utcnow() - timedelta(days=joined_days_ago)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = []
        for _ in range(count):
            birthday = (
                date(rng.randint(1950, 2010), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.8 else None
            )
            profile = _profile(rng.choice([*CITIES, None]), rng.choice(["male", "female", "other", None]), birthday)
            rows.append(Member(profile=profile, created_at=created, updated_at=created))
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


def _randomize(row: MemberFacts, rng: random.Random, now: datetime) -> None:
    row.stage = rng.choice(lifecycle.STAGES)
    has_scores = rng.random() < 0.7
    row.recency_score = rng.randint(1, 5) if has_scores else None
    row.frequency_score = rng.randint(1, 5) if has_scores else None
    row.monetary_score = rng.randint(1, 5) if rng.random() < 0.9 and has_scores else None
    row.scans = rng.randint(0, 20)
    row.purchases = rng.randint(0, 10)
    row.spend_fen = rng.randint(0, 100_000)
    row.last_touch_at = now - timedelta(days=rng.randint(0, 300)) if rng.random() < 0.85 else None
    row.channels = sorted(rng.sample(["tmall", "jd", "store", "app"], rng.randint(0, 3)))
    row.tags = sorted(rng.sample(["vip", "gold", "新客"], rng.randint(0, 2)))


def _reference(expression: str, rows: list[MemberFacts], on: date) -> set[int]:
    """The members CEL itself selects: missing facts left undefined, an error is not a match."""
    selected = set()
    for row in rows:
        if not row.is_active:
            continue
        try:
            hit = cel.evaluate(expression, facts.fact_values(row, on))
        except Exception:  # undefined fact: CEL's error, which selects nobody
            hit = False
        if hit is True:
            selected.add(row.seq)
    return selected


async def _random_world(runtime: Runtime, brand: Brand, count: int, seed: int) -> date:
    rng = random.Random(seed)
    await _members(runtime, brand, count, rng)
    now = utcnow()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await facts.do_sync_facts(session, brand.id)
        for row in await session.scalars(select(MemberFacts)):
            _randomize(row, rng, now)
    return facts.local_date(now)


async def _all_facts(session: Any) -> list[MemberFacts]:
    return list(await session.scalars(select(MemberFacts).order_by(MemberFacts.seq)))


# --- the compiler ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("age", "`age` alone is not a condition"),
        ("profile.city == 1", "field access (a.b)"),
        ("size(tags) > 1", "function calls"),
        ("age + 1 > 2", "arithmetic (+ -)"),
        ('city > "a"', "`city` is a string: compare it with == or != only"),
        ('age == "x"', "`age` is a whole number"),
        ('tags == "vip"', '`tags` is a list; ask `"value" in tags`'),
        ("income > 3", "Unknown fact `income`"),
        ("age >", "This is not a valid CEL expression"),
        ("age > 1.5", "The literal 1.5 is not supported"),
        ("age > 1 ? true : false", "The conditional operator `? :` is not supported"),
        ("city == null", "The literal null is not supported"),
        ("age == scans", "Each comparison needs one fact and one literal"),
        ("", "Write an expression."),
    ],
)
def test_unsupported_expressions_are_refused_naming_the_subset(expression: str, message: str) -> None:
    with pytest.raises(expressions.UnsupportedExpression) as refused:
        expressions.compile_expression(expression)
    assert message in str(refused.value)
    assert "Supported: facts (city, gender" in str(refused.value)
    assert refused.value.status_code == 422


def test_computed_tags_cannot_look_at_tags() -> None:
    with pytest.raises(expressions.UnsupportedExpression, match="A computed tag cannot depend on tags"):
        expressions.compile_expression('"vip" in tags', allow_tags=False)


def test_rfm_quintiles_on_known_values() -> None:
    assert lifecycle.quintiles(list(range(1, 11))) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert lifecycle.quintiles([7, 7, 7]) == [1, 1, 1]
    assert lifecycle.quintiles([3, 1, 2, 2, 5]) == [4, 1, 2, 2, 5]
    assert lifecycle.quintiles([]) == []


def test_stage_rules_at_exact_day_boundaries() -> None:
    t = lifecycle.Thresholds()
    on, joined = date(2026, 6, 30), date(2026, 1, 1)

    def stage(days_idle: int, previous: str = "active", since: date = joined) -> str:
        last = on - timedelta(days=days_idle)
        return lifecycle.stage_on(previous=previous, since=since, last_activity=last, joined=joined, on=on, t=t).name

    assert [stage(d) for d in (0, 44, 45, 89, 90, 179, 180)] == [
        "active",
        "active",
        "at_risk",
        "at_risk",
        "dormant",
        "dormant",
        "churned",
    ]
    assert stage(0, "dormant") == "won_back"
    assert stage(3, "churned") == "won_back"
    assert stage(0, "won_back", since=on - timedelta(days=29)) == "won_back"
    assert stage(0, "won_back", since=on - timedelta(days=30)) == "active"
    assert stage(0, "at_risk") == "active"
    new = lifecycle.stage_on(previous="new", since=on, last_activity=on, joined=on - timedelta(days=29), on=on, t=t)
    assert new.name == "new"


# --- the reference check ---------------------------------------------------------------------------


async def test_every_segment_matches_the_rust_cel_evaluator(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    on = await _random_world(runtime, brand, 2000, seed=15)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = await _all_facts(session)
        assert [r.seq for r in rows] == list(range(1, 2001))
        for expression in EXPRESSIONS:
            program = expressions.compile_expression(expression)
            result = await segments.evaluate_all(session, program, on)
            expected = _reference(expression, rows, on)
            assert set(result.bitmap) == expected, expression
            assert result.evaluated == 2000
        # The cases are not trivial: each selects some members and leaves others out.
        sizes = [len(_reference(e, rows, on)) for e in EXPRESSIONS]
        assert [e for n, e in zip(sizes, EXPRESSIONS, strict=True) if not 0 < n < 2000] == ["city in []"]
        # Missing values: a negated condition on an unknown city does not select the member.
        unknown_city = {r.seq for r in rows if r.city is None}
        assert unknown_city
        assert not unknown_city & set(
            (await segments.evaluate_all(session, expressions.compile_expression('!(city == "杭州")'), on)).bitmap
        )


async def test_incremental_refresh_equals_a_full_recompute(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    on = await _random_world(runtime, brand, 1500, seed=7)
    rng = random.Random(99)
    t0 = utcnow()
    saved = EXPRESSIONS[:8]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        ids = []
        for n, expression in enumerate(saved):
            segment = await segments.do_create_segment(session, brand.id, f"segment {n}", expression)
            await segments.do_refresh(session, segment, full=True, on=on, at=t0 + timedelta(hours=1))
            ids.append(segment.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = await _all_facts(session)
        changed = rng.sample(rows, 150)
        for row in changed:
            _randomize(row, rng, t0)
            row.updated_at = t0 + timedelta(hours=2)
        for row in changed[:10]:
            row.is_active = False  # merged or erased: leaves every segment
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = await _all_facts(session)
        for segment_id, expression in zip(ids, saved, strict=True):
            segment = await segments.get_segment(session, segment_id)
            result = await segments.do_refresh(session, segment, on=on, at=t0 + timedelta(hours=3))
            assert result.evaluated == 150, expression
            full = await segments.evaluate_all(session, expressions.compile_expression(expression), on)
            assert set(segments.bitmap_of(segment)) == set(full.bitmap) == _reference(expression, rows, on)
            assert segment.member_count == len(full.bitmap)
            # Nothing changed since: the next incremental refresh evaluates nobody.
            again = await segments.do_refresh(session, segment, on=on, at=t0 + timedelta(hours=4))
            assert again.evaluated == 0
            assert set(segments.bitmap_of(segment)) == set(full.bitmap)


# --- touches and lifecycle -------------------------------------------------------------------------


async def _touch(
    runtime: Runtime, brand: Brand, member_id: uuid.UUID, kind: str, at: datetime, ref: str, **kw: Any
) -> bool:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await touches.record_touch(session, member_id, kind, at, ref, **kw)


async def _stages(runtime: Runtime, brand: Brand) -> dict[uuid.UUID, str]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        return {row.member_id: row.stage for row in await session.scalars(select(MemberFacts))}


async def _transitions(runtime: Runtime, brand: Brand) -> list[tuple[uuid.UUID, str | None, str, str]]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        rows = await session.scalars(
            select(MemberStageTransition).order_by(MemberStageTransition.at, MemberStageTransition.id)
        )
        return [(r.member_id, r.from_stage, r.to_stage, r.reason) for r in rows]


async def _facts_snapshot(runtime: Runtime, brand: Brand) -> dict[uuid.UUID, dict[str, Any]]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        return {
            row.member_id: {c.key: getattr(row, c.key) for c in MemberFacts.__table__.columns}
            for row in await session.scalars(select(MemberFacts))
        }


async def _run(runtime: Runtime, brand: Brand, on: date) -> lifecycle.LifecycleRun:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await lifecycle.do_run_lifecycle(session, brand.id, on=on)


async def test_touches_are_recorded_once_per_kind_and_reference(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    (member_id,) = await _members(runtime, brand, 1, random.Random(1))
    now = utcnow()
    assert await _touch(runtime, brand, member_id, "purchase", now, "order:1", amount_fen=1200, channel="tmall")
    assert not await _touch(runtime, brand, member_id, "purchase", now, "order:1", amount_fen=1200, channel="tmall")
    assert await _touch(runtime, brand, member_id, "scan", now, "order:1", channel="scan")
    assert await _touch(runtime, brand, member_id, "guide_call", now - timedelta(days=2), "call:7")
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        row = await touches.facts_of(session, member_id)
        assert row is not None
        assert (row.purchases, row.scans, row.spend_fen, row.channels) == (1, 1, 1200, ["scan", "tmall"])
        assert row.last_touch_at == now
        assert len(await touches.touches_of(session, member_id)) == 3
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        with pytest.raises(Exception, match="Unknown touch kind 'fax'"):
            await touches.record_touch(session, member_id, "fax", now, "x")


async def test_lifecycle_stages_at_exact_day_boundaries_and_won_back(runtime: Runtime) -> None:
    brand, other = await make_brand(runtime), await make_brand(runtime)
    now = utcnow()
    on = facts.local_date(now)
    a, b, c, d, e = await _members(runtime, brand, 5, random.Random(2), joined_days_ago=100)
    (fresh,) = await _members(runtime, brand, 1, random.Random(3))
    await _touch(runtime, brand, a, "scan", now - timedelta(days=44), "a")
    await _touch(runtime, brand, b, "scan", now - timedelta(days=45), "b")
    await _touch(runtime, brand, c, "app_visit", now - timedelta(days=90), "c")
    await _touch(runtime, brand, d, "message", now - timedelta(days=180), "d")
    # The other brand counts at risk from 44 days: its member touched 44 days ago is at risk there.
    async with runtime.db.unit_of_work(tenant_id=other.id) as session:
        await lifecycle.do_set_thresholds(session, other.id, lifecycle.Thresholds(at_risk_days=44))
    (x,) = await _members(runtime, other, 1, random.Random(4), joined_days_ago=100)
    await _touch(runtime, other, x, "scan", now - timedelta(days=44), "a")

    run = await _run(runtime, brand, on)
    assert (run.members, run.transitions) == (6, 5)
    assert await _stages(runtime, brand) == {
        a: "active",
        b: "at_risk",
        c: "dormant",
        d: "churned",
        e: "dormant",
        fresh: "new",
    }
    assert sorted(await _transitions(runtime, brand)) == sorted(
        [
            (a, "new", "active", "30 days since joining"),
            (b, "new", "at_risk", "no touch for 45 days"),
            (c, "new", "dormant", "no touch for 90 days"),
            (d, "new", "churned", "no touch for 180 days"),
            (e, "new", "dormant", "no touch for 90 days"),
        ]
    )
    assert (await _run(runtime, other, on)).transitions == 1
    assert await _stages(runtime, other) == {x: "at_risk"}

    # The same day again changes nothing at all.
    before = await _facts_snapshot(runtime, brand)
    assert (await _run(runtime, brand, on)).transitions == 0
    assert await _facts_snapshot(runtime, brand) == before
    assert len(await _transitions(runtime, brand)) == 5

    # A touch after dormancy wins the member back at once; at risk becomes active.
    await _touch(runtime, brand, c, "purchase", now, "order:c", amount_fen=500)
    await _touch(runtime, brand, b, "scan", now, "b-again")
    stages = await _stages(runtime, brand)
    assert (stages[c], stages[b]) == ("won_back", "active")
    assert (await _transitions(runtime, brand))[-2:] == [
        (c, "dormant", "won_back", "touched again after being dormant"),
        (b, "at_risk", "active", "touched again"),
    ]
    assert (await _run(runtime, brand, on)).transitions == 0
    assert (await _stages(runtime, brand))[c] == "won_back"
    # Thirty days later the won-back member is simply active.
    later = on + timedelta(days=30)
    await _run(runtime, brand, later)
    assert (await _stages(runtime, brand))[c] == "active"


async def test_rfm_scores_on_known_data(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    now = utcnow()
    ids = await _members(runtime, brand, 11, random.Random(5), joined_days_ago=200)
    buyers, browser = ids[:10], ids[10]
    for i, member_id in enumerate(buyers, start=1):
        last = now - timedelta(days=10 - i)
        for n in range(i):  # i purchases, the whole spend on the first: (11 - i) × 10 yuan
            amount = (11 - i) * 1000 if n == 0 else 0
            await _touch(
                runtime, brand, member_id, "purchase", last - timedelta(hours=n), f"o-{i}-{n}", amount_fen=amount
            )
    await _touch(runtime, brand, browser, "scan", now, "scan-1")
    await _run(runtime, brand, facts.local_date(now))
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        rows = {r.member_id: r for r in await session.scalars(select(MemberFacts))}
        scores = [(rows[m].recency_score, rows[m].frequency_score, rows[m].monetary_score) for m in buyers]
        browsed = (rows[browser].recency_score, rows[browser].frequency_score, rows[browser].monetary_score)
        purchases = [rows[m].purchases for m in buyers]
    assert scores == [
        (1, 1, 5),
        (1, 1, 5),
        (2, 2, 4),
        (2, 2, 4),
        (3, 3, 3),
        (3, 3, 3),
        (4, 4, 2),
        (4, 4, 2),
        (5, 5, 1),
        (5, 5, 1),
    ]
    assert browsed == (None, None, None)
    assert purchases == list(range(1, 11))


async def test_scans_and_paid_orders_become_touches_of_members_only(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    member_consumer, _ = await make_consumer(runtime, brand)
    stranger, _ = await make_consumer(runtime, brand)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        linked = await oneid.do_link(
            session,
            system_actor(brand.id),
            runtime.crypto,
            identifiers=[IdentifierInput("consumer_account", str(member_consumer.id), True)],
            source="app",
        )
    assert "members.touch" in domain_events.subscriber_names(ItemEvent)
    assert "members.touch" in domain_events.subscriber_names(OrderPaid)
    now = utcnow()
    for consumer_id in (member_consumer.id, stranger.id):
        for _attempt in range(2):  # a producer's retry publishes again: one touch
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await touches.on_item_event(
                    session,
                    ItemEvent(
                        tenant_id=brand.id,
                        kind="consumer_open",
                        code_id=41,
                        product_id=None,
                        lot_id=None,
                        occurred_at=now,
                        source_ref=f"consumer-verify:{consumer_id}",
                        consumer_id=consumer_id,
                    ),
                )
                paid = OrderPaid(
                    tenant_id=brand.id,
                    order_id=uuid.uuid5(uuid.NAMESPACE_OID, str(consumer_id)),
                    source="flashsale",
                    source_ref="sale-1",
                    product_id=uuid.uuid4(),
                    quantity=1,
                    consumer_id=consumer_id,
                    amount_fen=2999,
                )
                await domain_events.publish(session, paid)
    worker = Worker(runtime.db)
    while await worker.run_once():
        pass
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        rows = list(await session.scalars(select(MemberTouch).order_by(MemberTouch.kind)))
        assert [(r.member_id, r.kind, r.amount_fen, r.channel) for r in rows] == [
            (linked.member.id, "purchase", 2999, "flashsale"),
            (linked.member.id, "scan", 0, "scan"),
        ]
        row = await touches.facts_of(session, linked.member.id)
        assert row is not None
        assert (row.purchases, row.scans, row.spend_fen) == (1, 1, 2999)


async def test_merge_unmerge_and_erasure_carry_facts_tags_and_touches(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    actor = system_actor(brand.id)
    phone = IdentifierInput("phone", "13912345678", True)
    union = IdentifierInput("wechat_unionid", "union-seg", True)
    profile = ProfileInput(name="欧阳龙飞", city="杭州", gender="male", birthday=date(1988, 5, 20), verified=True)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        first = (
            await oneid.do_link(session, actor, runtime.crypto, identifiers=[phone], profile=profile, source="pos")
        ).member
        second = (await oneid.do_link(session, actor, runtime.crypto, identifiers=[union], source="wechat")).member
        await tags.do_create_tag(session, "vip", "manual", None)
        await tags.do_assign(session, actor, "vip", second.id)
    now = utcnow()
    await _touch(runtime, brand, first.id, "purchase", now, "order:f", amount_fen=100)
    await _touch(runtime, brand, second.id, "purchase", now, "order:s", amount_fen=900)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        segment = await segments.do_create_segment(session, brand.id, "vip buyers", '"vip" in tags && purchases >= 2')
        assert segment.member_count == 0
        merged = await oneid.do_link(session, actor, runtime.crypto, identifiers=[phone, union], source="pos")
        assert merged.merged_member_ids == [second.id]
        await segments.do_refresh(session, segment)
        survivor = await touches.facts_of(session, first.id)
        gone = await touches.facts_of(session, second.id)
        assert survivor is not None
        assert gone is not None
        assert (survivor.purchases, survivor.spend_fen, survivor.tags) == (2, 1000, ["vip"])
        assert (gone.is_active, gone.purchases, gone.tags) == (False, 0, [])
        assert list(segments.bitmap_of(segment)) == [survivor.seq]
        (merge,) = await oneid.merges_of(session, first.id)
        await oneid.do_unmerge(session, actor, merge.id, "two people")
        survivor = await touches.facts_of(session, first.id)
        back = await touches.facts_of(session, second.id)
        assert survivor is not None
        assert back is not None
        assert (survivor.purchases, survivor.spend_fen) == (1, 100)
        assert (back.is_active, back.purchases, back.spend_fen) == (True, 1, 900)
        await privacy.do_erase(session, actor, first.id, "the member asked", crypto=runtime.crypto)
        erased = await touches.facts_of(session, first.id)
        assert erased is not None
        assert (erased.city, erased.gender, erased.birth_date, erased.is_active, erased.tags) == (
            None,
            None,
            None,
            False,
            [],
        )
        await segments.do_refresh(session, segment)
        assert segment.member_count == 0
    # Nothing personal is kept in the facts (never the name or the phone; the city erased).
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        dump = repr([[getattr(r, c.key) for c in MemberFacts.__table__.columns] for r in await _all_facts(session)])
    for secret in ("欧阳龙飞", "13912345678", "杭州", "1988"):
        assert secret not in dump


# --- the API -------------------------------------------------------------------------------------


async def _api_world(runtime: Runtime, brand: Brand) -> list[uuid.UUID]:
    actor = system_actor(brand.id)
    people = [("张三", "杭州", "13800000001"), ("李四", "杭州", "13800000002"), ("王五", "上海", "13800000003")]
    ids = []
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for name, city, phone in people:
            linked = await oneid.do_link(
                session,
                actor,
                runtime.crypto,
                identifiers=[IdentifierInput("phone", phone, True)],
                profile=ProfileInput(name=name, city=city, verified=True),
                source="pos",
            )
            ids.append(linked.member.id)
    for n, member_id in enumerate(ids):
        await _touch(runtime, brand, member_id, "purchase", utcnow(), f"order:{n}", amount_fen=3000 * (n + 1))
    return ids


async def test_segments_tags_and_lifecycle_api(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand, other = await make_brand(runtime), await make_brand(runtime)
    first, second, third = await _api_world(runtime, brand)
    await _api_world(runtime, other)
    token, other_token = bearer(await make_token(runtime, brand)), bearer(await make_token(runtime, other))
    base = "/api/v1/members"

    refused = await client.post(f"{base}/segments/preview", json={"expression": "size(tags) > 1"}, headers=token)
    assert refused.status_code == 422
    assert refused.json()["error"] == "unsupported_expression"
    assert "function calls" in refused.json()["detail"]
    assert "Supported:" in refused.json()["detail"]
    shown = await client.post(f"{base}/segments/preview", json={"expression": 'city == "杭州"'}, headers=token)
    assert shown.status_code == 200, shown.text
    assert shown.json()["count"] == 2
    assert sorted(s["name_masked"] for s in shown.json()["sample"]) == ["张*", "李*"]
    assert "张三" not in shown.text
    assert "13800000001" not in shown.text

    # Tags: a computed one and a manual one, every manual change logged.
    computed = await client.post(
        f"{base}/tags",
        json={"name": "big_spender", "kind": "computed", "expression": "spend_fen >= 6000"},
        headers=token,
    )
    assert computed.status_code == 201, computed.text
    assert (await client.post(f"{base}/tags", json={"name": "vip", "kind": "manual"}, headers=token)).status_code == 201
    assert (await client.post(f"{base}/tags", json={"name": "vip", "kind": "manual"}, headers=token)).status_code == 409
    looping = await client.post(
        f"{base}/tags", json={"name": "loop", "kind": "computed", "expression": '"vip" in tags'}, headers=token
    )
    assert looping.status_code == 422
    assigned = await client.put(f"{base}/{first}/tags/vip", headers=token)
    assert assigned.json() == {"member_id": str(first), "tag": "vip", "changed": True, "tags": ["vip"]}
    assert (await client.put(f"{base}/{first}/tags/vip", headers=token)).json()["changed"] is False
    assert (await client.put(f"{base}/{second}/tags/vip", headers=token)).json()["tags"] == ["big_spender", "vip"]
    removed = await client.delete(f"{base}/{second}/tags/vip", headers=token)
    assert removed.json()["tags"] == ["big_spender"]
    assert (await client.put(f"{base}/{second}/tags/big_spender", headers=token)).status_code == 422
    assert (await client.put(f"{base}/{second}/tags/nope", headers=token)).status_code == 404
    seen = await client.get(f"{base}/{second}/facts", headers=token)
    assert seen.status_code == 200, seen.text
    assert [(log["tag"], log["action"]) for log in seen.json()["tag_log"]] == [("vip", "assign"), ("vip", "unassign")]
    assert seen.json()["facts"]["spend_fen"] == 6000
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(MemberTagLog)) == 3

    # Saved segments: create, read, change, refresh, export, delete.
    created = await client.post(
        f"{base}/segments",
        json={"name": "Hangzhou or VIP", "expression": 'city == "杭州" || "vip" in tags'},
        headers=token,
    )
    assert created.status_code == 201, created.text
    segment_id = created.json()["id"]
    assert created.json()["member_count"] == 2
    assert (
        await client.post(
            f"{base}/segments", json={"name": "Hangzhou or VIP", "expression": "scans > 0"}, headers=token
        )
    ).status_code == 409
    assert [s["name"] for s in (await client.get(f"{base}/segments", headers=token)).json()] == ["Hangzhou or VIP"]
    changed = await client.patch(
        f"{base}/segments/{segment_id}", json={"expression": '"big_spender" in tags'}, headers=token
    )
    assert changed.json()["member_count"] == 2
    await client.put(f"{base}/{first}/tags/vip", headers=token)  # no change: already there
    refreshed = await client.post(f"{base}/segments/{segment_id}/refresh", headers=token)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["segment"]["member_count"] == 2
    exported = await client.get(f"{base}/segments/{segment_id}/export", headers=token)
    assert exported.status_code == 200
    assert exported.text.split("\r\n")[0] == "member_id"
    assert sorted(exported.text.split("\r\n")[1:-1]) == sorted([str(second), str(third)])
    bad = await client.patch(f"{base}/segments/{segment_id}", json={"expression": "age >"}, headers=token)
    assert bad.status_code == 422
    assert "not a valid CEL expression" in bad.json()["detail"]

    # Another brand sees none of it.
    assert (await client.get(f"{base}/segments/{segment_id}", headers=other_token)).status_code == 404
    assert (await client.get(f"{base}/segments/{segment_id}/export", headers=other_token)).status_code == 404
    assert (await client.put(f"{base}/{first}/tags/vip", headers=other_token)).status_code == 404
    theirs = await client.post(f"{base}/segments/preview", json={"expression": '"vip" in tags'}, headers=other_token)
    assert theirs.json()["count"] == 0
    assert (await client.get(f"{base}/segments", headers=other_token)).json() == []

    # Lifecycle thresholds per brand.
    defaults = await client.get(f"{base}/lifecycle/settings", headers=token)
    assert defaults.json() == {
        "new_days": 30,
        "at_risk_days": 45,
        "dormant_days": 90,
        "churned_days": 180,
        "lifecycle_ran_on": None,
    }
    wrong = await client.put(
        f"{base}/lifecycle/settings",
        json={"new_days": 30, "at_risk_days": 90, "dormant_days": 60, "churned_days": 180},
        headers=token,
    )
    assert wrong.status_code == 422
    assert "Days must grow" in wrong.json()["detail"]
    ok = await client.put(
        f"{base}/lifecycle/settings",
        json={"new_days": 7, "at_risk_days": 30, "dormant_days": 60, "churned_days": 120},
        headers=token,
    )
    assert ok.status_code == 200
    ran = await client.post(f"{base}/lifecycle/run", headers=token)
    assert ran.json() == {"members": 3, "transitions": 0}
    assert (await client.get(f"{base}/lifecycle/settings", headers=other_token)).json()["at_risk_days"] == 45

    # Touches from outside the platform: once per kind and ref.
    called = await client.post(
        f"{base}/{third}/touches", json={"kind": "guide_call", "ref": "call-1", "channel": "store"}, headers=token
    )
    assert called.status_code == 201, called.text
    assert (called.json()["is_new"], called.json()["touch"]["channel"]) == (True, "store")
    again = await client.post(f"{base}/{third}/touches", json={"kind": "guide_call", "ref": "call-1"}, headers=token)
    assert (again.status_code, again.json()["is_new"]) == (200, False)
    wrong_kind = await client.post(f"{base}/{third}/touches", json={"kind": "fax", "ref": "f"}, headers=token)
    assert wrong_kind.status_code == 422
    assert "Unknown touch kind 'fax'" in wrong_kind.json()["detail"]
    facts_shown = (await client.get(f"{base}/{third}/facts", headers=token)).json()
    assert [t["kind"] for t in facts_shown["touches"]] == ["guide_call", "purchase"]
    assert facts_shown["facts"]["channels"] == ["store"]

    assert (await client.delete(f"{base}/segments/{segment_id}", headers=token)).status_code == 204
    assert (await client.get(f"{base}/segments/{segment_id}", headers=token)).status_code == 404


async def test_cli_runs_a_brand_now_and_schedules_every_brand_once_a_day(runtime: Runtime, settings: Settings) -> None:
    brand = await make_brand(runtime)
    await _members(runtime, brand, 2, random.Random(6), joined_days_ago=100)
    done = await run_lifecycle(settings, tenant_slug=brand.tenant.slug)
    assert (done["members"], done["transitions"]) == (2, 2)  # never touched in 100 days: dormant
    assert brand.tenant.slug in (await run_lifecycle(settings, tenant_slug=None))["scheduled"]
    assert brand.tenant.slug in (await run_lifecycle(settings, tenant_slug=None))["scheduled"]
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        topics = list(
            await session.scalars(select(OutboxJob.topic).where(OutboxJob.topic == lifecycle.LIFECYCLE_TOPIC))
        )
    assert topics == [lifecycle.LIFECYCLE_TOPIC]
    worker = Worker(runtime.db)
    while await worker.run_once():
        pass
    assert len(await _transitions(runtime, brand)) == 2
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert (await facts.read_settings(session)).lifecycle_ran_on == facts.today()


async def test_concurrent_touches_of_one_member_are_all_counted(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    (member_id,) = await _members(runtime, brand, 1, random.Random(8))
    now = utcnow()
    refs = [f"scan-{n}" for n in range(6)] + ["scan-0", "scan-1"]  # two retries race their originals
    recorded = await asyncio.gather(*(_touch(runtime, brand, member_id, "scan", now, ref) for ref in refs))
    assert sorted(recorded) == [False, False, True, True, True, True, True, True]
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        row = await touches.facts_of(session, member_id)
        assert row is not None
        assert (row.scans, row.seq) == (6, 1)
        assert await session.scalar(select(func.count()).select_from(MemberFacts)) == 1
