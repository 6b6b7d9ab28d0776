"""The persister: accepted buys from the sales' Redis streams into the database, in batches.

Each sale has a stream that the gate's Lua script appends to in the same step as it takes the stock.
Persisters read it as one consumer group (`XREADGROUP`), insert a batch of purchases in one
transaction (idempotent on the reference: `ON CONFLICT DO NOTHING`), commit, and only then `XACK` the
entries. A persister killed before its commit leaves its entries pending in the group; every persister
claims entries that have been pending longer than `claim_idle_ms` (`XAUTOCLAIM`) when it starts and
every `claim_every_s` afterwards, so a dead one's batch is written by another. A persister killed after
its commit but before its `XACK` has its entries delivered again; the unique reference makes the second
insert a no-op. Accepted buys are therefore written exactly once.

On the embedded tier the gate writes the purchase row itself, in the buy's transaction, as `queued`;
`QueuedPersister` turns queued purchases into orders in batches.

Each purchase becomes a sales order (`zhongtai.sales`, source "flashsale", source_ref = the reference)
in the same transaction as the purchase row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import sql
from zhongtai.core.db import Database
from zhongtai.core.settings import Settings
from zhongtai.flashsale.gate import STREAM_GROUP, SaleKeys, sales_registry_key
from zhongtai.flashsale.models import PURCHASE_ORDERED, PURCHASE_QUEUED, PURCHASES_TABLE, FlashSale
from zhongtai.flashsale.service import ORDER_SOURCE
from zhongtai.sales import service as orders
from zhongtai.sales.rules import OrderDraft

log = logging.getLogger("zhongtai.flashsale.persister")

Entry = tuple[bytes, dict[bytes, bytes]]
MIN_PAYMENT_SECONDS = 60


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Persister:
    def __init__(
        self,
        database: Database,
        redis: Redis,
        prefix: str,
        *,
        name: str | None = None,
        batch_size: int = 1000,
        block_ms: int = 500,
        claim_idle_ms: int = 30_000,
        claim_every_s: float = 10.0,
    ) -> None:
        self.database = database
        self.redis = redis
        self.prefix = prefix
        self.name = name or consumer_name()
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every_s = claim_every_s
        self._sales: dict[uuid.UUID, SaleFacts] = {}
        self._claimed_at = 0.0
        self.persisted = 0

    async def streams(self) -> dict[str, uuid.UUID]:
        """Stream key → sale id of every armed sale."""
        registry = await self.redis.hkeys(sales_registry_key(self.prefix))
        found = {}
        for raw in registry:
            sale_id = uuid.UUID(raw.decode() if isinstance(raw, bytes) else str(raw))
            found[SaleKeys(self.prefix, sale_id).stream] = sale_id
        return found

    async def run_once(self) -> int:
        """Claim abandoned entries when due, then read and persist one batch; the number written."""
        streams = await self.streams()
        if not streams:
            return 0
        written = 0
        if time.monotonic() - self._claimed_at >= self.claim_every_s:
            self._claimed_at = time.monotonic()
            written += await self.claim_abandoned(streams)
        answer: list[tuple[bytes, list[Entry]]] = await self.redis.xreadgroup(  # type: ignore[assignment]
            STREAM_GROUP,
            self.name,
            dict.fromkeys(streams, ">"),
            count=self.batch_size,
            block=self.block_ms,
        )
        for stream, entries in answer or []:
            key = stream.decode() if isinstance(stream, bytes) else str(stream)
            written += await self._persist(key, streams[key], entries)
        return written

    async def claim_abandoned(self, streams: dict[str, uuid.UUID] | None = None) -> int:
        """Take over entries that another (dead) persister read but never acknowledged, and write them."""
        streams = streams if streams is not None else await self.streams()
        written = 0
        for key, sale_id in streams.items():
            start = "0-0"
            while True:
                answer = await self.redis.xautoclaim(
                    key, STREAM_GROUP, self.name, self.claim_idle_ms, start_id=start, count=self.batch_size
                )
                start, entries = answer[0], answer[1]
                if entries:
                    written += await self._persist(key, sale_id, entries)
                if start in (b"0-0", "0-0"):
                    break
        return written

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("flash-sale persister: batch failed; retrying")
                await asyncio.sleep(1.0)

    async def _sale(self, session: AsyncSession, sale_id: uuid.UUID) -> SaleFacts | None:
        found = self._sales.get(sale_id)
        if found is None:
            row = (
                await session.execute(
                    select(
                        FlashSale.tenant_id, FlashSale.product_id, FlashSale.price_fen, FlashSale.payment_minutes
                    ).where(FlashSale.id == sale_id)
                )
            ).first()
            if row is None:
                return None
            found = self._sales[sale_id] = SaleFacts(row[0], row[1], row[2], row[3])
        return found

    async def _persist(self, stream: str, sale_id: uuid.UUID, entries: Sequence[Entry]) -> int:
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]  # deleted entries come back empty
        if not entries:
            return 0
        async with self.database.unit_of_work(all_tenants=True) as session:
            sale = await self._sale(session, sale_id)
            if sale is None:
                log.error("flash-sale persister: stream of an unknown sale %s; entries left pending", sale_id)
                return 0
            now = datetime.now(UTC)
            rows = [_purchase_row(sale_id, sale, fields, now) for _entry_id, fields in entries]
            await insert_purchases(session, rows)
            await create_orders(session, sale, rows)
        await self.redis.xack(stream, STREAM_GROUP, *[entry_id for entry_id, _fields in entries])
        self.persisted += len(rows)
        return len(rows)


@dataclass(frozen=True)
class SaleFacts:
    tenant_id: uuid.UUID
    product_id: uuid.UUID
    price_fen: int
    payment_minutes: int


def pay_deadline(accepted_at: datetime, payment_minutes: int, now: datetime) -> datetime:
    """The buyer's deadline to pay: `payment_minutes` after the buy, but never less than
    `MIN_PAYMENT_SECONDS` after the order is written (when persisting was late, e.g. after an outage)."""
    return max(accepted_at + timedelta(minutes=payment_minutes), now + timedelta(seconds=MIN_PAYMENT_SECONDS))


def _purchase_row(sale_id: uuid.UUID, sale: SaleFacts, fields: dict[bytes, bytes], now: datetime) -> dict[str, Any]:
    reference, member, quantity, accepted_ms, key = fields[b"d"].decode().split(" ")
    accepted_at = datetime.fromtimestamp(int(accepted_ms) / 1000, UTC)
    return {
        "id": uuid.uuid4(),
        "tenant_id": sale.tenant_id,
        "reference": reference,
        "sale_id": sale_id,
        "consumer_id": uuid.UUID(member),
        "quantity": int(quantity),
        "unit_price_fen": sale.price_fen,
        "idempotency_key": key or None,
        "status": PURCHASE_ORDERED,
        "accepted_at": accepted_at,
        "pay_by": pay_deadline(accepted_at, sale.payment_minutes, now),
        "persisted_at": now,
    }


async def create_orders(session: AsyncSession, sale: SaleFacts, rows: Sequence[dict[str, Any]]) -> int:
    """The sales orders of these purchases (idempotent on the reference, the orders' source_ref)."""
    drafts = [
        OrderDraft(
            source=ORDER_SOURCE,
            source_ref=row["reference"],
            consumer_id=row["consumer_id"],
            product_id=sale.product_id,
            quantity=row["quantity"],
            unit_price_fen=row["unit_price_fen"],
            pay_deadline=row["pay_by"],
            created_at=row["accepted_at"],
        )
        for row in rows
    ]
    return await orders.create_orders_bulk(session, sale.tenant_id, drafts)


async def insert_purchases(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert purchases, skipping references already written (the tenant is in each row)."""
    table = PURCHASES_TABLE
    await session.execute(sql.insert_ignore(session, table, table.c.reference), rows)


class QueuedPersister:
    """The embedded tier's persister (and the database gate's anywhere): purchases the gate wrote as
    `queued` become sales orders in batches, each batch in one transaction."""

    def __init__(self, database: Database, *, batch_size: int = 1000, idle_sleep_s: float = 0.5) -> None:
        self.database = database
        self.batch_size = batch_size
        self.idle_sleep_s = idle_sleep_s
        self.persisted = 0

    async def run_once(self) -> int:
        table = PURCHASES_TABLE
        async with self.database.unit_of_work(all_tenants=True) as session:
            query = (
                select(table)
                .where(table.c.status == PURCHASE_QUEUED)
                .order_by(table.c.accepted_at)
                .limit(self.batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            queued = [dict(row._mapping) for row in (await session.execute(query)).all()]
            if not queued:
                return 0
            now = datetime.now(UTC)
            by_sale: dict[uuid.UUID, list[dict[str, Any]]] = {}
            for row in queued:
                by_sale.setdefault(row["sale_id"], []).append(row)
            for sale_id, rows in by_sale.items():
                found = (
                    await session.execute(
                        select(
                            FlashSale.tenant_id, FlashSale.product_id, FlashSale.price_fen, FlashSale.payment_minutes
                        ).where(FlashSale.id == sale_id)
                    )
                ).first()
                assert found is not None, "purchases reference their sale"
                sale = SaleFacts(found[0], found[1], found[2], found[3])
                for row in rows:
                    row["pay_by"] = max(row["pay_by"], now + timedelta(seconds=MIN_PAYMENT_SECONDS))
                await create_orders(session, sale, rows)
            await session.execute(
                update(table)
                .where(table.c.id.in_([row["id"] for row in queued]), table.c.status == PURCHASE_QUEUED)
                .values(status=PURCHASE_ORDERED)
            )
        self.persisted += len(queued)
        return len(queued)

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if not await self.run_once():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.idle_sleep_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("flash-sale persister: batch failed; retrying")
                await asyncio.sleep(1.0)


class InProcessPersister:
    """The persister as a task of a web process (`ZT_IN_PROCESS_WORKER=true` on the Redis tier)."""

    def __init__(self, persister: Persister | QueuedPersister) -> None:
        self.persister = persister
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.persister.run_forever(self._stop))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None


def make_persister(database: Database, redis: Redis | None, settings: Settings) -> Persister | QueuedPersister:
    """The persister for where this installation's gate keeps accepted buys."""
    if redis is not None and settings.flashsale_gate != "database":
        return Persister(database, redis, settings.redis_prefix)
    return QueuedPersister(database)
