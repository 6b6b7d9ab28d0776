"""Flash-sale use cases: create, schedule and end a sale, issue a member's sale pass, live figures,
and give the stock of expired purchases back exactly once."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import service as catalog
from zhongtai.core import jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.settings import Settings
from zhongtai.flashsale import rules
from zhongtai.flashsale.errors import SaleNotEditable, SaleNotFound, SaleNotOpen
from zhongtai.flashsale.gate import RedisGate, SaleKeys, sale_config
from zhongtai.flashsale.models import (
    PURCHASE_EXPIRED,
    PURCHASE_ORDERED,
    PURCHASE_QUEUED,
    SALE_DRAFT,
    SALE_ENDED,
    SALE_SCHEDULED,
    FlashSale,
    FlashSaleMemberCount,
    FlashSalePurchase,
)
from zhongtai.members import service as members
from zhongtai.sales.events import OrderExpired

RELEASE_TOPIC = "flashsale.release"
ORDER_SOURCE = "flashsale"
# A pass stays valid a little past the sale's end so that a buy sent at the last second is judged by
# the sale's window, not refused as a bad pass.
PASS_GRACE_SECONDS = 60


async def get_sale(session: AsyncSession, sale_id: uuid.UUID) -> FlashSale:
    sale = await session.scalar(select(FlashSale).where(FlashSale.id == sale_id))
    if sale is None:
        raise SaleNotFound()
    return sale


async def list_sales(session: AsyncSession, *, limit: int = 50, offset: int = 0) -> tuple[list[FlashSale], int]:
    total = await session.scalar(select(func.count()).select_from(FlashSale))
    rows = await session.scalars(select(FlashSale).order_by(FlashSale.starts_at.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def do_create_sale(session: AsyncSession, draft: rules.SaleDraft) -> FlashSale:
    checked = rules.check_sale(draft)
    await catalog.get_product(session, checked.product_id)  # refuses a product of another brand too
    sale = FlashSale(
        title=checked.title,
        product_id=checked.product_id,
        price_fen=checked.price_fen,
        stock=checked.stock,
        stock_left=checked.stock,
        per_member_limit=checked.per_member_limit,
        requires_verification=checked.requires_verification,
        minimum_age=checked.minimum_age,
        payment_minutes=checked.payment_minutes,
        starts_at=checked.starts_at,
        ends_at=checked.ends_at,
        status=SALE_DRAFT,
    )
    session.add(sale)
    await session.flush()
    return sale


async def do_update_sale(session: AsyncSession, sale: FlashSale, draft: rules.SaleDraft) -> FlashSale:
    if sale.status != SALE_DRAFT:
        raise SaleNotEditable()
    checked = rules.check_sale(draft)
    await catalog.get_product(session, checked.product_id)
    for name in (
        "title",
        "product_id",
        "price_fen",
        "stock",
        "per_member_limit",
        "requires_verification",
        "minimum_age",
        "payment_minutes",
        "starts_at",
        "ends_at",
    ):
        setattr(sale, name, getattr(checked, name))
    sale.stock_left = checked.stock
    await session.flush()
    return sale


async def do_schedule_sale(session: AsyncSession, state: Any, sale: FlashSale) -> FlashSale:
    """Arm the gate with the sale's stock; buys are accepted from `starts_at` to `ends_at`.

    `state` is the process's `fastpath.SaleState`. Arming is idempotent, so scheduling again (a retry)
    changes nothing."""
    if sale.status == SALE_SCHEDULED:
        return sale
    if sale.status != SALE_DRAFT:
        raise SaleNotEditable("An ended sale cannot be scheduled again.")
    if sale.ends_at <= utcnow():
        raise SaleNotEditable("The sale's end is in the past; change the dates first.")
    sale.status = SALE_SCHEDULED
    sale.scheduled_at = utcnow()
    await session.flush()
    await state.gate.arm(sale_config(sale, time.monotonic()))
    state.forget(sale.id)
    return sale


async def do_end_sale(session: AsyncSession, state: Any, sale: FlashSale) -> FlashSale:
    """Stop the sale now, in every server process (the gate itself refuses further buys)."""
    if sale.status == SALE_ENDED:
        return sale
    if sale.status == SALE_SCHEDULED:
        config = sale_config(sale, time.monotonic())
        await state.gate.close(config)
        if isinstance(state.gate, RedisGate):
            sale.stock_left = max(0, min(sale.stock, await state.gate.stock_left(config)))
    sale.status = SALE_ENDED
    sale.ended_at = utcnow()
    await session.flush()
    state.forget(sale.id)
    return sale


@dataclass(frozen=True)
class SalePass:
    token: str
    expires_at: datetime


async def do_issue_pass(session: AsyncSession, crypto: Crypto, sale: FlashSale, consumer_id: uuid.UUID) -> SalePass:
    """Check that the member may buy in this sale (real name verified, old enough) and give them a
    signed pass for the buy endpoint, valid until the sale ends."""
    if sale.status == SALE_ENDED or (sale.status == SALE_SCHEDULED and sale.ends_at <= utcnow()):
        raise SaleNotOpen("The sale is over.")
    if sale.status == SALE_DRAFT:
        raise SaleNotFound()
    if sale.requires_verification:
        await members.check_eligible(session, consumer_id, minimum_age=sale.minimum_age)
    expires_at = sale.ends_at + timedelta(seconds=PASS_GRACE_SECONDS)
    token = rules.issue_pass(
        rules.pass_key(crypto.secret_key),
        sale_id=sale.id,
        consumer_id=consumer_id,
        expires_epoch=int(expires_at.timestamp()),
    )
    return SalePass(token, expires_at)


# Figures.


@dataclass(frozen=True)
class LiveFigures:
    stock: int
    stock_left: int
    accepted_units: int
    orders_persisted: int
    orders_expired: int
    rejected: dict[str, int]
    per_second: list[tuple[int, int]]  # (epoch second, accepted units), the last minute
    accepted_per_s: float  # over the last ten seconds


async def live_figures(session: AsyncSession, state: Any, sale: FlashSale) -> LiveFigures:
    from zhongtai.flashsale.fastpath import REJECTED_REASONS

    if sale.status == SALE_SCHEDULED and isinstance(state.gate, RedisGate):
        stock_left = await state.gate.stock_left(sale_config(sale, time.monotonic()))
    else:
        # The database gate's counter is the row itself: read it in this session (a second connection
        # would wait for this transaction's lock on SQLite).
        await session.refresh(sale, attribute_names=["stock_left"])
        stock_left = sale.stock_left
    counts = dict(
        (
            await session.execute(
                select(FlashSalePurchase.status, func.count())
                .where(FlashSalePurchase.sale_id == sale.id)
                .group_by(FlashSalePurchase.status)
            )
        ).all()
    )
    now = int(time.time())
    redis: Redis | None = state.runtime.redis
    if redis is not None:
        keys = SaleKeys(state.runtime.settings.redis_prefix, sale.id)
        raw_stats = await redis.hgetall(keys.stats)
        stats = {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw_stats.items()}
        raw_series = await redis.hgetall(keys.series)
        series = {int(k): int(v) for k, v in raw_series.items() if int(k) > now - 60}
    else:
        stats = dict(state.totals.get(sale.id, {}))
        since = datetime.fromtimestamp(now - 60, UTC)
        accepted = await session.execute(
            select(FlashSalePurchase.accepted_at, FlashSalePurchase.quantity).where(
                FlashSalePurchase.sale_id == sale.id, FlashSalePurchase.accepted_at >= since
            )
        )
        series = {}
        for accepted_at, quantity in accepted.all():
            second = int(accepted_at.timestamp())
            series[second] = series.get(second, 0) + quantity
    per_second = [(second, series.get(second, 0)) for second in range(now - 60, now)]
    recent = sum(n for second, n in per_second[-10:])
    return LiveFigures(
        stock=sale.stock,
        stock_left=max(0, stock_left),
        accepted_units=sale.stock - max(0, stock_left),
        orders_persisted=int(counts.get(PURCHASE_QUEUED, 0) + counts.get(PURCHASE_ORDERED, 0)),
        orders_expired=int(counts.get(PURCHASE_EXPIRED, 0)),
        rejected={reason: int(stats.get(reason, 0)) for reason in REJECTED_REASONS},
        per_second=per_second,
        accepted_per_s=recent / 10,
    )


# Expiry.


def gate_is_redis(settings: Settings) -> bool:
    return settings.redis_url is not None and settings.flashsale_gate != "database"


async def on_order_expired(session: AsyncSession, event: OrderExpired) -> bool:
    """Subscriber of `sales.events.OrderExpired`: a flash-sale order was not paid in time."""
    if event.source != ORDER_SOURCE:
        return False
    settings: Settings = session.sync_session.info.get("settings") or Settings()
    return await do_return_stock(session, event.source_ref, via_redis=gate_is_redis(settings))


async def do_return_stock(session: AsyncSession, reference: str, *, via_redis: bool) -> bool:
    """An unpaid purchase expired: mark it and give its units back to the sale and the member's slot
    back to the member — exactly once per reference, however often this is called.

    With the database gate the stock row and the member's count change in this transaction; with the
    Redis gate a job releases them in Redis after the commit (Redis is not in this transaction)."""
    purchase = await session.scalar(select(FlashSalePurchase).where(FlashSalePurchase.reference == reference))
    if purchase is None:
        return False
    marked = await session.execute(
        update(FlashSalePurchase)
        .where(
            FlashSalePurchase.id == purchase.id,
            FlashSalePurchase.status.in_((PURCHASE_QUEUED, PURCHASE_ORDERED)),
        )
        .values(status=PURCHASE_EXPIRED, expired_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if marked.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if via_redis:
        # The job is retried until done; the release script itself refuses a second release.
        await jobs.enqueue(
            session,
            RELEASE_TOPIC,
            {
                "sale_id": str(purchase.sale_id),
                "reference": reference,
                "consumer_id": purchase.consumer_id.hex,
                "quantity": purchase.quantity,
            },
            tenant_id=purchase.tenant_id,
            dedupe_key=f"flashsale-release:{reference}",
        )
        return True
    await session.execute(
        update(FlashSale)
        .where(FlashSale.id == purchase.sale_id)
        .values(stock_left=FlashSale.stock_left + purchase.quantity)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(FlashSaleMemberCount)
        .where(
            FlashSaleMemberCount.sale_id == purchase.sale_id,
            FlashSaleMemberCount.consumer_id == purchase.consumer_id,
        )
        .values(bought=FlashSaleMemberCount.bought - purchase.quantity)
        .execution_options(synchronize_session=False)
    )
    return True
