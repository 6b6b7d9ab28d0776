"""Settlement (结算清分): each paid order splits into brand / dealer / store shares by the tenant's rule,
posted once to the ledger (idempotency key per order); daily statements per store and per dealer.

Accounts: the provider's clearing account (`sales:clearing`, kind `payment_clearing`, no floor: it
goes negative by what payers paid in), the brand's sales revenue (`sales:revenue`), and the partners'
wallets (`wallet:store:<id>`, `wallet:dealer:<id>`, the same wallets rewards pay into).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.channel import service as channel
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import NotFound
from zhongtai.ledger import service as ledger
from zhongtai.ledger.service import EntryDraft, Line
from zhongtai.sales import rules
from zhongtai.sales.errors import BadSettlementRule
from zhongtai.sales.models import SalesOrder, SalesSettlement, SalesSettlementRule

CHINA = timezone(timedelta(hours=8))  # business days are Beijing time (no daylight saving)
CLEARING_KEY = "sales:clearing"
REVENUE_KEY = "sales:revenue"
ENTRY_KIND = "sales_settlement"


def business_day(at: datetime) -> date:
    return at.astimezone(CHINA).date()


def settle_key(order_id: uuid.UUID) -> str:
    return f"sales:settle:{order_id}"


# Rules.


async def list_rules(session: AsyncSession) -> list[SalesSettlementRule]:
    return list(await session.scalars(select(SalesSettlementRule).order_by(SalesSettlementRule.scope)))


async def do_set_rule(session: AsyncSession, scope: str, rule: rules.SettlementRule) -> SalesSettlementRule:
    """Set the default rule (`scope="default"`) or a product's (`scope=<product id>`)."""
    if scope != rules.DEFAULT_SCOPE:
        try:
            scope = str(uuid.UUID(scope))
        except ValueError as exc:
            raise BadSettlementRule("scope is 'default' or a product id.", field="scope") from exc
    problems = rules.settlement_rule_problems(rule)
    if problems:
        raise BadSettlementRule(f"The settlement rule is not valid: {'; '.join(problems)}.", problems=problems)
    row = await session.scalar(select(SalesSettlementRule).where(SalesSettlementRule.scope == scope))
    if row is None:
        row = SalesSettlementRule(scope=scope)
        session.add(row)
    row.mode, row.brand_share, row.dealer_share, row.store_share = (
        rule.mode,
        rule.brand_share,
        rule.dealer_share,
        rule.store_share,
    )
    row.updated_at = utcnow()
    await session.flush()
    return row


async def rule_for(session: AsyncSession, product_id: uuid.UUID) -> tuple[str, rules.SettlementRule]:
    found = {
        r.scope: r
        for r in await session.scalars(
            select(SalesSettlementRule).where(SalesSettlementRule.scope.in_([str(product_id), rules.DEFAULT_SCOPE]))
        )
    }
    row = found.get(str(product_id)) or found.get(rules.DEFAULT_SCOPE)
    if row is None:
        return "none", rules.BRAND_ONLY
    return row.scope, rules.SettlementRule(row.mode, row.brand_share, row.dealer_share, row.store_share)


# Posting.


async def _parties(session: AsyncSession, store_id: uuid.UUID | None) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The order's channel store and its dealer; none when the pick-up store is not a channel store."""
    if store_id is None:
        return None, None
    try:
        store = await channel.get_store(session, store_id)
    except NotFound:
        return None, None
    return store.id, store.dealer_id


async def _wallet(session: AsyncSession, party: str, owner_id: uuid.UUID) -> uuid.UUID:
    account = await ledger.open_account(
        session,
        key=f"wallet:{party}:{owner_id}",
        kind="partner_wallet",
        name=f"{party} {str(owner_id)[:12]}",
        owner_type=party,
        owner_id=str(owner_id),
        floor=0,
    )
    return account.id


async def do_settle(session: AsyncSession, order: SalesOrder) -> SalesSettlement:
    """Split a paid order and post it; settling again returns the first settlement."""
    existing = await session.get(SalesSettlement, order.id)
    if existing is not None:
        return existing
    store_id, dealer_id = await _parties(session, order.store_id)
    scope, rule = await rule_for(session, order.product_id)
    shares = rules.split(
        order.amount_fen, order.quantity, rule, has_dealer=dealer_id is not None, has_store=store_id is not None
    )
    entry_id = None
    if order.amount_fen > 0:
        clearing = await ledger.open_account(
            session, key=CLEARING_KEY, kind="payment_clearing", name="支付清算 Payment clearing"
        )
        revenue = await ledger.open_account(
            session, key=REVENUE_KEY, kind="brand_revenue", name="销售收入 Sales revenue"
        )
        lines = [Line(clearing.id, -order.amount_fen)]
        if shares.brand_fen:
            lines.append(Line(revenue.id, shares.brand_fen))
        if shares.dealer_fen and dealer_id is not None:
            lines.append(Line(await _wallet(session, "dealer", dealer_id), shares.dealer_fen))
        if shares.store_fen and store_id is not None:
            lines.append(Line(await _wallet(session, "store", store_id), shares.store_fen))
        posted = await ledger.post(
            session,
            EntryDraft(
                idempotency_key=settle_key(order.id),
                kind=ENTRY_KIND,
                lines=lines,
                memo=f"订单 {order.order_no} 结算"[:200],
                reference_type="sales_order",
                reference_id=str(order.id),
            ),
            posted_by="sales",
        )
        entry_id = posted.entry.id
    row = SalesSettlement(
        tenant_id=order.tenant_id,
        order_id=order.id,
        business_day=business_day(order.paid_at or utcnow()),
        store_id=store_id,
        dealer_id=dealer_id,
        amount_fen=order.amount_fen,
        brand_fen=shares.brand_fen,
        dealer_fen=shares.dealer_fen,
        store_fen=shares.store_fen,
        rule_scope=scope,
        ledger_entry_id=entry_id,
    )
    session.add(row)
    await session.flush()
    return row


async def do_reverse(session: AsyncSession, order: SalesOrder) -> None:
    """Undo an order's settlement (a refund); refused with 409 when a partner already withdrew it."""
    row = await session.get(SalesSettlement, order.id)
    if row is None or row.status == "reversed":
        return
    if row.ledger_entry_id is not None:
        await ledger.reverse(
            session,
            row.ledger_entry_id,
            memo=f"订单 {order.order_no} 退款冲销"[:200],
            posted_by="sales",
            idempotency_key=f"sales:refund:{order.id}",
        )
    row.status, row.reversed_at = "reversed", utcnow()
    await session.flush()


async def settlement_of(session: AsyncSession, order_id: uuid.UUID) -> SalesSettlement | None:
    found: SalesSettlement | None = await session.scalar(
        select(SalesSettlement).where(SalesSettlement.order_id == order_id)
    )
    return found


# Statements.


@dataclass(frozen=True)
class StatementLine:
    business_day: date
    party_id: uuid.UUID | None
    orders: int
    amount_fen: int
    brand_fen: int
    dealer_fen: int
    store_fen: int


async def statement(
    session: AsyncSession, *, by: str, day_from: date, day_to: date, party_id: uuid.UUID | None = None
) -> list[StatementLine]:
    """Daily totals of settled (not reversed) orders per store or per dealer, `day_from` to `day_to`
    inclusive, Beijing business days."""
    column = SalesSettlement.store_id if by == "store" else SalesSettlement.dealer_id
    query = (
        select(
            SalesSettlement.business_day,
            column,
            func.count(),
            func.sum(SalesSettlement.amount_fen),
            func.sum(SalesSettlement.brand_fen),
            func.sum(SalesSettlement.dealer_fen),
            func.sum(SalesSettlement.store_fen),
        )
        .where(
            SalesSettlement.status == "settled",
            SalesSettlement.business_day >= day_from,
            SalesSettlement.business_day <= day_to,
        )
        .group_by(SalesSettlement.business_day, column)
        .order_by(SalesSettlement.business_day, column)
    )
    if party_id is not None:
        query = query.where(column == party_id)
    rows = await session.execute(query)
    return [
        StatementLine(day, party, int(n), int(a or 0), int(b or 0), int(d or 0), int(s or 0))
        for day, party, n, a, b, d, s in rows.all()
    ]


def statement_csv(lines: list[StatementLine], *, by: str, names: dict[uuid.UUID, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["business_day", by, f"{by}_name", "orders", "amount_yuan", "brand_yuan", "dealer_yuan", "store_yuan"]
    )
    for line in lines:
        writer.writerow(
            [
                line.business_day.isoformat(),
                str(line.party_id or ""),
                names.get(line.party_id, "") if line.party_id else "",
                line.orders,
                *(f"{v / 100:.2f}" for v in (line.amount_fen, line.brand_fen, line.dealer_fen, line.store_fen)),
            ]
        )
    return out.getvalue()
