"""Partner inventory and the per-dealer report, counted from the scanned custody steps.

- A dealer holds, per product, what it received from the brand less what it shipped to stores.
- A store holds what it received less what it sold.

Counts come from `channel_scan_items` (one row per item per step), so they are the events' own
arithmetic, not a counter that could drift. The per-dealer report adds what the dealer's stores
received and sold, the items seen out of territory, and data-health checks that compare the two sides
of each hand-over and the counts against the custody table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import queries as catalog_queries
from zhongtai.channel.models import Store
from zhongtai.channel.scan_models import (
    ALERT_DISMISSED,
    DEALER_RECEIVE,
    HOLDER_DEALER,
    HOLDER_STORE,
    HOLDER_TRANSIT,
    SALE,
    SHIP,
    STORE_RECEIVE,
    ChannelScanItem,
    Custody,
    DiversionAlert,
)
from zhongtai.core.clock import utcnow

STALE_DAYS = 7


@dataclass
class InventoryRow:
    product_id: uuid.UUID | None
    gtin: str
    name: str
    received: int = 0
    shipped: int = 0
    sold: int = 0

    @property
    def on_hand(self) -> int:
        return self.received - self.shipped - self.sold

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": str(self.product_id) if self.product_id else None,
            "gtin": self.gtin,
            "name": self.name,
            "received": self.received,
            "shipped": self.shipped,
            "sold": self.sold,
            "on_hand": self.on_hand,
        }


async def _counts(session: AsyncSession, *conditions: Any) -> dict[tuple[str, uuid.UUID | None], int]:
    rows = await session.execute(
        select(ChannelScanItem.action, ChannelScanItem.product_id, func.count())
        .where(*conditions)
        .group_by(ChannelScanItem.action, ChannelScanItem.product_id)
    )
    return {(action, product_id): int(n) for action, product_id, n in rows}


def _rows(
    counts: dict[tuple[str, uuid.UUID | None], int], products: dict[uuid.UUID, catalog_queries.ProductBrief], role: str
) -> list[InventoryRow]:
    received_step = DEALER_RECEIVE if role == "dealer" else STORE_RECEIVE
    out: dict[uuid.UUID | None, InventoryRow] = {}
    for (action, product_id), n in counts.items():
        product = products.get(product_id) if product_id else None
        row = out.setdefault(
            product_id, InventoryRow(product_id, product.gtin if product else "", product.name if product else "")
        )
        if action == received_step:
            row.received += n
        elif action == SHIP and role == "dealer":
            row.shipped += n
        elif action == SALE and role == "store":
            row.sold += n
    return sorted(out.values(), key=lambda r: (r.name, r.gtin))


async def dealer_inventory(session: AsyncSession, dealer_id: uuid.UUID) -> list[InventoryRow]:
    counts = await _counts(
        session, ChannelScanItem.dealer_id == dealer_id, ChannelScanItem.action.in_((DEALER_RECEIVE, SHIP))
    )
    return _rows(counts, await catalog_queries.product_briefs(session, {p for _, p in counts}), "dealer")


async def store_inventory(session: AsyncSession, store_id: uuid.UUID) -> list[InventoryRow]:
    counts = await _counts(
        session, ChannelScanItem.store_id == store_id, ChannelScanItem.action.in_((STORE_RECEIVE, SALE))
    )
    return _rows(counts, await catalog_queries.product_briefs(session, {p for _, p in counts}), "store")


@dataclass
class HealthCheck:
    name: str  # stable key
    ok: bool
    message: str  # English source string with {placeholders}
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class DealerReport:
    received: int
    shipped: int
    store_received: int
    sold: int
    out_of_territory: int
    alerts: int
    in_transit: int
    on_hand: int
    checks: list[HealthCheck]
    stores: list[dict[str, Any]]


async def dealer_report(session: AsyncSession, dealer_id: uuid.UUID, *, stale_days: int = STALE_DAYS) -> DealerReport:
    """Received vs shipped vs (by its stores) received and sold vs seen out of territory, with checks."""
    by_action = await _lines_by_action(session, dealer_id)
    received, shipped = int(by_action.get(DEALER_RECEIVE, 0)), int(by_action.get(SHIP, 0))
    store_received, sold = int(by_action.get(STORE_RECEIVE, 0)), int(by_action.get(SALE, 0))
    alerts, alerted_items = await _open_alerts(session, dealer_id)
    holders = await _held_by_holder(session, dealer_id)
    stale_count, stale_oldest = await _stale_in_transit(session, dealer_id, stale_days)
    stores = await _store_shipments(session, dealer_id)
    in_transit = int(holders.get(HOLDER_TRANSIT, 0))
    on_hand = int(holders.get(HOLDER_DEALER, 0))
    checks = [
        HealthCheck(
            "shipped_not_received",
            stale_count == 0,
            "{count} items shipped more than {days} days ago are not received by their store (oldest {oldest}).",
            {
                "count": stale_count,
                "days": stale_days,
                "oldest": stale_oldest.date().isoformat() if stale_oldest else "-",
            },
        ),
        HealthCheck(
            "stock_matches_custody",
            received - shipped == on_hand,
            "Received less shipped ({expected}) against the items the dealer holds ({held}).",
            {"expected": received - shipped, "held": on_hand},
        ),
        HealthCheck(
            "stores_match_shipments",
            shipped - store_received == in_transit,
            "Shipped less received by stores ({expected}) against the items in transit ({transit}).",
            {"expected": shipped - store_received, "transit": in_transit},
        ),
        HealthCheck(
            "store_stock_matches_custody",
            store_received - sold == int(holders.get(HOLDER_STORE, 0)),
            "Received by stores less sold ({expected}) against the items in its stores ({held}).",
            {"expected": store_received - sold, "held": int(holders.get(HOLDER_STORE, 0))},
        ),
    ]
    return DealerReport(
        received=received,
        shipped=shipped,
        store_received=store_received,
        sold=sold,
        out_of_territory=alerted_items,
        alerts=alerts,
        in_transit=in_transit,
        on_hand=on_hand,
        checks=checks,
        stores=stores,
    )


async def _lines_by_action(session: AsyncSession, dealer_id: uuid.UUID) -> dict[str, int]:
    """The dealer's scan lines counted by step."""
    return dict(
        (
            await session.execute(
                select(ChannelScanItem.action, func.count())
                .where(ChannelScanItem.dealer_id == dealer_id)
                .group_by(ChannelScanItem.action)
            )
        ).all()
    )


async def _open_alerts(session: AsyncSession, dealer_id: uuid.UUID) -> tuple[int, int]:
    """The dealer's diversion alerts not dismissed, and the items they name."""
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(DiversionAlert.item_count), 0)).where(
                DiversionAlert.dealer_id == dealer_id, DiversionAlert.status != ALERT_DISMISSED
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def _held_by_holder(session: AsyncSession, dealer_id: uuid.UUID) -> dict[str, int]:
    """The items in the dealer's custody counted by who holds them now."""
    return dict(
        (
            await session.execute(
                select(Custody.holder, func.count()).where(Custody.dealer_id == dealer_id).group_by(Custody.holder)
            )
        ).all()
    )


async def _stale_in_transit(
    session: AsyncSession, dealer_id: uuid.UUID, stale_days: int
) -> tuple[int, datetime | None]:
    """How many items the dealer shipped more than `stale_days` ago are still in transit, and the oldest shipping."""
    cutoff: datetime = utcnow() - timedelta(days=stale_days)
    row = (
        await session.execute(
            select(func.count(), func.min(Custody.shipped_at)).where(
                Custody.dealer_id == dealer_id, Custody.holder == HOLDER_TRANSIT, Custody.shipped_at < cutoff
            )
        )
    ).one()
    return int(row[0]), row[1]


async def _store_shipments(session: AsyncSession, dealer_id: uuid.UUID) -> list[dict[str, Any]]:
    """What each store received from this dealer against what the dealer shipped to it (by store code)."""
    shipped_to = dict(
        (
            await session.execute(
                select(ChannelScanItem.store_id, func.count())
                .where(ChannelScanItem.dealer_id == dealer_id, ChannelScanItem.action == SHIP)
                .group_by(ChannelScanItem.store_id)
            )
        ).all()
    )
    received_by = dict(
        (
            await session.execute(
                select(ChannelScanItem.store_id, func.count())
                .where(ChannelScanItem.dealer_id == dealer_id, ChannelScanItem.action == STORE_RECEIVE)
                .group_by(ChannelScanItem.store_id)
            )
        ).all()
    )
    store_ids = [s for s in set(shipped_to) | set(received_by) if s is not None]
    names = (
        {s.id: s for s in (await session.scalars(select(Store).where(Store.id.in_(store_ids)))) if store_ids}
        if store_ids
        else {}
    )
    return [
        {
            "store_id": str(sid),
            "code": names[sid].code if sid in names else "",
            "name": names[sid].name if sid in names else "",
            "supplied": names[sid].dealer_id == dealer_id if sid in names else False,
            "shipped": int(shipped_to.get(sid, 0)),
            "received": int(received_by.get(sid, 0)),
        }
        for sid in sorted(store_ids, key=lambda s: names[s].code if s in names else "")
    ]
