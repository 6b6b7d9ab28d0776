"""Granting rewards for an `ItemEvent`, exactly once per (code, reward event, party role), within the
pools' money and caps; risk holds; the review queue; a consumer claiming a device's red packets;
penalties deducted from a dealer's wallet.

One event, in the producer's transaction:
1. the applicable rule per role (consumer, store, guide, dealer) and the party it pays;
2. risk signals per party (velocity, a store far from its address, a consumer opening too many
   bottles, one device behind many accounts): a signalled reward is held instead of paid;
3. one `rewards_grants` row per party, claimed by its unique key (code, event kind, role): a retry or a
   racing duplicate finds the first row and pays nothing more;
4. caps: one conditional UPDATE per pool-day row and per pool-party row (in pool, then party order);
5. one balanced ledger entry for all new grants: pool → wallet (paid) or pool → suspense (held). The
   ledger's floor guard refuses an entry that would take a pool below 0; the grants of that pool are
   then recorded as refused ("pool_empty") and the others are posted again without them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import queries as catalog_queries
from zhongtai.channel import queries as channel_queries
from zhongtai.channel.events import DiversionPenalized, DiversionResolved
from zhongtai.channel.rules import HOLDER_SOLD, HOLDER_STORE
from zhongtai.codes import queries as codes_queries
from zhongtai.codes.events import ItemEvent
from zhongtai.core import audit, sql, tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import CrossTenantAccess
from zhongtai.core.ids import new_id
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.geo.coords import Point, distance_km
from zhongtai.ledger import service as ledger
from zhongtai.ledger.errors import InsufficientFunds
from zhongtai.ledger.service import EntryDraft, Line
from zhongtai.rewards import rules, service
from zhongtai.rewards.errors import GrantNotFound, InvalidReward, NotHeld
from zhongtai.rewards.models import (
    HELD,
    PAID,
    REFUSED,
    REJECTED,
    RELEASED,
    ROLES,
    FeePool,
    PoolDay,
    PoolParty,
    RewardGrant,
    RewardRule,
)

SUBSCRIBER = "rewards"
_GRANTS = cast(Table, RewardGrant.__table__)
CHANNEL_KINDS = ("store_receive", "case_open", "sale")  # a store's own scans: its address matters
PARTNER_ROLES = ("store", "guide", "dealer")


@dataclass(frozen=True)
class Granted:
    """What one party got for the event (the subscriber's answer, shown to the scanner)."""

    role: str
    party: str
    amount_fen: int
    status: str  # paid, held, refused (or released / rejected when a retry finds a reviewed one)
    reason: str = ""
    holds: tuple[str, ...] = ()
    grant_id: uuid.UUID | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "party": self.party,
            "amount_fen": self.amount_fen,
            "status": self.status,
            "reason": self.reason,
            "holds": list(self.holds),
            "grant_id": str(self.grant_id) if self.grant_id else None,
        }


def _granted(row: RewardGrant) -> Granted:
    return Granted(row.role, row.party, int(row.amount_fen), row.status, row.reason, tuple(row.holds or ()), row.id)


def party_of(event: ItemEvent, role: str) -> str | None:
    if role == "consumer":
        if event.consumer_id is not None:
            return f"consumer:{event.consumer_id}"
        if event.device_hash:
            return f"device:{event.device_hash[:64]}"
        return None
    found = {"store": event.store_id, "guide": event.guide_id, "dealer": event.dealer_id}[role]
    return None if found is None else f"{role}:{found}"


@dataclass
class _New:
    """A grant row just inserted, with plain copies of what paying it needs (the ORM row is not read
    again after a savepoint rolls back)."""

    grant_id: uuid.UUID
    role: str
    party: str
    amount: int
    pool_id: uuid.UUID
    pool_account: uuid.UUID
    daily_cap: int | None
    partner_cap: int | None
    holds: tuple[str, ...]
    refused: str = ""
    entry_id: uuid.UUID | None = None

    @property
    def held(self) -> bool:
        return bool(self.holds)


class _CapReached(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Risk:
    holds: dict[str, list[str]] = field(default_factory=dict)
    detail: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, role: str, signal: str, **detail: Any) -> None:
        self.holds.setdefault(role, []).append(signal)
        self.detail.setdefault(role, {})[signal] = detail


async def _risk(
    session: AsyncSession, tenant_id: uuid.UUID, event: ItemEvent, parties: dict[str, str], settings: rules.RiskSettings
) -> _Risk:
    risk = _Risk()
    alert_id = event.extra.get("diversion_alert_id")
    if alert_id:  # the scan raised a diversion alert for this item's dealer: wait for its outcome
        for role in parties:
            risk.add(role, "diversion", alert_id=str(alert_id))
    now = utcnow()
    g = RewardGrant
    partners = {party: role for role, party in parties.items() if role in PARTNER_ROLES}
    if partners:
        counted = await session.execute(
            select(g.party, func.count())
            .where(g.tenant_id == tenant_id, g.party.in_(partners), g.created_at > now - timedelta(hours=1))
            .group_by(g.party)
        )
        for party, recent in counted.all():
            if int(recent) + 1 > settings.velocity_per_hour:
                role = partners[party]
                risk.add(role, "velocity", last_hour=int(recent) + 1, limit=settings.velocity_per_hour)
    for role, party in parties.items():
        if role == "consumer" and event.kind == "consumer_open":
            opened = await session.scalar(
                select(func.count()).where(
                    g.tenant_id == tenant_id,
                    g.party == party,
                    g.event_kind == "consumer_open",
                    g.created_at > now - timedelta(hours=24),
                )
            )
            if int(opened or 0) + 1 > settings.consumer_opens_per_day:
                risk.add(role, "consumer_opens", last_24h=int(opened or 0) + 1, limit=settings.consumer_opens_per_day)
    if (
        event.kind in CHANNEL_KINDS
        and event.store_id is not None
        and event.latitude is not None
        and event.longitude is not None
        and ({"store", "guide"} & parties.keys())
    ):
        store = await channel_queries.store_location(session, tenant_id, event.store_id)
        if store is not None:
            km = distance_km(Point(*store), Point(event.latitude, event.longitude))
            if km > settings.store_distance_km:
                for role in ("store", "guide"):
                    if role in parties:
                        risk.add(role, "store_distance", km=round(km, 2), limit_km=settings.store_distance_km)
    if event.device_hash:
        account = event.consumer_id if event.kind == "consumer_open" else event.partner_account_id
        seen = await session.execute(
            select(g.consumer_id, g.partner_account_id)
            .where(
                g.tenant_id == tenant_id,
                g.device_hash == event.device_hash[:64],
                g.created_at > now - timedelta(days=30),
            )
            .distinct()
        )
        accounts = {a for pair in seen.all() for a in pair if a is not None}
        if account is not None:
            accounts.add(account)
        if len(accounts) > settings.device_accounts:
            roles = ["consumer"] if event.kind == "consumer_open" else list(PARTNER_ROLES)
            for role in roles:
                if role in parties:
                    risk.add(role, "shared_device", accounts=len(accounts), limit=settings.device_accounts)
    return risk


async def _claim_day(session: AsyncSession, tenant_id: uuid.UUID, group: list[_New], day: Any) -> bool:
    """Count all of one pool's grants of the event against its day row in one conditional UPDATE;
    False (nothing counted) when together they would pass the daily cap."""
    first, amount = group[0], sum(n.amount for n in group)
    await session.execute(
        sql.insert_ignore(session, PoolDay).values(
            tenant_id=tenant_id, pool_id=first.pool_id, day=day, granted_fen=0, grants=0
        )
    )
    cap_ok: ColumnElement[bool] = PoolDay.granted_fen + amount <= first.daily_cap if first.daily_cap else true()
    done = await session.execute(
        update(PoolDay)
        .where(PoolDay.tenant_id == tenant_id, PoolDay.pool_id == first.pool_id, PoolDay.day == day, cap_ok)
        .values(granted_fen=PoolDay.granted_fen + amount, grants=PoolDay.grants + len(group))
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


async def _claim_caps(session: AsyncSession, tenant_id: uuid.UUID, new: _New, day: Any) -> str:
    """Count the grant against its pool's daily and per-party caps; the refusal reason or ""."""
    amount = new.amount
    await session.execute(
        sql.insert_ignore(session, PoolDay).values(
            tenant_id=tenant_id, pool_id=new.pool_id, day=day, granted_fen=0, grants=0
        )
    )
    cap_ok: ColumnElement[bool] = PoolDay.granted_fen + amount <= new.daily_cap if new.daily_cap else true()
    done = await session.execute(
        update(PoolDay)
        .where(PoolDay.tenant_id == tenant_id, PoolDay.pool_id == new.pool_id, PoolDay.day == day, cap_ok)
        .values(granted_fen=PoolDay.granted_fen + amount, grants=PoolDay.grants + 1)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return "daily_cap"
    if new.partner_cap:
        await session.execute(
            sql.insert_ignore(session, PoolParty).values(
                tenant_id=tenant_id, pool_id=new.pool_id, party=new.party, granted_fen=0
            )
        )
        done = await session.execute(
            update(PoolParty)
            .where(
                PoolParty.tenant_id == tenant_id,
                PoolParty.pool_id == new.pool_id,
                PoolParty.party == new.party,
                PoolParty.granted_fen + amount <= new.partner_cap,
            )
            .values(granted_fen=PoolParty.granted_fen + amount)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return "partner_cap"
    return ""


async def _pay(session: AsyncSession, tenant_id: uuid.UUID, event: ItemEvent, news: list[_New]) -> None:
    """Caps, then one ledger entry for every grant still payable; a pool that cannot pay is dropped
    (its grants refused) and the rest tried again, at most once per pool."""
    day = rules.china_day(utcnow())
    wallet_ids = await service.wallets(session, sorted({n.party for n in news if not n.held}))
    held_account = (await service.system_account(session, service.HELD_KEY)).id if any(n.held for n in news) else None
    order = sorted(news, key=lambda n: (str(n.pool_id), n.party))
    while True:
        payable = [n for n in order if not n.refused]
        if not payable:
            return
        try:
            async with session.begin_nested():
                by_pool: dict[uuid.UUID, list[_New]] = {}
                for new in payable:
                    by_pool.setdefault(new.pool_id, []).append(new)
                for pool_id in sorted(by_pool, key=str):
                    group = by_pool[pool_id]
                    if not group[0].partner_cap and await _claim_day(session, tenant_id, group, day):
                        continue  # the common case: the pool's day row takes the whole event at once
                    for new in group:  # a per-partner cap, or the day's cap reached part-way
                        try:
                            async with session.begin_nested():
                                reason = await _claim_caps(session, tenant_id, new, day)
                                if reason:
                                    raise _CapReached(reason)
                        except _CapReached as reached:
                            new.refused = reached.reason
                paying = [n for n in payable if not n.refused]
                if not paying:
                    return
                lines: list[Line] = []
                for new in paying:
                    target = held_account if new.held else wallet_ids[new.party]
                    assert target is not None
                    lines += [Line(new.pool_account, -new.amount), Line(target, new.amount)]
                roles = "+".join(n.role for n in paying)
                posted = await ledger.post(
                    session,
                    EntryDraft(
                        idempotency_key=f"reward:{event.code_id}:{event.kind}:{roles}",
                        kind="reward",
                        lines=lines,
                        memo=f"{event.kind} {roles}"[:200],
                        reference_type="code",
                        reference_id=str(event.code_id),
                        data={"source_ref": event.source_ref[:120]},
                    ),
                    posted_by=SUBSCRIBER,
                )
            for new in paying:
                new.entry_id = posted.entry.id
            return
        except InsufficientFunds as refused:
            empty = str(refused.data.get("account_key", ""))
            dropped = [n for n in payable if service.pool_key(n.pool_id) == empty]
            if not dropped:
                raise
            for new in payable:  # caps claimed in the rolled-back savepoint are claimed again
                if new.refused in ("daily_cap", "partner_cap"):
                    new.refused = ""
            for new in dropped:
                new.refused = "pool_empty"


async def _with_channel_parties(session: AsyncSession, event: ItemEvent) -> ItemEvent:
    """A consumer's open names only the bottle; the channel's custody of it names who moved it — the
    dealer that received it, the store that received (or sold) it, the guide who sold it — so one open
    can pay all four. The producer's own party ids, when it gives them, win."""
    if event.dealer_id and event.store_id and event.guide_id:
        return event
    held = await channel_queries.custody_of(session, event.tenant_id, event.code_id)
    if held is None:
        return event
    at_store = held.holder in (HOLDER_STORE, HOLDER_SOLD)
    return dataclasses.replace(
        event,
        dealer_id=event.dealer_id or held.dealer_id,
        store_id=event.store_id or (held.store_id if at_store else None),
        guide_id=event.guide_id or (held.guide_id if at_store else None),
    )


async def grant_for_event(session: AsyncSession, event: ItemEvent) -> list[Granted]:
    """Pay every party the event earns, once; returns what each party got (new or found)."""
    scope = tenancy.current_scope(session)
    if scope == tenancy.ALL_TENANTS:
        tenancy.scope_to_tenant(session, event.tenant_id)
        try:
            return await grant_for_event(session, event)
        finally:
            tenancy.scope_all_tenants(session)
    if scope != event.tenant_id:
        raise CrossTenantAccess("an event of another tenant")
    tenant_id = event.tenant_id
    matched = await service.matching_rules(session, tenant_id, event.kind, event.product_id, event.occurred_at)
    if not matched:
        return []
    if event.kind == "consumer_open" and matched.keys() & set(PARTNER_ROLES):
        event = await _with_channel_parties(session, event)
    parties = {role: p for role in ROLES if role in matched and (p := party_of(event, role)) is not None}
    if not parties:
        return []
    found = {row.role: _granted(row) for row in await _grants_of(session, tenant_id, event)}
    todo = {role: party for role, party in parties.items() if role not in found}
    news: list[_New] = []
    if todo:
        news = await _grant_new(session, tenant_id, event, matched, todo, found)
        if news:
            await _pay(session, tenant_id, event, news)
            await _record_outcomes(session, news)
    out = {role: g for role, g in found.items() if role in parties}
    for new in news:
        status = REFUSED if new.refused else HELD if new.held else PAID
        out[new.role] = Granted(new.role, new.party, new.amount, status, new.refused, new.holds, new.grant_id)
    return [out[role] for role in ROLES if role in out]


async def _grants_of(
    session: AsyncSession, tenant_id: uuid.UUID, event: ItemEvent, roles: list[str] | None = None
) -> list[RewardGrant]:
    """The grants already made for this code and event kind (for `roles` only, when given)."""
    query = select(RewardGrant).where(
        RewardGrant.tenant_id == tenant_id,
        RewardGrant.code_id == event.code_id,
        RewardGrant.event_kind == event.kind,
    )
    if roles is not None:
        query = query.where(RewardGrant.role.in_(roles))
    return list(await session.scalars(query))


async def _grant_new(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    event: ItemEvent,
    matched: dict[str, tuple[RewardRule, FeePool]],
    todo: dict[str, str],
    found: dict[str, Granted],
) -> list[_New]:
    """Insert a grant row for each role in `todo` (held when risk signals it); a role a racing
    duplicate claimed first is read into `found` instead. Returns the rows this call inserted."""
    risk = await _risk(session, tenant_id, event, todo, await service.get_risk(session, tenant_id))
    values = [
        _grant_row(tenant_id, event, role, party, matched[role][0], matched[role][1], risk)
        for role, party in todo.items()
    ]
    # One statement claims every role's (code, event, role) key: a key a racing duplicate holds
    # waits for it and, once it commits, inserts nothing (its row is read below).
    claimed: dict[uuid.UUID, str] = dict(
        (
            await session.execute(
                sql.insert_ignore(session, _GRANTS, "tenant_id", "code_id", "event_kind", "role")
                .values(values)
                .returning(_GRANTS.c.id, _GRANTS.c.role)
            )
        ).all()
    )
    claimed_roles = set(claimed.values())
    lost = [role for role in todo if role not in claimed_roles]
    if lost:
        for won in await _grants_of(session, tenant_id, event, lost):
            found[won.role] = _granted(won)
    news: list[_New] = []
    for row in values:
        if row["role"] not in claimed_roles:
            continue
        pool = matched[row["role"]][1]
        news.append(
            _New(
                row["id"],
                row["role"],
                row["party"],
                int(row["amount_fen"]),
                pool.id,
                pool.account_id,
                pool.daily_cap_fen,
                pool.per_partner_cap_fen,
                tuple(row["holds"]),
            )
        )
    return news


def _grant_row(
    tenant_id: uuid.UUID, event: ItemEvent, role: str, party: str, rule: RewardRule, pool: FeePool, risk: _Risk
) -> dict[str, Any]:
    """The values of one new grant: the rule's amount drawn now, held when risk signals the role."""
    holds = risk.holds.get(role, [])
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "code_id": event.code_id,
        "event_kind": event.kind,
        "role": role,
        "party": party,
        "rule_id": rule.id,
        "pool_id": pool.id,
        "product_id": event.product_id,
        "amount_fen": rules.draw(rule.mode, rule.amount_fen, rule.distribution),
        "status": HELD if holds else PAID,
        "reason": "",
        "holds": holds,
        "hold_detail": risk.detail.get(role, {}),
        "source_ref": event.source_ref[:120],
        "device_hash": event.device_hash[:64] if event.device_hash else None,
        "consumer_id": event.consumer_id,
        "partner_account_id": event.partner_account_id,
        "dealer_id": event.dealer_id,
        "store_id": event.store_id,
        "occurred_at": event.occurred_at,
        "created_at": utcnow(),
        "review_note": "",
    }


async def _record_outcomes(session: AsyncSession, news: list[_New]) -> None:
    """The entry of the paid and held grants (one statement per entry), and the refused ones."""
    by_entry: dict[uuid.UUID, list[uuid.UUID]] = {}
    for new in news:
        if new.entry_id is not None:
            by_entry.setdefault(new.entry_id, []).append(new.grant_id)
    for entry_id, ids in by_entry.items():
        await session.execute(
            update(RewardGrant)
            .where(RewardGrant.id.in_(ids))
            .values(entry_id=entry_id)
            .execution_options(synchronize_session=False)
        )
    for new in news:
        if new.refused:
            await session.execute(
                update(RewardGrant)
                .where(RewardGrant.id == new.grant_id)
                .values(status=REFUSED, reason=new.refused)
                .execution_options(synchronize_session=False)
            )


async def on_item_event(session: AsyncSession, event: ItemEvent) -> list[dict[str, Any]]:
    """The `ItemEvent` subscriber: what each party got, as plain data for the producer to show."""
    return [g.as_dict() for g in await grant_for_event(session, event)]


# -------------------------------------------------------------------------------------------- review


async def get_grant(session: AsyncSession, grant_id: uuid.UUID) -> RewardGrant:
    row = await session.scalar(select(RewardGrant).where(RewardGrant.id == grant_id))
    if row is None:
        raise GrantNotFound()
    return row


async def do_review(
    session: AsyncSession, actor: Principal, grant_id: uuid.UUID, *, release: bool, note: str = ""
) -> RewardGrant:
    """Release a held reward to its party's wallet, or reject it (the money goes back to its pool).
    The status changes by one conditional UPDATE, so two operators cannot both act on it."""
    if not isinstance(note, str) or len(note) > 300:
        raise InvalidReward("A note is at most 300 characters.", field="note")
    row = await get_grant(session, grant_id)
    now = utcnow()
    done = await session.execute(
        update(RewardGrant)
        .where(RewardGrant.id == grant_id, RewardGrant.status == HELD)
        .values(
            status=RELEASED if release else REJECTED, reviewed_by=actor.label[:254], reviewed_at=now, review_note=note
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise NotHeld(status=row.status)
    held = await service.system_account(session, service.HELD_KEY)
    amount = int(row.amount_fen)
    if release:
        target = (await service.wallets(session, [row.party]))[row.party]
        kind, memo = "reward_release", "审核通过 released"
    else:
        pool = await service.get_pool(session, row.pool_id) if row.pool_id else None
        assert pool is not None
        target = pool.account_id
        kind, memo = "reward_reject", "审核拒绝 rejected"
    posted = await ledger.post(
        session,
        EntryDraft(
            idempotency_key=f"review:{row.id}",
            kind=kind,
            lines=[Line(held.id, -amount), Line(target, amount)],
            memo=memo,
            reference_type="reward_grant",
            reference_id=str(row.id),
        ),
        posted_by=actor.label,
    )
    await audit.record(
        session,
        actor,
        "rewards.release" if release else "rewards.reject",
        target_type="reward_grant",
        target_id=row.id,
        data={
            "amount_fen": amount,
            "party": row.party,
            "holds": row.holds,
            "note": note,
            "entry_id": str(posted.entry.id),
        },
    )
    await session.refresh(row)
    return row


async def on_diversion_resolved(session: AsyncSession, event: DiversionResolved) -> dict[str, int]:
    """Subscriber of `channel.events.DiversionResolved`: what the alert's scan earned and held for the
    alert — rejected (back to the pool) when the alert is upheld, released to the wallets when it is
    dismissed; a grant also held for another signal stays for a person to review. Idempotent: only
    grants still held change, by `do_review`'s conditional update."""
    rows = await session.scalars(
        select(RewardGrant)
        .where(RewardGrant.source_ref == event.scan_ref, RewardGrant.status == HELD)
        .order_by(RewardGrant.created_at, RewardGrant.id)
    )
    actor = Principal(
        kind=PrincipalKind.SYSTEM,
        id=uuid.UUID(int=0),
        tenant_id=event.tenant_id,
        label=f"diversion alert ({event.decided_by})"[:200],
        permissions=frozenset(),
    )
    note = f"diversion alert {event.alert_id} {'upheld' if event.upheld else 'dismissed'}"
    done = {"rejected": 0, "released": 0, "left_for_review": 0}
    for row in list(rows):
        if (row.hold_detail or {}).get("diversion", {}).get("alert_id") != str(event.alert_id):
            continue
        if not event.upheld and list(row.holds or []) != ["diversion"]:
            done["left_for_review"] += 1
            continue
        await do_review(session, actor, row.id, release=not event.upheld, note=note)
        done["released" if not event.upheld else "rejected"] += 1
    return done


async def review_queue(session: AsyncSession, *, limit: int = 50, offset: int = 0) -> tuple[list[RewardGrant], int]:
    query = select(RewardGrant).where(RewardGrant.status == HELD)
    total = await service.count(session, query)
    rows = await session.scalars(query.order_by(RewardGrant.created_at).limit(limit).offset(offset))
    return list(rows), total


async def grants_of(
    session: AsyncSession,
    party: str | None = None,
    *,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    code_id: int | None = None,
) -> tuple[list[RewardGrant], int]:
    query = select(RewardGrant)
    if party is not None:
        query = query.where(RewardGrant.party == party)
    if status:
        query = query.where(RewardGrant.status == status)
    if code_id is not None:
        query = query.where(RewardGrant.code_id == code_id)
    total = await service.count(session, query)
    rows = await session.scalars(query.order_by(RewardGrant.created_at.desc()).limit(limit).offset(offset))
    return list(rows), total


@dataclass(frozen=True)
class PacketBottle:
    """What a consumer's wallet says a red packet was for: the bottle's serial and its product."""

    serial: str
    product: str


async def packet_bottles(session: AsyncSession, code_ids: list[int]) -> dict[int, PacketBottle]:
    """The bottle behind each code id, so a wallet lists "which bottle paid this" rather than an internal
    id. Products come through the code's batch (a brand has few batches; a wallet page lists a few
    dozen packets)."""
    serials = await codes_queries.code_serials(session, code_ids)
    batches = await codes_queries.batches_of(session)
    names = await catalog_queries.product_names(session, {b.product_id for b in batches})

    def product_of(code_id: int) -> str:
        batch = next((b for b in batches if b.first_code_id <= code_id < b.first_code_id + b.quantity), None)
        return names.get(batch.product_id, "") if batch is not None else ""

    return {code_id: PacketBottle(serial, product_of(code_id)) for code_id, serial in serials.items()}


async def consumer_packets(session: AsyncSession, consumer_id: uuid.UUID, *, limit: int = 50) -> list[RewardGrant]:
    """A consumer's red packets, newest first: the ones earned while signed in and the ones claimed
    from a device (those keep their `device:` party, so the party alone would miss them)."""
    rows = await session.scalars(
        select(RewardGrant)
        .where(RewardGrant.consumer_id == consumer_id, RewardGrant.role == "consumer")
        .order_by(RewardGrant.created_at.desc())
        .limit(limit)
    )
    return list(rows)


async def consumer_packet(session: AsyncSession, code_id: int) -> RewardGrant | None:
    """The consumer's red packet for this code's first open, if one was granted (paid, held or released)."""
    row = await session.scalar(
        select(RewardGrant).where(
            RewardGrant.code_id == code_id, RewardGrant.event_kind == "consumer_open", RewardGrant.role == "consumer"
        )
    )
    return row if row is not None and row.status in (PAID, HELD, RELEASED) else None


# ---------------------------------------------------------------------------------------------- claim


@dataclass(frozen=True)
class Claimed:
    grants: int
    amount_fen: int


async def do_claim_device_packets(session: AsyncSession, consumer_id: uuid.UUID, device_hash: str) -> Claimed:
    """A signed-in consumer takes the red packets this device received before they signed in: every
    paid or released packet of `device:<hash>` not yet claimed moves to the consumer's wallet in one
    ledger entry. Claiming marks each grant by a conditional UPDATE first, so two claims of one packet
    move it once; a held packet stays until it is reviewed (then it can be claimed)."""
    tenant_id = service.tenant_of(session)
    device = f"device:{device_hash[:64]}"
    now = utcnow()
    candidates = list(
        await session.scalars(
            select(RewardGrant.id).where(
                RewardGrant.tenant_id == tenant_id,
                RewardGrant.party == device,
                RewardGrant.status.in_((PAID, RELEASED)),
                RewardGrant.claimed_at.is_(None),
            )
        )
    )
    if not candidates:
        return Claimed(0, 0)
    claimed = (
        await session.execute(
            update(RewardGrant)
            .where(RewardGrant.id.in_(candidates), RewardGrant.claimed_at.is_(None))
            .values(claimed_at=now, consumer_id=consumer_id)
            .returning(RewardGrant.id, RewardGrant.amount_fen)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not claimed:
        return Claimed(0, 0)
    total = sum(int(amount) for _, amount in claimed)
    accounts = await service.wallets(session, [device, f"consumer:{consumer_id}"])
    ids = sorted(str(grant_id) for grant_id, _ in claimed)
    await ledger.post(
        session,
        EntryDraft(
            idempotency_key="claim:" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:40],
            kind="reward_claim",
            lines=[Line(accounts[device], -total), Line(accounts[f"consumer:{consumer_id}"], total)],
            memo="领取红包 claimed",
            reference_type="consumer",
            reference_id=str(consumer_id),
            data={"grants": ids},
        ),
        posted_by=f"consumer:{consumer_id}",
    )
    return Claimed(len(claimed), total)


# ------------------------------------------------------------------------------------------ penalties


@dataclass(frozen=True)
class Penalty:
    deducted_fen: int
    shortfall_fen: int  # what the wallet could not cover (it never goes below 0)
    entry_id: uuid.UUID | None


async def penalize_dealer(
    session: AsyncSession, tenant_id: uuid.UUID, dealer_id: uuid.UUID, amount_fen: int, reason: str, ref: str
) -> Penalty:
    """Deduct a (diversion) penalty from the dealer's wallet into the brand's penalties account, once
    per `ref`. The wallet never goes below 0: what it cannot cover is returned as the shortfall."""
    scope = tenancy.current_scope(session)
    if scope == tenancy.ALL_TENANTS:
        tenancy.scope_to_tenant(session, tenant_id)
        try:
            return await penalize_dealer(session, tenant_id, dealer_id, amount_fen, reason, ref)
        finally:
            tenancy.scope_all_tenants(session)
    if scope != tenant_id:
        raise CrossTenantAccess("a penalty for another tenant")
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or not 1 <= amount_fen <= ledger.MAX_LINE_AMOUNT:
        raise InvalidReward("A penalty is a whole number of fen from 1.", field="amount_fen")
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 150:
        raise InvalidReward("A penalty needs a reference of at most 150 characters.", field="ref")
    key = f"penalty:{ref}"
    done = await ledger.entry_by_key(session, key)
    if done is not None:
        _, lines = await ledger.get_entry(session, done.id)
        deducted = max(line.amount for line in lines)
        return Penalty(deducted, amount_fen - deducted, done.id)
    party = f"dealer:{dealer_id}"
    wallet = (await service.wallets(session, [party]))[party]
    penalties = await service.system_account(session, service.PENALTIES_KEY)
    for _ in range(3):  # the balance may change between reading it and posting
        balance = await ledger.balance_of(session, wallet)
        take = min(balance, amount_fen)
        if take <= 0:
            return Penalty(0, amount_fen, None)
        try:
            posted = await ledger.post(
                session,
                EntryDraft(
                    idempotency_key=key,
                    kind="penalty",
                    lines=[Line(wallet, -take), Line(penalties.id, take)],
                    memo=f"窜货罚款 {reason}"[:200],
                    reference_type="dealer",
                    reference_id=str(dealer_id),
                    data={"reason": reason[:200], "asked_fen": amount_fen},
                ),
                posted_by="rewards.penalty",
            )
        except InsufficientFunds:
            continue
        return Penalty(take, amount_fen - take, posted.entry.id)
    return Penalty(0, amount_fen, None)


async def on_diversion_penalized(session: AsyncSession, event: DiversionPenalized) -> dict[str, Any]:
    """The `DiversionPenalized` subscriber: deduct the penalty from the dealer's wallet, once per alert."""
    penalty = await penalize_dealer(
        session, event.tenant_id, event.dealer_id, event.amount, event.reason, event.source_ref
    )
    return {
        "deducted_fen": penalty.deducted_fen,
        "shortfall_fen": penalty.shortfall_fen,
        "entry_id": str(penalty.entry_id) if penalty.entry_id else None,
    }


__all__ = ["Granted", "grant_for_event", "on_diversion_penalized", "on_item_event", "penalize_dealer"]
