"""Risk holds (velocity, a store far from its address, a consumer opening too many bottles, one device
behind many accounts), the review queue (release, reject, one decision per reward), withdrawals,
payout batches (sandbox and CSV), reconciliation and diversion penalties — on both tiers, with the
books recomputed after each test."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid

import pytest
from sqlalchemy import select

from tests.factories import make_brand, system_actor
from tests.ledger_factories import assert_books_balance
from tests.rewards_factories import balance, item_event, make_pool, make_rule, publish
from zhongtai.channel import rules as channel_rules
from zhongtai.channel import service as channel
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime
from zhongtai.rewards import grants, payouts, service
from zhongtai.rewards.errors import BadResultFile, BelowMinimum, NotEnoughInWallet, NotHeld
from zhongtai.rewards.models import RewardGrant


async def _settings(runtime: Runtime, tenant_id: uuid.UUID, **changes: object) -> None:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        await service.do_update_risk(session, system_actor(tenant_id), dict(changes))


async def _review(runtime: Runtime, tenant_id: uuid.UUID, grant_id: str, release: bool) -> RewardGrant:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return await grants.do_review(session, system_actor(tenant_id), uuid.UUID(grant_id), release=release, note="ok")


async def test_velocity_holds_then_release_pays_and_reject_returns_to_the_pool(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, kind="store_receive", role="store", amount_fen=100)
    await _settings(runtime, brand.id, velocity_per_hour=2)
    store = uuid.uuid4()
    results = [
        (await publish(runtime, item_event(brand.id, i, kind="store_receive", store_id=store)))[0] for i in range(4)
    ]
    assert [r["status"] for r in results] == ["paid", "paid", "held", "held"]
    assert results[2]["holds"] == ["velocity"]
    wallet = f"wallet:store:{store}"
    assert await balance(runtime, brand.id, wallet) == 200
    assert await balance(runtime, brand.id, service.HELD_KEY) == 200
    assert await balance(runtime, brand.id, service.pool_key(pool.id)) == 9_600
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        queue, total = await grants.review_queue(session)
        assert total == 2
        assert sorted(str(g.id) for g in queue) == sorted([results[2]["grant_id"], results[3]["grant_id"]])
        assert (await payouts.wallet_summary(session, f"store:{store}"))["held_fen"] == 200
    released = await _review(runtime, brand.id, results[2]["grant_id"], True)
    rejected = await _review(runtime, brand.id, results[3]["grant_id"], False)
    assert (released.status, rejected.status) == ("released", "rejected")
    assert await balance(runtime, brand.id, wallet) == 300
    assert await balance(runtime, brand.id, service.HELD_KEY) == 0
    assert await balance(runtime, brand.id, service.pool_key(pool.id)) == 9_700
    with pytest.raises(NotHeld):
        await _review(runtime, brand.id, results[3]["grant_id"], True)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("rewards.re%"))))
    assert sorted(actions) == ["rewards.reject", "rewards.release"]
    await assert_books_balance(runtime, brand.id)


async def test_two_operators_deciding_one_held_reward_decide_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, role="consumer", amount_fen=100)
    await _settings(runtime, brand.id, consumer_opens_per_day=1)
    consumer = uuid.uuid4()
    await publish(runtime, item_event(brand.id, 1, consumer_id=consumer))
    held = (await publish(runtime, item_event(brand.id, 2, consumer_id=consumer)))[0]
    assert (held["status"], held["holds"]) == ("held", ["consumer_opens"])

    async def decide(release: bool) -> str:
        try:
            return (await _review(runtime, brand.id, held["grant_id"], release)).status
        except NotHeld:
            return "refused"

    outcomes = await asyncio.gather(*(decide(i % 2 == 0) for i in range(6)))
    assert sorted(outcomes).count("refused") == 5
    consumer_balance = await balance(runtime, brand.id, f"wallet:consumer:{consumer}")
    pool_balance = await balance(runtime, brand.id, service.pool_key(pool.id))
    assert (consumer_balance, pool_balance) in ((200, 9_800), (100, 9_900))
    assert await balance(runtime, brand.id, service.HELD_KEY) == 0
    await assert_books_balance(runtime, brand.id)


async def test_a_store_scanning_far_from_its_address_is_held(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        actor = system_actor(brand.id)
        dealer = await channel.do_create_dealer(
            session, actor, runtime.crypto, channel_rules.DealerDraft(code="D1", name="华东经销")
        )
        # 上海 People's Square
        store = await channel.do_create_store(
            session,
            actor,
            runtime.crypto,
            channel_rules.StoreDraft(
                code="S1", name="人民广场店", dealer_code="D1", latitude=31.2304, longitude=121.4737
            ),
        )
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, kind="case_open", role="store", amount_fen=50)
    await make_rule(runtime, brand.id, pool, kind="case_open", role="dealer", amount_fen=10)
    near = item_event(
        brand.id, 1, kind="case_open", store_id=store.id, dealer_id=dealer.id, latitude=31.2330, longitude=121.4750
    )  # about 300 m away
    far = item_event(
        brand.id, 2, kind="case_open", store_id=store.id, dealer_id=dealer.id, latitude=39.9042, longitude=116.4074
    )  # Beijing
    assert [(g["role"], g["status"]) for g in await publish(runtime, near)] == [("store", "paid"), ("dealer", "paid")]
    far_result = await publish(runtime, far)
    assert [(g["role"], g["status"], g["holds"]) for g in far_result] == [
        ("store", "held", ["store_distance"]),
        ("dealer", "paid", []),
    ]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await grants.get_grant(session, uuid.UUID(far_result[0]["grant_id"]))
    assert row.hold_detail["store_distance"]["km"] > 1000
    await assert_books_balance(runtime, brand.id)


async def test_one_device_behind_many_consumers_is_held(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, role="consumer", amount_fen=10)
    await _settings(runtime, brand.id, device_accounts=2)
    device = "e" * 32
    statuses = [
        (await publish(runtime, item_event(brand.id, i, consumer_id=uuid.uuid4(), device_hash=device)))[0]["status"]
        for i in range(4)
    ]
    assert statuses == ["paid", "paid", "held", "held"]
    other_device = (await publish(runtime, item_event(brand.id, 9, consumer_id=uuid.uuid4(), device_hash="f" * 32)))[0]
    assert other_device["status"] == "paid"
    await assert_books_balance(runtime, brand.id)


async def test_withdrawal_batches_with_the_sandbox_and_a_csv_round_trip(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=100_000)
    await make_rule(runtime, brand.id, pool, kind="sale", role="guide", amount_fen=500)
    guides = [uuid.uuid4() for _ in range(3)]
    for i, guide in enumerate(guides):
        for j in range(2):
            await publish(runtime, item_event(brand.id, 10 * i + j, kind="sale", guide_id=guide))
    crypto = runtime.crypto

    async def request(party: str, amount: int, account: str, key: str) -> tuple[object, bool]:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return await payouts.do_request_withdrawal(
                session,
                crypto,
                party=party,
                amount_fen=amount,
                payee_name="=王小二",
                payee_account=account,
                request_key=key,
            )

    with pytest.raises(BelowMinimum):
        await request(f"guide:{guides[0]}", 99, "6222020000001234", "k0")
    with pytest.raises(NotEnoughInWallet):
        await request(f"guide:{guides[0]}", 1_001, "6222020000001234", "k0")
    first, created = await request(f"guide:{guides[0]}", 800, "6222020000001234", "k1")
    again, created_again = await request(f"guide:{guides[0]}", 800, "6222020000001234", "k1")
    assert (created, created_again) == (True, False)
    assert again.id == first.id  # type: ignore[attr-defined]
    await request(f"guide:{guides[1]}", 1_000, "alipay-closed-0000", "k1")  # the sandbox fails this one
    assert await balance(runtime, brand.id, f"wallet:guide:{guides[0]}") == 200
    assert await balance(runtime, brand.id, service.IN_TRANSIT_KEY) == 1_800

    actor = system_actor(brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        batch = await payouts.do_approve_batch(session, actor, crypto, provider="sandbox")
    assert (batch.count, batch.total_fen) == (2, 1_800)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        done = await payouts.do_reconcile_from_provider(session, actor, crypto, batch.id)
    assert (done.paid, done.failed, done.paid_fen, done.failed_fen) == (1, 1, 800, 1_000)
    assert await balance(runtime, brand.id, service.PAID_KEY) == 800
    assert await balance(runtime, brand.id, service.IN_TRANSIT_KEY) == 0
    assert await balance(runtime, brand.id, f"wallet:guide:{guides[1]}") == 1_000  # failed: back in the wallet
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert (await payouts.get_batch(session, batch.id)).status == "reconciled"

    # CSV: export for the bank, import its result file (twice: the second import changes nothing)
    third, _ = await request(f"guide:{guides[2]}", 1_000, "6222020000009999", "k1")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        exported = await payouts.do_approve_batch(session, actor, crypto, provider="csv")
        text = await payouts.export_csv(session, actor, crypto, exported.id)
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [(r["withdrawal_id"], r["payee_name"], r["payee_account"], r["amount_yuan"]) for r in rows] == [
        (str(third.id), "'=王小二", "6222020000009999", "10.00")  # type: ignore[attr-defined]
    ]
    result_file = f"withdrawal_id,status,provider_ref,reason\n{third.id},成功,BANK-1,\n".encode()  # type: ignore[attr-defined]
    for expected_paid in (1, 0):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            done = await payouts.do_reconcile(session, actor, exported.id, payouts.parse_results(result_file))
        assert done.paid == expected_paid
    contradicting = f"withdrawal_id,status\n{third.id},failed\n".encode()  # type: ignore[attr-defined]
    with pytest.raises(BadResultFile):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await payouts.do_reconcile(session, actor, exported.id, payouts.parse_results(contradicting))
    with pytest.raises(BadResultFile, match="cannot be read"):
        payouts.parse_results(b"withdrawal_id,status\nnot-an-id,paid\n")
    assert await balance(runtime, brand.id, service.PAID_KEY) == 1_800
    await assert_books_balance(runtime, brand.id)


async def test_concurrent_withdrawals_never_overdraw_a_wallet(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=100_000)
    await make_rule(runtime, brand.id, pool, kind="dealer_receive", role="dealer", amount_fen=1_000)
    dealer = uuid.uuid4()
    await publish(runtime, item_event(brand.id, 1, kind="dealer_receive", dealer_id=dealer))

    async def take(i: int) -> bool:
        try:
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await payouts.do_request_withdrawal(
                    session,
                    runtime.crypto,
                    party=f"dealer:{dealer}",
                    amount_fen=300,
                    payee_name="经销商",
                    payee_account="62220200001111",
                    request_key=f"k{i}",
                )
            return True
        except NotEnoughInWallet:
            return False

    results = await asyncio.gather(*(take(i) for i in range(8)))
    assert results.count(True) == 3
    assert await balance(runtime, brand.id, f"wallet:dealer:{dealer}") == 100
    await assert_books_balance(runtime, brand.id)


async def test_penalize_dealer_takes_at_most_the_wallet_once_per_reference(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pool = await make_pool(runtime, brand.id, funded=10_000)
    await make_rule(runtime, brand.id, pool, kind="dealer_receive", role="dealer", amount_fen=700)
    dealer = uuid.uuid4()
    await publish(runtime, item_event(brand.id, 1, kind="dealer_receive", dealer_id=dealer))

    async def penalize(amount: int, ref: str) -> grants.Penalty:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            return await grants.penalize_dealer(session, brand.id, dealer, amount, "窜货", ref)

    first = await penalize(500, "alert-1")
    again = await penalize(500, "alert-1")
    assert (first.deducted_fen, first.shortfall_fen) == (500, 0)
    assert (again.deducted_fen, again.entry_id) == (500, first.entry_id)
    second = await penalize(500, "alert-2")
    assert (second.deducted_fen, second.shortfall_fen) == (200, 300)
    assert await balance(runtime, brand.id, f"wallet:dealer:{dealer}") == 0
    assert await balance(runtime, brand.id, service.PENALTIES_KEY) == 700
    await assert_books_balance(runtime, brand.id)
