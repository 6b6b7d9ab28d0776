"""In-transaction domain events: how one module tells others that something happened.

A producer (channel scans, the consumer's PIN verification, sales) calls `publish(session, event)`
inside its own unit of work; every subscriber runs in the same transaction, so its writes commit or
roll back with the producer's. Subscribers return a value (e.g. the rewards a scan earned) that the
producer may show to the person who scanned. Subscribers must be idempotent on the event's
`source_ref` because producers may publish again on a retry.

The events themselves are plain frozen dataclasses, so a module can subscribe without importing the
producer.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

RewardKind = Literal["dealer_receive", "store_receive", "case_open", "sale", "consumer_open"]
REWARD_KINDS: tuple[RewardKind, ...] = (
    "dealer_receive",
    "store_receive",
    "case_open",
    "sale",
    "consumer_open",
)


@dataclass(frozen=True)
class ItemEvent:
    """One item (a bottle's code) passed a step that can earn rewards.

    A scan of a case or pallet publishes one `ItemEvent` per item inside it. `source_ref` names the
    producer's record (e.g. "channel-scan:{scan id}" or "consumer-verify:{code id}") and, with
    `kind` and `code_id`, makes the event unique.
    """

    tenant_id: uuid.UUID
    kind: RewardKind
    code_id: int
    product_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    occurred_at: datetime
    source_ref: str
    dealer_id: uuid.UUID | None = None
    store_id: uuid.UUID | None = None
    guide_id: uuid.UUID | None = None
    consumer_id: uuid.UUID | None = None
    partner_account_id: uuid.UUID | None = None
    latitude: float | None = None  # WGS-84
    longitude: float | None = None
    device_hash: str | None = None  # keyed hash of the client id, never the raw id
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DiversionPenalized:
    """An operator penalised a dealer for a confirmed diversion alert (防窜货): `amount` fen to deduct
    from the dealer's rewards. Published by the channel in the operator's transaction; `source_ref`
    ("diversion-penalty:{alert id}") makes it unique, so subscribers deduct once."""

    tenant_id: uuid.UUID
    alert_id: uuid.UUID
    dealer_id: uuid.UUID
    amount: int  # fen
    reason: str
    occurred_at: datetime
    source_ref: str


E = TypeVar("E")
Handler = Callable[[AsyncSession, Any], Awaitable[Any]]
_SUBSCRIBERS: dict[type, list[tuple[str, Handler]]] = {}


def subscribe(event_type: type[E], name: str, handler: Callable[[AsyncSession, E], Awaitable[Any]]) -> None:
    """Register `handler` for `event_type` under `name` (registering a name again replaces it)."""
    handlers = _SUBSCRIBERS.setdefault(event_type, [])
    handlers[:] = [(n, h) for n, h in handlers if n != name]
    handlers.append((name, handler))


def unsubscribe(event_type: type, name: str) -> None:
    handlers = _SUBSCRIBERS.get(event_type, [])
    handlers[:] = [(n, h) for n, h in handlers if n != name]


def has_subscribers(event_type: type) -> bool:
    return bool(_SUBSCRIBERS.get(event_type))


async def publish(session: AsyncSession, event: object) -> dict[str, Any]:
    """Run every subscriber of the event's type in the caller's transaction; results by name."""
    results: dict[str, Any] = {}
    for name, handler in list(_SUBSCRIBERS.get(type(event), ())):
        results[name] = await handler(session, event)
    return results
