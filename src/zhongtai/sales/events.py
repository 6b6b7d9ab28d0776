"""Events that sales publishes through `zhongtai.core.domain_events` (in the publisher's transaction).

Subscribers (flash sales return stock, lotteries forfeit the win) must be idempotent on `order_id`.
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
