"""The scan stream worker: writes the PIN checks decided in Redis (hot.py) to PostgreSQL, in batches.

Each web process runs one consumer of the group `persist` on the stream `authenticity:scans` (and
`zhongtai worker` can run more). A batch is read with XREADGROUP, written in one transaction per
brand — the scan rows (with the ids the checks preallocated; `ON CONFLICT (id) DO NOTHING`), the
code summaries (monotonic upserts: counts only grow, the first verification is kept once set), clone
alerts through the outbox, and the `consumer_open` event of a code's first genuine verification —
and only then acknowledged (XACK, XDEL). A worker that dies before its commit leaves its entries
pending; another consumer claims them after `CLAIM_IDLE_MS` (XAUTOCLAIM). A worker that dies
between commit and acknowledgement has them delivered again: rows that already exist are skipped,
and summaries and events follow only the rows inserted now, so nothing is counted or published twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from redis.exceptions import ResponseError
from sqlalchemy import case, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import models as m
from zhongtai.authenticity import rules, service
from zhongtai.authenticity.hot import STREAM_KEY, enabled, key
from zhongtai.authenticity.models import CodeSummary, Scan
from zhongtai.core import domain_events
from zhongtai.core.runtime import Runtime, register_background

log = logging.getLogger("zhongtai.authenticity.persist")

GROUP = "persist"
BATCH = 500
CLAIM_IDLE_MS = 30_000
BLOCK_MS = 1_000
LINGER_SECONDS = 0.2  # how long a worker waits after a small batch (the database lags at most this more)

_UUIDS = ("tenant_id", "product_id", "lot_id", "consumer_id")


def _scan_row(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(fields[b"scan"])
    for name in _UUIDS:
        if values.get(name):
            values[name] = uuid.UUID(values[name])
    values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
    values["id"] = int(fields[b"id"])
    if fields[b"kind"] == b"pin_bad":
        values["verdict"] = m.WRONG_PIN
    else:
        values["verdict"] = fields[b"verdict"].decode()
        values["reason"] = fields[b"reason"].decode() or None
        values["verification_number"] = int(fields[b"n"])
    return values


class ScanPersister:
    """One consumer of the scan stream."""

    def __init__(
        self, runtime: Runtime, *, consumer: str | None = None, batch: int = BATCH, claim_idle_ms: int = CLAIM_IDLE_MS
    ) -> None:
        assert runtime.redis is not None
        self.runtime = runtime
        self.redis = runtime.redis
        self.stream = key(runtime, STREAM_KEY)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self._group_ready = False

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:  # BUSYGROUP: made by another consumer
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _next_entries(self, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # Entries of a consumer that stopped before acknowledging them come first.
        claimed: Any = await self.redis.xautoclaim(
            self.stream, GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=self.batch
        )
        entries = [entry for entry in claimed[1] if entry[1]]
        if entries:
            return entries
        read: Any = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=self.batch, block=block_ms
        )
        return [entry for _, items in read or [] for entry in items if entry[1]]

    async def run_once(self, *, block_ms: int | None = None) -> int:
        """Persist one batch; returns how many entries it held (0: nothing to do)."""
        await self._ensure_group()
        entries = await self._next_entries(block_ms)
        if not entries:
            return 0
        rows = [_scan_row(entry_id, fields) for entry_id, fields in entries]
        clones = {int(fields[b"id"]): fields for _, fields in entries if b"prev_id" in fields}
        by_tenant: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_tenant[row["tenant_id"]].append(row)
        for tenant_id, tenant_rows in by_tenant.items():
            async with self.runtime.db.unit_of_work(tenant_id=tenant_id) as session:
                await persist_rows(session, tenant_rows, clones)
        ids = [entry_id for entry_id, _ in entries]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream, GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            await pipe.execute()
        return len(entries)

    async def drain(self) -> int:
        """Persist until the stream has nothing new for this consumer (tests, shutdown)."""
        total = 0
        while done := await self.run_once():
            total += done
        return total

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await self.run_once(block_ms=BLOCK_MS)
                if 0 < done < self.batch // 4:
                    # A small batch: let a few more checks arrive, so that each commit carries more.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=LINGER_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or Redis outage: entries stay pending, try again
                log.exception("scan stream batch failed; retrying")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)


async def persist_rows(
    session: AsyncSession, rows: list[dict[str, Any]], clones: dict[int, dict[bytes, bytes]]
) -> None:
    """Write one brand's scan rows; summaries, alerts and events only for the rows new to the table."""
    table: Any = Scan.__table__
    columns = [column.name for column in table.columns]
    full = [{name: row.get(name) for name in columns} for row in rows]
    # One statement with the rows as parameters: compiled once and cached, whatever the batch size.
    result = await session.execute(
        pg_insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id), full
    )
    inserted = set(result.scalars())
    new = [row for row in rows if row["id"] in inserted]
    if not new:
        return
    summaries: dict[int, dict[str, Any]] = {}
    for row in sorted(new, key=lambda r: (r.get("verification_number") or 0, r["id"])):
        summary = summaries.setdefault(row["code_id"], _empty_summary(row))
        if row["kind"] == m.KIND_PIN_BAD:
            summary["wrong_pin_count"] += 1
            continue
        number = row["verification_number"]
        summary |= {"verify_count": number, "last_verified_at": row["occurred_at"], "last_scan_id": row["id"]}
        if number == 1:
            summary |= {
                "first_verified_at": row["occurred_at"],
                "first_scan_id": row["id"],
                "first_latitude": row["latitude"],
                "first_longitude": row["longitude"],
                "first_province_code": row["province_code"],
                "first_city_code": row["city_code"],
                "first_city_name": row["city_name"],
            }
        if row["latitude"] is not None:
            summary |= {
                "last_located_at": row["occurred_at"],
                "last_located_scan_id": row["id"],
                "last_latitude": row["latitude"],
                "last_longitude": row["longitude"],
            }
        if row["reason"] == m.REASON_CLONE and summary["suspicious_reason"] is None:
            summary |= {"suspicious_reason": m.REASON_CLONE, "suspicious_since": row["occurred_at"]}
    await _upsert_summaries(session, list(summaries.values()))
    for row in new:
        fields = clones.get(row["id"])
        if fields is not None:
            await _enqueue_clone(session, row, fields)
        if row.get("verdict") == m.GENUINE:
            await domain_events.publish(session, service.consumer_open_event(_ref(row), _ctx(row)))


def _empty_summary(row: dict[str, Any]) -> dict[str, Any]:
    names = [column.name for column in CodeSummary.__table__.columns]
    summary: dict[str, Any] = dict.fromkeys(names)
    summary |= {"code_id": row["code_id"], "tenant_id": row["tenant_id"], "view_count": 0}
    summary |= {"verify_count": 0, "wrong_pin_count": 0}
    return summary


async def _upsert_summaries(session: AsyncSession, summaries: list[dict[str, Any]]) -> None:
    table: Any = CodeSummary.__table__
    c, x = table.c, pg_insert(table).excluded
    newer = x.verify_count > c.verify_count

    def when_newer(name: str) -> Any:
        return case((newer, x[name]), else_=c[name])

    def located(name: str) -> Any:
        later = (x.last_located_at.is_not(None)) & (
            c.last_located_at.is_(None) | (x.last_located_at >= c.last_located_at)
        )
        return case((later, x[name]), else_=c[name])

    first = [column.name for column in table.columns if column.name.startswith("first_")]
    updates: dict[str, Any] = {
        "verify_count": func.greatest(c.verify_count, x.verify_count),
        "wrong_pin_count": c.wrong_pin_count + x.wrong_pin_count,
        "last_verified_at": when_newer("last_verified_at"),
        "last_scan_id": when_newer("last_scan_id"),
        "suspicious_reason": func.coalesce(c.suspicious_reason, x.suspicious_reason),
        "suspicious_since": func.coalesce(c.suspicious_since, x.suspicious_since),
    }
    updates |= {name: case((x.first_verified_at.is_not(None), x[name]), else_=c[name]) for name in first}
    updates |= {
        name: located(name) for name in ("last_located_scan_id", "last_latitude", "last_longitude", "last_located_at")
    }
    statement = pg_insert(table).on_conflict_do_update(index_elements=["code_id"], set_=updates)
    await session.execute(statement, summaries)


def _ref(row: dict[str, Any]) -> service.CodeRef:
    return service.CodeRef(
        tenant_id=row["tenant_id"],
        code_id=row["code_id"],
        serial=row["serial"],
        state=0,
        gtin=row["gtin"],
        product_id=row["product_id"],
        lot_id=row["lot_id"],
    )


def _ctx(row: dict[str, Any]) -> service.CheckContext:
    located = None
    if row["latitude"] is not None and row["longitude"] is not None:
        located = rules.Located(row["occurred_at"], row["latitude"], row["longitude"])
    return service.CheckContext(
        occurred_at=row["occurred_at"],
        location=located,
        accuracy_m=row["accuracy_m"],
        region=service.Region(row["province_code"], row["city_code"], row["city_name"]),
        network_hash=row["network_hash"],
        client_hash=row["client_hash"],
        consumer_id=row["consumer_id"],
        ua_class=row["ua_class"],
    )


async def _enqueue_clone(session: AsyncSession, row: dict[str, Any], fields: dict[bytes, bytes]) -> None:
    speed = float(fields[b"speed"])
    clone = rules.CloneEvidence(
        round(float(fields[b"dist"]), 3), float(fields[b"secs"]), round(speed, 1) if speed >= 0 else 1e9
    )
    previous = {
        "last_located_scan_id": int(fields[b"prev_id"]) if fields[b"prev_id"] else None,
        "last_located_at": datetime.fromisoformat(fields[b"prev_iso"].decode()),
        "last_latitude": float(fields[b"prev_lat"]),
        "last_longitude": float(fields[b"prev_lon"]),
    }
    await service.enqueue_clone_alert(session, _ref(row), _Previous(previous), row["id"], _ctx(row), clone)


class _Previous:
    """The summary fields the clone alert needs, as the script saw them."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


# Each web process on the production tier runs one consumer beside the job worker.


async def run_in_process(runtime: Runtime, stop: asyncio.Event) -> None:
    if enabled(runtime):
        await ScanPersister(runtime).run_forever(stop)


register_background("authenticity.persist", run_in_process)
