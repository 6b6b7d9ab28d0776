"""Pickup at a store (就近提货): the member's signed pickup code, the clerk's check and hand-over.

The pickup code is `zp1.<order id>.<expiry, unix seconds>.<signature>`: HMAC-SHA256 under the
installation secret (`core.crypto`) over tenant, order and expiry, truncated to 128 bits. It is short
enough for a QR code and is valid for `CODE_MINUTES`; the member's page fetches a fresh one each time
it is shown. Nothing about the order is readable from it without the platform.

Refusals: a forged, altered or other brand's code (400 `sales_bad_pickup_code`), an expired code
(400 `sales_pickup_code_expired`), a clerk of another store (403 `sales_pickup_wrong_store`), an order
not ready for pickup — already picked up, unpaid, refunded (409) — and bottles that are not this
order's product, not sellable, or already handed over (409).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.codes import custody
from zhongtai.codes.states import COMMISSIONED, IN_STORE, ITEM, PACKED, RECEIVED, SHIPPED, STATE_NAMES
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.sales import rules, service
from zhongtai.sales.errors import BadPickupCode, PickupCodeExpired, PickupRefused, WrongStore
from zhongtai.sales.models import SalesOrder, SalesOrderItem
from zhongtai.trace import producers

CODE_MINUTES = 15
PREFIX = "zp1"
SELLABLE = (COMMISSIONED, PACKED, SHIPPED, RECEIVED, IN_STORE)
_PURPOSE = "sales.pickup"


@dataclass(frozen=True)
class PickupCode:
    token: str
    expires_at: datetime


def _signature(crypto: Crypto, tenant_id: uuid.UUID, order_id: uuid.UUID, expires: int) -> str:
    return crypto.sign(f"{tenant_id}|{order_id}|{expires}", purpose=_PURPOSE)[:32]


def issue_code(crypto: Crypto, order: SalesOrder, *, now: datetime | None = None) -> PickupCode:
    if order.state != rules.READY_FOR_PICKUP:
        raise PickupRefused(
            f"Order {order.order_no} is {order.state}; a pickup code is shown once it is ready for pickup.",
            state=order.state,
        )
    expires_at = (now or utcnow()) + timedelta(minutes=CODE_MINUTES)
    expires = int(expires_at.timestamp())
    token = f"{PREFIX}.{order.id.hex}.{expires}.{_signature(crypto, order.tenant_id, order.id, expires)}"
    return PickupCode(token, expires_at)


def read_code(crypto: Crypto, tenant_id: uuid.UUID, token: str, *, now: datetime | None = None) -> uuid.UUID:
    """The order id a pickup code names, after checking its signature (for this tenant) and expiry."""
    parts = (token or "").strip().split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise BadPickupCode()
    try:
        order_id, expires = uuid.UUID(hex=parts[1]), int(parts[2])
    except ValueError as exc:
        raise BadPickupCode() from exc
    if not hmac.compare_digest(_signature(crypto, tenant_id, order_id, expires), parts[3]):
        raise BadPickupCode()
    if expires < (now or utcnow()).timestamp():
        raise PickupCodeExpired()
    return order_id


async def check_pickup(
    session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID, token: str, *, store_id: uuid.UUID
) -> SalesOrder:
    """The order behind a code, if the clerk's store may hand it over now."""
    order_id = read_code(crypto, tenant_id, token)
    order = await service.get_order(session, order_id)
    if order.store_id != store_id:
        raise WrongStore(f"Order {order.order_no} is picked up at another store, not here.", order_no=order.order_no)
    if order.state == rules.PICKED_UP:
        raise PickupRefused(
            f"Order {order.order_no} was already picked up at {order.picked_up_at:%Y-%m-%d %H:%M} UTC.",
            state=order.state,
        )
    if order.state != rules.READY_FOR_PICKUP:
        raise PickupRefused(f"Order {order.order_no} is {order.state}, not ready for pickup.", state=order.state)
    return order


async def do_hand_over(
    session: AsyncSession,
    crypto: Crypto,
    tenant_id: uuid.UUID,
    token: str,
    item_codes: list[str],
    *,
    store_id: uuid.UUID,
    partner_account_id: uuid.UUID | None,
) -> SalesOrder:
    """Hand the order's bottles over: check the code and every bottle, mark the order picked up, tie
    each bottle to it and record the EPCIS `retail_selling` event, all in one transaction."""
    order = await check_pickup(session, crypto, tenant_id, token, store_id=store_id)
    codes = await _sellable_items(session, order, item_codes)
    now = utcnow()
    hash_id = await producers.do_record_sale(
        session,
        tenant_id,
        code_ids=[c.id for c in codes],
        order_id=order.id,
        order_no=order.order_no,
        store_id=store_id,
        sold_at=now,
    )
    try:
        async with session.begin_nested():
            for code in codes:
                session.add(
                    SalesOrderItem(
                        tenant_id=tenant_id,
                        order_id=order.id,
                        code_id=code.id,
                        epcis_hash=hash_id,
                        handed_over_at=now,
                        partner_account_id=partner_account_id,
                    )
                )
            await session.flush()
    except IntegrityError as exc:
        raise PickupRefused("One of these bottles was already handed over for another order.") from exc
    await service.do_transition(
        session,
        order,
        rules.PICKED_UP,
        actor=f"partner:{partner_account_id}" if partner_account_id else "store",
        now=now,
        values={"item_code_id": codes[0].id},
    )
    return order


async def _sellable_items(session: AsyncSession, order: SalesOrder, item_codes: list[str]) -> list:  # type: ignore[type-arg]
    texts = [t.strip() for t in item_codes if t and t.strip()]
    if len(texts) != order.quantity:
        raise PickupRefused(
            f"Order {order.order_no} is for {order.quantity} bottle(s); scan each bottle's code once "
            f"({len(texts)} given).",
            expected=order.quantity,
            given=len(texts),
        )
    refusals = custody.Refusals()
    codes = await custody.resolve(session, texts, refusals)
    refusals.raise_if_any("Bottle refused:")
    if len(codes) != order.quantity:
        raise PickupRefused("The same bottle was scanned twice; scan each bottle once.")
    products = await custody.products_of(session, codes)
    for text, code in zip(texts, codes, strict=True):
        if code.level != ITEM:
            raise PickupRefused(f"{text} is a case or pallet code; scan the bottle's own code.", code=text)
        if products[code.id] != order.product_id:
            raise PickupRefused(f"{text} is another product than this order's.", code=text)
        if code.state not in SELLABLE:
            raise PickupRefused(
                f"{text} cannot be sold: it is {STATE_NAMES.get(code.state, code.state)}.",
                code=text,
                state=STATE_NAMES.get(code.state),
            )
    already = await session.scalar(
        select(SalesOrderItem.order_id).where(SalesOrderItem.code_id.in_([c.id for c in codes])).limit(1)
    )
    if already is not None:
        raise PickupRefused("One of these bottles was already handed over for another order.")
    return codes


async def items_of(session: AsyncSession, order_id: uuid.UUID) -> list[SalesOrderItem]:
    return list(await session.scalars(select(SalesOrderItem).where(SalesOrderItem.order_id == order_id)))
