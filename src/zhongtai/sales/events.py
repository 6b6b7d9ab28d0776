"""Events that sales publishes through `zhongtai.core.domain_events` (in the publisher's transaction).

Subscribers (flash sales return stock; lotteries mark the win paid or forfeit it) must be idempotent
on `order_id`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class OrderExpired:
    """An order was not paid by its deadline and is now `expired`. Published exactly once per order,
    in the transaction that expired it."""

    tenant_id: uuid.UUID
    order_id: uuid.UUID
    source: str
    source_ref: str
    product_id: uuid.UUID
    quantity: int
    consumer_id: uuid.UUID


@dataclass(frozen=True)
class OrderPaid:
    """An order's payment succeeded and the order is now paid (then ready for pickup). Published exactly
    once per order, in the transaction of the provider's verified notification."""

    tenant_id: uuid.UUID
    order_id: uuid.UUID
    source: str
    source_ref: str
    product_id: uuid.UUID
    quantity: int
    consumer_id: uuid.UUID
    amount_fen: int
