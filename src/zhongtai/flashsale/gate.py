"""The gate: the one atomic step that takes stock for a buy.

`RedisGate` runs one Lua script per buy that checks the idempotency key, the sale's closed flag, the
stock and the member's count, then decrements, counts the member and appends the order to the sale's
stream — all or nothing, in one step, so an accepted buy is always in the stream. `DatabaseGate` does
the same in one SQL transaction (a conditional UPDATE of the stock row, a conditional upsert of the
member's count, and the purchase row as the durable queue); it is the embedded tier's gate, and on
PostgreSQL it is the "one hot stock row" design the benchmark compares with.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhongtai.core import sql
from zhongtai.flashsale.models import (
    MEMBER_COUNTS_TABLE,
    PURCHASE_QUEUED,
    PURCHASES_TABLE,
    SALE_SCHEDULED,
    SALES_TABLE,
    FlashSale,
)


class GateUnavailable(Exception):
    """The gate did not answer (Redis down or unreachable): whether the buy went through is unknown."""


class Outcome(IntEnum):
    SOLD_OUT = 0
    LIMIT_REACHED = 1
    REPLAYED = 2  # the same Idempotency-Key was accepted before: its answer again, nothing taken
    CLOSED = 3
    NOT_ARMED = 4
    ACCEPTED = 5


@dataclass(slots=True)
class GateAnswer:
    outcome: Outcome
    reference: str
    stock_left: int
    # For a replay: when the original buy was accepted (ms since the epoch), so the retry answers the
    # original order's payment deadline; None when unknown (an idempotency key written before it was kept).
    accepted_ms: int | None = None


@dataclass(slots=True)
class SaleConfig:
    """What the fast path and the gate need of a sale, cached in each server process."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    status: str
    starts_epoch: float
    ends_epoch: float
    per_member_limit: int
    price_fen: int
    payment_minutes: int
    stock: int
    loaded_epoch: float

    @property
    def is_scheduled(self) -> bool:
        return self.status == SALE_SCHEDULED


def sale_config(sale: FlashSale, loaded_epoch: float) -> SaleConfig:
    """From the ORM object or a row of the sales table."""
    return SaleConfig(
        id=sale.id,
        tenant_id=sale.tenant_id,
        status=sale.status,
        starts_epoch=sale.starts_at.timestamp(),
        ends_epoch=sale.ends_at.timestamp(),
        per_member_limit=sale.per_member_limit,
        price_fen=sale.price_fen,
        payment_minutes=sale.payment_minutes,
        stock=sale.stock,
        loaded_epoch=loaded_epoch,
    )


class Gate(Protocol):
    name: str

    async def arm(self, sale: SaleConfig) -> None:
        """Make the sale's stock available to buys (idempotent: arming again changes nothing)."""

    async def buy(
        self,
        sale: SaleConfig,
        consumer: str,
        quantity: int,
        reference: str,
        idempotency_key: str | None,
        accepted_ms: int,
    ) -> GateAnswer: ...

    async def close(self, sale: SaleConfig) -> None:
        """Refuse every further buy of the sale, in every server process at once."""

    async def stock_left(self, sale: SaleConfig) -> int: ...

    async def release(self, sale: SaleConfig, reference: str, consumer: str, quantity: int) -> bool:
        """Give an expired purchase's units back to the sale and free the member's slot; True the
        first time for a reference, False when it was already released."""


# Idempotency answers are kept for a day: long after any client gives up retrying.
IDEMPOTENCY_TTL_SECONDS = 86_400

# One script call decides a batch of buys, one after another, atomically as a whole: for each buy it
# checks the member's idempotency key, the closed flag, the stock and the member's count, then takes the
# stock, counts the member and appends the order to the sale's stream. A batch of one is one buy.
# KEYS: stock, buyers (hash), stream, closed, then one idempotency key per buy.
# ARGV: per-member limit, idempotency TTL, then per buy: member, quantity, reference, accepted ms, key.
# Returns three values per buy: outcome, reference, stock left; a replay's reference is the stored
# "reference accepted-ms" of the original buy. A stream entry is one field `d`:
# "reference member quantity accepted-ms key" (one field parses faster than five in the persister).
BUY_LUA = """
local limit = tonumber(ARGV[1])
local closed = redis.call('EXISTS', KEYS[4]) == 1
local left = tonumber(redis.call('GET', KEYS[1]))
local out = {}
local n = (#ARGV - 2) / 5
for i = 0, n - 1 do
  local a = 3 + i * 5
  local member, qty, ref, idem = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 4]
  local prior = false
  if idem ~= '' then prior = redis.call('GET', KEYS[5 + i]) end
  if prior then
    out[#out + 1] = 2; out[#out + 1] = prior
  elseif closed then
    out[#out + 1] = 3; out[#out + 1] = ''
  elseif left == nil then
    out[#out + 1] = 4; out[#out + 1] = ''
  elseif left < qty then
    out[#out + 1] = 0; out[#out + 1] = ''
  elseif tonumber(redis.call('HGET', KEYS[2], member) or '0') + qty > limit then
    out[#out + 1] = 1; out[#out + 1] = ''
  else
    left = redis.call('DECRBY', KEYS[1], qty)
    redis.call('HINCRBY', KEYS[2], member, qty)
    redis.call('XADD', KEYS[3], '*', 'd', ref .. ' ' .. member .. ' ' .. qty .. ' ' .. ARGV[a + 3] .. ' ' .. idem)
    if idem ~= '' then redis.call('SET', KEYS[5 + i], ref .. ' ' .. ARGV[a + 3], 'EX', ARGV[2]) end
    out[#out + 1] = 5; out[#out + 1] = ref
  end
  out[#out + 1] = left or 0
end
return out
"""

_RELEASE_LUA = """
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[3])
if redis.call('HINCRBY', KEYS[2], ARGV[2], -tonumber(ARGV[3])) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
"""

STREAM_GROUP = "persist"
# Buys that arrive while earlier ones are with Redis wait and go together in the next script call;
# at most this many calls per sale and process are with Redis at once, each with at most MAX_BATCH buys.
MAX_CALLS_IN_FLIGHT = 4
MAX_BATCH = 256


class SaleKeys:
    """A sale's Redis keys; the `{sale id}` hash tag keeps them in one Redis Cluster slot."""

    def __init__(self, prefix: str, sale_id: uuid.UUID) -> None:
        base = f"{prefix}fs:{{{sale_id.hex}}}:"
        self.stock = base + "stock"
        self.buyers = base + "buyers"
        self.stream = base + "orders"
        self.closed = base + "closed"
        self.released = base + "released"
        self.stats = base + "stats"
        self.series = base + "series"
        self.idempotency = base + "idem:"


def sales_registry_key(prefix: str) -> str:
    """A hash of armed sales (sale id hex → tenant id hex): the streams the persister reads."""
    return f"{prefix}fs:sales"


@dataclass(slots=True)
class _Pending:
    consumer: str
    quantity: int
    reference: str
    accepted_ms: int
    idempotency_key: str
    answer: asyncio.Future[GateAnswer]


class RedisGate:
    """The gate on Redis. Concurrent buys of one sale in one process are coalesced into one script call
    (each buy is still decided on its own, in arrival order, inside the atomic script): the client's
    cost per call, not Redis, is what limits a Python process."""

    name = "redis"

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._buy = redis.register_script(BUY_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._keys: dict[uuid.UUID, SaleKeys] = {}
        self._waiting: dict[uuid.UUID, list[_Pending]] = {}
        self._in_flight: dict[uuid.UUID, int] = {}
        self._calls: set[asyncio.Future[None]] = set()

    def keys(self, sale_id: uuid.UUID) -> SaleKeys:
        found = self._keys.get(sale_id)
        if found is None:
            found = self._keys[sale_id] = SaleKeys(self.prefix, sale_id)
        return found

    async def arm(self, sale: SaleConfig) -> None:
        keys = self.keys(sale.id)
        await self.redis.set(keys.stock, sale.stock, nx=True)
        try:
            await self.redis.xgroup_create(keys.stream, STREAM_GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: armed before
            if "BUSYGROUP" not in str(exc):
                raise
        await self.redis.hset(sales_registry_key(self.prefix), sale.id.hex, sale.tenant_id.hex)

    async def buy(
        self,
        sale: SaleConfig,
        consumer: str,
        quantity: int,
        reference: str,
        idempotency_key: str | None,
        accepted_ms: int,
    ) -> GateAnswer:
        loop = asyncio.get_running_loop()
        pending = _Pending(consumer, quantity, reference, accepted_ms, idempotency_key or "", loop.create_future())
        waiting = self._waiting.get(sale.id)
        if waiting is None:
            waiting = self._waiting[sale.id] = []
        waiting.append(pending)
        if len(waiting) == 1 and self._in_flight.get(sale.id, 0) < MAX_CALLS_IN_FLIGHT:
            loop.call_soon(self._dispatch, sale)  # after this turn of the loop: others may join
        return await pending.answer

    def _dispatch(self, sale: SaleConfig) -> None:
        waiting = self._waiting.get(sale.id)
        if not waiting:
            return
        batch, self._waiting[sale.id] = waiting[:MAX_BATCH], waiting[MAX_BATCH:]
        self._in_flight[sale.id] = self._in_flight.get(sale.id, 0) + 1
        call = asyncio.ensure_future(self._call(sale, batch))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    async def _call(self, sale: SaleConfig, batch: list[_Pending]) -> None:
        keys = self.keys(sale.id)
        script_keys = [keys.stock, keys.buyers, keys.stream, keys.closed]
        args: list[str | int] = [sale.per_member_limit, IDEMPOTENCY_TTL_SECONDS]
        for p in batch:
            script_keys.append(f"{keys.idempotency}{p.consumer}:{p.idempotency_key}")
            args += [p.consumer, p.quantity, p.reference, p.accepted_ms, p.idempotency_key]
        try:
            answers = await self._buy(keys=script_keys, args=args)
        except BaseException as exc:
            for p in batch:
                if not p.answer.done():
                    p.answer.set_exception(GateUnavailable(str(exc)))
            if not isinstance(exc, Exception):
                raise
        else:
            for i, p in enumerate(batch):
                if not p.answer.done():
                    p.answer.set_result(_answer_of(answers[i * 3], answers[i * 3 + 1], answers[i * 3 + 2]))
        finally:
            self._in_flight[sale.id] -= 1
            if self._waiting.get(sale.id):
                self._dispatch(sale)

    async def close(self, sale: SaleConfig) -> None:
        await self.redis.set(self.keys(sale.id).closed, b"1")

    async def stock_left(self, sale: SaleConfig) -> int:
        value = await self.redis.get(self.keys(sale.id).stock)
        return int(value) if value is not None else sale.stock

    async def release(self, sale: SaleConfig, reference: str, consumer: str, quantity: int) -> bool:
        keys = self.keys(sale.id)
        done = await self._release(keys=[keys.stock, keys.buyers, keys.released], args=[reference, consumer, quantity])
        return bool(done)


def _answer_of(outcome: int, ref: bytes | str, left: int) -> GateAnswer:
    """One buy's answer from the script's three values; a replay's stored value also carries the
    original acceptance time (keys stored before it was kept hold the reference alone)."""
    text = ref.decode() if isinstance(ref, bytes) else str(ref)
    reference, _, accepted = text.partition(" ")
    return GateAnswer(Outcome(outcome), reference, int(left), int(accepted) if accepted.isdigit() else None)


class _OverLimit(Exception):
    def __init__(self, stock_left: int) -> None:
        self.stock_left = stock_left


def _epoch_ms(at: datetime) -> int:
    """Milliseconds since the epoch of a stored UTC time (SQLite hands it back without a zone)."""
    return int((at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp() * 1000)


class DatabaseGate:
    """The gate as one SQL transaction; the purchase row it writes is the durable queue."""

    name = "database"

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    async def arm(self, sale: SaleConfig) -> None:
        return None  # the stock row is the counter; scheduling the sale is what arms it

    async def buy(
        self,
        sale: SaleConfig,
        consumer: str,
        quantity: int,
        reference: str,
        idempotency_key: str | None,
        accepted_ms: int,
    ) -> GateAnswer:
        consumer_id = uuid.UUID(consumer)
        try:
            return await self._buy(sale, consumer_id, quantity, reference, idempotency_key, accepted_ms)
        except _OverLimit as over:
            return GateAnswer(Outcome.LIMIT_REACHED, "", over.stock_left)
        except IntegrityError:
            # Two buys with one Idempotency-Key raced (possible on PostgreSQL); the first one's answer.
            if idempotency_key is None:
                raise
            return await self._buy(sale, consumer_id, quantity, reference, idempotency_key, accepted_ms)

    async def _buy(
        self,
        sale: SaleConfig,
        consumer_id: uuid.UUID,
        quantity: int,
        reference: str,
        idempotency_key: str | None,
        accepted_ms: int,
    ) -> GateAnswer:
        purchases, sales, counts = PURCHASES_TABLE, SALES_TABLE, MEMBER_COUNTS_TABLE
        async with self.engine.begin() as conn:
            if idempotency_key is not None:
                prior = (
                    await conn.execute(
                        select(purchases.c.reference, purchases.c.accepted_at).where(
                            purchases.c.tenant_id == sale.tenant_id,
                            purchases.c.sale_id == sale.id,
                            purchases.c.consumer_id == consumer_id,
                            purchases.c.idempotency_key == idempotency_key,
                        )
                    )
                ).first()
                if prior is not None:
                    left = await conn.scalar(select(sales.c.stock_left).where(sales.c.id == sale.id))
                    return GateAnswer(Outcome.REPLAYED, prior.reference, int(left or 0), _epoch_ms(prior.accepted_at))
            left = await conn.scalar(
                update(sales)
                .where(
                    sales.c.id == sale.id,
                    sales.c.tenant_id == sale.tenant_id,
                    sales.c.status == SALE_SCHEDULED,
                    sales.c.stock_left >= quantity,
                )
                .values(stock_left=sales.c.stock_left - quantity)
                .returning(sales.c.stock_left)
            )
            if left is None:
                row = (
                    await conn.execute(select(sales.c.status, sales.c.stock_left).where(sales.c.id == sale.id))
                ).first()
                if row is None or row.status != SALE_SCHEDULED:
                    return GateAnswer(Outcome.CLOSED, "", 0)
                return GateAnswer(Outcome.SOLD_OUT, "", int(row.stock_left))
            counted = await conn.execute(
                sql.insert(self.dialect, counts)
                .values(tenant_id=sale.tenant_id, sale_id=sale.id, consumer_id=consumer_id, bought=quantity)
                .on_conflict_do_update(
                    index_elements=[counts.c.sale_id, counts.c.consumer_id],
                    set_={"bought": counts.c.bought + quantity},
                    where=counts.c.bought + quantity <= sale.per_member_limit,
                )
            )
            if counted.rowcount != 1 or quantity > sale.per_member_limit:
                raise _OverLimit(int(left) + quantity)  # rolls the stock decrement back
            accepted_at = datetime.fromtimestamp(accepted_ms / 1000, UTC)
            await conn.execute(
                insert(purchases).values(
                    id=uuid.uuid4(),
                    tenant_id=sale.tenant_id,
                    reference=reference,
                    sale_id=sale.id,
                    consumer_id=consumer_id,
                    quantity=quantity,
                    unit_price_fen=sale.price_fen,
                    idempotency_key=idempotency_key,
                    status=PURCHASE_QUEUED,
                    accepted_at=accepted_at,
                    pay_by=accepted_at + timedelta(minutes=sale.payment_minutes),
                    persisted_at=accepted_at,
                )
            )
        return GateAnswer(Outcome.ACCEPTED, reference, int(left))

    async def close(self, sale: SaleConfig) -> None:
        return None  # the service sets the sale's status in its own transaction

    async def stock_left(self, sale: SaleConfig) -> int:
        async with self.engine.connect() as conn:
            left = await conn.scalar(
                select(SALES_TABLE.c.stock_left).where(
                    and_(SALES_TABLE.c.id == sale.id, SALES_TABLE.c.tenant_id == sale.tenant_id)
                )
            )
        return int(left) if left is not None else 0

    async def release(self, sale: SaleConfig, reference: str, consumer: str, quantity: int) -> bool:
        # The embedded tier releases inside the expiring transaction (see service.do_return_stock).
        return False
