"""Rewards service: ledger accounts of rewards, fee pools (create, fund, usage), reward rules (check,
expected-value preview, save, change) and the brand's risk settings.

Every function takes the caller's session scoped to one brand; the boundary commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import queries as catalog_queries
from zhongtai.codes.events import ITEM_STEPS as REWARD_KINDS
from zhongtai.core import audit, tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import CrossTenantAccess
from zhongtai.core.ids import new_id
from zhongtai.core.principals import Principal
from zhongtai.ledger import queries as ledger_queries
from zhongtai.ledger import service as ledger
from zhongtai.ledger.service import EntryDraft, Line
from zhongtai.rewards import rules
from zhongtai.rewards.errors import DuplicatePool, InvalidReward, PoolNotFound, RuleNotFound
from zhongtai.rewards.models import ROLES, FeePool, PoolDay, RewardRule, RewardSettings

# Ledger accounts of rewards (natural keys, one per brand).
FUNDING_KEY = "brand:funding"  # the brand's budget: goes negative as it funds pools
HELD_KEY = "rewards:held"  # rewards held for review (suspense): not spendable
IN_TRANSIT_KEY = "payouts:in_transit"  # withdrawals requested and not yet confirmed
PAID_KEY = "payouts:paid"  # withdrawals confirmed paid out of the platform
PENALTIES_KEY = "rewards:penalties"  # deductions from dealers' wallets (diversion penalties)

WALLET_KINDS = {"consumer": "consumer_wallet", "device": "consumer_wallet"}  # the rest: partner_wallet


def tenant_of(session: AsyncSession) -> uuid.UUID:
    scope = tenancy.current_scope(session)
    if not isinstance(scope, uuid.UUID):
        raise CrossTenantAccess("rewards need a session scoped to one tenant")
    return scope


def wallet_key(party: str) -> str:
    return f"wallet:{party}"


def pool_key(pool_id: uuid.UUID) -> str:
    return f"pool:{pool_id}"


async def system_account(session: AsyncSession, key: str) -> ledger.Account:
    spec = {
        FUNDING_KEY: ("brand_funding", "品牌预算 Brand budget", None),
        HELD_KEY: ("suspense", "待审核奖励 Rewards held for review", 0),
        IN_TRANSIT_KEY: ("payouts_in_transit", "提现在途 Payouts in transit", 0),
        PAID_KEY: ("payouts_paid", "已提现 Payouts paid", None),
        PENALTIES_KEY: ("penalties", "窜货罚款 Diversion penalties", None),
    }[key]
    return await ledger.open_account(session, key=key, kind=spec[0], name=spec[1], floor=spec[2])


async def wallets(session: AsyncSession, parties: list[str]) -> dict[str, uuid.UUID]:
    """The wallet account of each party ("store:<id>", "device:<hash>"…), opened on first use."""
    keys = {wallet_key(p): p for p in parties}
    found = await ledger_queries.account_ids_by_key(session, keys)
    out = {keys[key]: account_id for key, account_id in found.items()}
    for party in parties:
        if party not in out:
            owner_type, _, owner_id = party.partition(":")
            account = await ledger.open_account(
                session,
                key=wallet_key(party),
                kind=WALLET_KINDS.get(owner_type, "partner_wallet"),
                name=f"{owner_type} {owner_id[:12]}",
                owner_type=owner_type,
                owner_id=owner_id[:80],
                floor=0,
            )
            out[party] = account.id
    return out


# ----------------------------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class PoolDraft:
    code: str
    name: str
    campaign: str = ""
    product_id: uuid.UUID | None = None
    daily_cap_fen: int | None = None
    per_partner_cap_fen: int | None = None


def _cap(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ledger.MAX_LINE_AMOUNT:
        raise InvalidReward(f"{field} is a whole number of fen from 1 (or empty for no cap).", field=field)
    return value


def _text(value: Any, field: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidReward(f"{field} is required.", field=field)
    if len(value) > limit or "\x00" in value:
        raise InvalidReward(f"{field} is at most {limit} characters.", field=field)
    return value.strip()


async def _check_product(session: AsyncSession, product_id: uuid.UUID | None) -> None:
    if product_id is not None and not await catalog_queries.product_exists(session, product_id):
        raise InvalidReward("No such product in this brand's catalog.", field="product_id")


async def do_create_pool(session: AsyncSession, actor: Principal, draft: PoolDraft) -> FeePool:
    code = _text(draft.code, "code", 40)
    name = _text(draft.name, "name", 120)
    campaign = _text(draft.campaign, "campaign", 120, required=False)
    await _check_product(session, draft.product_id)
    if await session.scalar(select(FeePool.id).where(FeePool.code == code)) is not None:
        raise DuplicatePool(f"A fee pool with code {code} already exists.", field="code")
    pool_id = new_id()
    account = await ledger.open_account(
        session, key=pool_key(pool_id), kind="fee_pool", name=f"费用池 {name}"[:120], floor=0
    )
    pool = FeePool(
        id=pool_id,
        code=code,
        name=name,
        campaign=campaign,
        product_id=draft.product_id,
        account_id=account.id,
        daily_cap_fen=_cap(draft.daily_cap_fen, "daily_cap_fen"),
        per_partner_cap_fen=_cap(draft.per_partner_cap_fen, "per_partner_cap_fen"),
    )
    try:
        async with session.begin_nested():
            session.add(pool)
            await session.flush()
    except IntegrityError:
        raise DuplicatePool(f"A fee pool with code {code} already exists.", field="code") from None
    await audit.record(
        session,
        actor,
        "rewards.create_pool",
        target_type="fee_pool",
        target_id=pool.id,
        data={"code": code, "daily_cap_fen": pool.daily_cap_fen, "per_partner_cap_fen": pool.per_partner_cap_fen},
    )
    return pool


async def get_pool(session: AsyncSession, pool_id: uuid.UUID) -> FeePool:
    pool = await session.scalar(select(FeePool).where(FeePool.id == pool_id))
    if pool is None:
        raise PoolNotFound()
    return pool


async def do_update_pool(
    session: AsyncSession, actor: Principal, pool_id: uuid.UUID, changes: dict[str, Any]
) -> FeePool:
    pool = await get_pool(session, pool_id)
    for name in ("daily_cap_fen", "per_partner_cap_fen"):
        if name in changes:
            setattr(pool, name, _cap(changes[name], name))
    if "name" in changes:
        pool.name = _text(changes["name"], "name", 120)
    if "is_active" in changes:
        if not isinstance(changes["is_active"], bool):
            raise InvalidReward("is_active is true or false.", field="is_active")
        pool.is_active = changes["is_active"]
    await session.flush()
    await audit.record(
        session,
        actor,
        "rewards.update_pool",
        target_type="fee_pool",
        target_id=pool.id,
        data={k: v for k, v in changes.items() if k != "name"},
    )
    return pool


async def do_fund_pool(
    session: AsyncSession, actor: Principal, pool_id: uuid.UUID, amount_fen: int, *, idempotency_key: str
) -> ledger.Posted:
    """Move `amount_fen` from the brand's budget into the pool (a balanced ledger entry); the same
    idempotency key again funds nothing more."""
    pool = await get_pool(session, pool_id)
    amount = _cap(amount_fen, "amount_fen")
    assert amount is not None
    key = _text(idempotency_key, "idempotency_key", 100)
    funding = await system_account(session, FUNDING_KEY)
    posted = await ledger.post(
        session,
        EntryDraft(
            idempotency_key=f"fund:{pool.id}:{key}",
            kind="pool_funding",
            lines=[Line(funding.id, -amount), Line(pool.account_id, amount)],
            memo=f"注资 {pool.name}"[:200],
            reference_type="fee_pool",
            reference_id=str(pool.id),
        ),
        posted_by=actor.label,
    )
    if posted.created:
        await session.execute(
            update(FeePool).where(FeePool.id == pool.id).values(funded_fen=FeePool.funded_fen + amount)
        )
        await audit.record(
            session,
            actor,
            "rewards.fund_pool",
            target_type="fee_pool",
            target_id=pool.id,
            data={"amount_fen": amount, "entry_id": str(posted.entry.id)},
        )
    return posted


@dataclass(frozen=True)
class PoolUsage:
    pool: FeePool
    balance_fen: int
    granted_today_fen: int

    @property
    def used_fen(self) -> int:
        return self.pool.funded_fen - self.balance_fen

    @property
    def used_percent(self) -> int:
        return 0 if self.pool.funded_fen <= 0 else min(100, round(100 * self.used_fen / self.pool.funded_fen))

    @property
    def today_percent(self) -> int | None:
        cap = self.pool.daily_cap_fen
        return None if not cap else min(100, round(100 * self.granted_today_fen / cap))


async def pool_usage(session: AsyncSession, pools: list[FeePool]) -> list[PoolUsage]:
    today = rules.china_day(utcnow())
    out = []
    for pool in pools:
        balance = await ledger.balance_of(session, pool.account_id)
        day = await session.scalar(select(PoolDay.granted_fen).where(PoolDay.pool_id == pool.id, PoolDay.day == today))
        out.append(PoolUsage(pool, balance, int(day or 0)))
    return out


async def list_pools(session: AsyncSession) -> list[FeePool]:
    return list(await session.scalars(select(FeePool).order_by(FeePool.created_at.desc())))


# ----------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class RuleDraft:
    name: str
    event_kind: str
    role: str
    pool_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None = None
    product_id: uuid.UUID | None = None
    mode: str = "fixed"
    amount_fen: int | None = None
    distribution: dict[str, Any] | None = None


@dataclass(frozen=True)
class Preview:
    amounts: rules.Amounts
    amount_fen: int | None
    distribution: dict[str, Any]
    pool_balance_fen: int | None  # the pool's balance now
    funds_rewards: int | None  # how many rewards of the expected amount the balance pays


def _amounts(draft: RuleDraft) -> tuple[int | None, dict[str, Any], rules.Amounts]:
    try:
        return rules.check_distribution(draft.mode, draft.amount_fen, draft.distribution)
    except rules.RuleProblem as problem:
        raise InvalidReward(problem.message, field=problem.field) from None


async def preview_rule(session: AsyncSession, draft: RuleDraft) -> Preview:
    """The rule's expected value, smallest and largest amounts, and what the pool funds at that mean:
    shown before a rule is saved."""
    amount_fen, distribution, amounts = _amounts(draft)
    balance = None
    funds = None
    pool = await session.scalar(select(FeePool).where(FeePool.id == draft.pool_id))
    if pool is not None:
        balance = await ledger.balance_of(session, pool.account_id)
        funds = int(balance / amounts.expected) if amounts.expected > 0 else None
    return Preview(amounts, amount_fen, distribution, balance, funds)


async def do_create_rule(session: AsyncSession, actor: Principal, draft: RuleDraft) -> RewardRule:
    name = _text(draft.name, "name", 120)
    if draft.event_kind not in REWARD_KINDS:
        raise InvalidReward(f"The event is one of {', '.join(REWARD_KINDS)}.", field="event_kind")
    if draft.role not in ROLES:
        raise InvalidReward(f"The role is one of {', '.join(ROLES)}.", field="role")
    if draft.valid_to is not None and draft.valid_to <= draft.valid_from:
        raise InvalidReward("The period must end after it starts.", field="valid_to")
    amount_fen, distribution, amounts = _amounts(draft)
    pool = await session.scalar(select(FeePool).where(FeePool.id == draft.pool_id))
    if pool is None:
        raise InvalidReward("No such fee pool.", field="pool_id")
    await _check_product(session, draft.product_id)
    if pool.product_id is not None and draft.product_id != pool.product_id:
        raise InvalidReward("This pool pays only for its own product; choose that product.", field="product_id")
    rule = RewardRule(
        id=new_id(),
        name=name,
        event_kind=draft.event_kind,
        role=draft.role,
        product_id=draft.product_id,
        pool_id=pool.id,
        valid_from=draft.valid_from,
        valid_to=draft.valid_to,
        mode=draft.mode,
        amount_fen=amount_fen,
        distribution=distribution,
        expected_fen=amounts.expected_fen,
        min_fen=amounts.low,
        max_fen=amounts.high,
        created_by=actor.label[:254],
    )
    session.add(rule)
    await session.flush()
    await audit.record(
        session,
        actor,
        "rewards.create_rule",
        target_type="reward_rule",
        target_id=rule.id,
        data={
            "event_kind": rule.event_kind,
            "role": rule.role,
            "mode": rule.mode,
            "expected_fen": rule.expected_fen,
            "pool_id": str(pool.id),
        },
    )
    return rule


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> RewardRule:
    rule = await session.scalar(select(RewardRule).where(RewardRule.id == rule_id))
    if rule is None:
        raise RuleNotFound()
    return rule


async def do_update_rule(
    session: AsyncSession, actor: Principal, rule_id: uuid.UUID, changes: dict[str, Any]
) -> RewardRule:
    """A rule's name, end of period and active flag change; amounts do not (make a new rule, so that
    past rewards keep the rule they were paid under)."""
    rule = await get_rule(session, rule_id)
    unknown = sorted(set(changes) - {"name", "valid_to", "is_active"})
    if unknown:
        raise InvalidReward(f"{unknown[0]} cannot change; create a new rule instead.", field=unknown[0])
    if "name" in changes:
        rule.name = _text(changes["name"], "name", 120)
    if "valid_to" in changes:
        valid_to = changes["valid_to"]
        if valid_to is not None and valid_to <= rule.valid_from:
            raise InvalidReward("The period must end after it starts.", field="valid_to")
        rule.valid_to = valid_to
    if "is_active" in changes:
        if not isinstance(changes["is_active"], bool):
            raise InvalidReward("is_active is true or false.", field="is_active")
        rule.is_active = changes["is_active"]
    await session.flush()
    await audit.record(
        session,
        actor,
        "rewards.update_rule",
        target_type="reward_rule",
        target_id=rule.id,
        data={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in changes.items()},
    )
    return rule


async def list_rules(session: AsyncSession, *, event_kind: str | None = None) -> list[RewardRule]:
    query = select(RewardRule).order_by(RewardRule.event_kind, RewardRule.role, RewardRule.created_at.desc())
    if event_kind:
        query = query.where(RewardRule.event_kind == event_kind)
    return list(await session.scalars(query))


async def matching_rules(
    session: AsyncSession, tenant_id: uuid.UUID, kind: str, product_id: uuid.UUID | None, at: datetime
) -> dict[str, tuple[RewardRule, FeePool]]:
    """The rule that applies to each role: a product's own rule before an all-products one, then the
    latest start, then the newest."""
    product_match: ColumnElement[bool] = RewardRule.product_id.is_(None)
    if product_id is not None:
        product_match = or_(product_match, RewardRule.product_id == product_id)
    rows = await session.execute(
        select(RewardRule, FeePool)
        .join(FeePool, FeePool.id == RewardRule.pool_id)
        .where(
            RewardRule.tenant_id == tenant_id,
            RewardRule.event_kind == kind,
            RewardRule.is_active.is_(True),
            RewardRule.valid_from <= at,
            (RewardRule.valid_to.is_(None)) | (RewardRule.valid_to > at),
            product_match,
            FeePool.is_active.is_(True),
        )
    )
    chosen: dict[str, tuple[RewardRule, FeePool]] = {}
    for rule, pool in sorted(
        rows.all(),
        key=lambda rp: (rp[0].product_id is not None, rp[0].valid_from, rp[0].created_at),
        reverse=True,
    ):
        chosen.setdefault(rule.role, (rule, pool))
    return chosen


# ------------------------------------------------------------------------------------------- settings


async def get_risk(session: AsyncSession, tenant_id: uuid.UUID) -> rules.RiskSettings:
    row = await session.scalar(select(RewardSettings).where(RewardSettings.tenant_id == tenant_id))
    return rules.DEFAULT_RISK if row is None else rules.risk_of(row.values)


async def do_update_risk(session: AsyncSession, actor: Principal, changes: dict[str, Any]) -> rules.RiskSettings:
    tenant_id = tenant_of(session)
    try:
        updated = rules.check_risk_settings(await get_risk(session, tenant_id), changes)
    except rules.RuleProblem as problem:
        raise InvalidReward(problem.message, field=problem.field) from None
    row = await session.scalar(select(RewardSettings).where(RewardSettings.tenant_id == tenant_id))
    if row is None:
        row = RewardSettings(tenant_id=tenant_id)
        session.add(row)
    row.values = {name: getattr(updated, name) for name in rules.RISK_LIMITS}
    await session.flush()
    await audit.record(session, actor, "rewards.update_settings", target_type="rewards_settings", data=changes)
    return updated


async def count(session: AsyncSession, query: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
