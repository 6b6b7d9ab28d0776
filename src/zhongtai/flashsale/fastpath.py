"""The buy endpoint as a plain ASGI handler in front of the application.

`POST /api/v1/flashsale/sales/{sale id}/buy` with `Authorization: Bearer zfp_…` (a sale pass, see
`rules.issue_pass`) answers `202 {"reference", …}` or a refusal in the platform's error shape. It is
served before FastAPI's routing, dependencies and middleware: no database session, no ORM, no pydantic.
Per request it does a little parsing, an HMAC check of the pass, two in-process rate-limit steps, and
one call to the gate. Everything else it needs is cached per server process:

- the sale (status, window, limit, price) for at most `SALE_CACHE_SECONDS`; an operator's "end now"
  also closes the gate itself, so no process accepts after it;
- a sold-out flag per sale for `SOLD_OUT_FLAG_SECONDS`: once the gate says the stock is gone, buys are
  answered from memory (stock can come back when unpaid orders expire, hence the short life);
- rate limits (GCRA, `core.ratelimit`) per network address and per member, per process: a shared Redis
  limiter would add two round trips to every buy.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from zhongtai.core import clock
from zhongtai.core.ratelimit import gcra
from zhongtai.core.runtime import Runtime
from zhongtai.flashsale import rules
from zhongtai.flashsale.gate import (
    DatabaseGate,
    Gate,
    GateAnswer,
    GateUnavailable,
    Outcome,
    RedisGate,
    SaleConfig,
    sale_config,
)
from zhongtai.flashsale.models import SALES_TABLE

BUY_PREFIX = "/api/v1/flashsale/sales/"
BUY_SUFFIX = "/buy"
_PATH_LENGTH = len(BUY_PREFIX) + 36 + len(BUY_SUFFIX)
SALE_CACHE_SECONDS = 1.0
SOLD_OUT_FLAG_SECONDS = 1.0
STATS_FLUSH_SECONDS = 1.0
MAX_BODY_BYTES = 1024
_LIMITER_MAX_KEYS = 200_000

# Outcome names as counted in the live figures.
ACCEPTED = "accepted"
REJECTED_REASONS = (
    "sold_out",
    "limit_reached",
    "sale_not_open",
    "pass_invalid",
    "rate_limited",
    "bad_request",
    "gate_unavailable",
)
log = logging.getLogger("zhongtai.flashsale")


def make_gate(runtime: Runtime) -> Gate:
    choice = runtime.settings.flashsale_gate
    if choice == "redis" or (choice == "auto" and runtime.redis is not None):
        if runtime.redis is None:
            raise RuntimeError("ZT_FLASHSALE_GATE=redis needs ZT_REDIS_URL")
        return RedisGate(runtime.redis, runtime.settings.redis_prefix)
    return DatabaseGate(runtime.db.engine)


class SaleState:
    """A server process's flash-sale state: the gate, cached sales, flags, limits and counters."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.gate = make_gate(runtime)
        self.pass_key = rules.pass_key(runtime.crypto.secret_key)
        self.sales: dict[uuid.UUID, SaleConfig] = {}
        self._loading: dict[uuid.UUID, asyncio.Task[SaleConfig | None]] = {}
        self.sold_out_until: dict[uuid.UUID, float] = {}  # sale → until when (epoch seconds, platform clock)
        self.address_rate = runtime.settings.flashsale_requests_per_second_per_address
        self.member_rate = runtime.settings.flashsale_requests_per_minute_per_member
        self._tats: dict[str, float] = {}
        # Counted since this process started (read by the live page on the embedded tier) and since the
        # last flush to Redis (where the production tier's processes add theirs up).
        self.totals: dict[uuid.UUID, Counter[str]] = {}
        self.pending: dict[uuid.UUID, Counter[str]] = {}
        self.pending_series: dict[uuid.UUID, Counter[int]] = {}
        self._flushed_at = time.monotonic()
        self._flush_task: asyncio.Task[None] | None = None

    # Sales.

    async def sale(self, sale_id: uuid.UUID) -> SaleConfig | None:
        cached = self.sales.get(sale_id)
        now = time.monotonic()
        if cached is not None and now - cached.loaded_epoch < SALE_CACHE_SECONDS:
            return cached
        task = self._loading.get(sale_id)
        if task is None:
            task = self._loading[sale_id] = asyncio.ensure_future(self._load(sale_id))
            task.add_done_callback(lambda _t: self._loading.pop(sale_id, None))
        if cached is not None:
            return cached  # served while a fresh copy loads
        return await asyncio.shield(task)

    async def _load(self, sale_id: uuid.UUID) -> SaleConfig | None:
        async with self.runtime.db.engine.connect() as conn:
            table = SALES_TABLE
            row = (await conn.execute(select(table).where(table.c.id == sale_id))).first()
        if row is None:
            self.sales.pop(sale_id, None)
            return None
        config = sale_config(row, time.monotonic())  # type: ignore[arg-type]
        self.sales[sale_id] = config
        return config

    def forget(self, sale_id: uuid.UUID) -> None:
        self.sales.pop(sale_id, None)
        self.sold_out_until.pop(sale_id, None)

    # Limits.

    def allow(self, key: str, limit: int, period: float) -> float:
        """0.0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        decision, tat = gcra(self._tats.get(key, now), now, limit=limit, period=period, cost=1)
        self._tats[key] = tat
        if len(self._tats) > _LIMITER_MAX_KEYS:
            self._tats = {k: v for k, v in self._tats.items() if v > now}
        return 0.0 if decision.allowed else decision.retry_after

    # Figures.

    def count(self, sale_id: uuid.UUID, outcome: str, quantity: int = 1) -> None:
        totals = self.totals.get(sale_id)
        if totals is None:
            totals = self.totals[sale_id] = Counter()
        totals[outcome] += quantity
        if self.runtime.redis is None:
            return
        pending = self.pending.get(sale_id)
        if pending is None:
            pending = self.pending[sale_id] = Counter()
        pending[outcome] += quantity
        if outcome == ACCEPTED:
            series = self.pending_series.get(sale_id)
            if series is None:
                series = self.pending_series[sale_id] = Counter()
            series[int(time.time())] += quantity
        now = time.monotonic()
        if now - self._flushed_at >= STATS_FLUSH_SECONDS and self._flush_task is None:
            self._flushed_at = now
            self._flush_task = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        """Add this process's counts since the last flush to the sale's figures in Redis."""
        pending, series = self.pending, self.pending_series
        self.pending, self.pending_series = {}, {}
        try:
            if self.runtime.redis is None or not (pending or series):
                return
            gate = self.gate
            prefix = self.runtime.settings.redis_prefix
            async with self.runtime.redis.pipeline(transaction=False) as pipe:
                for sale_id, counts in pending.items():
                    keys = gate.keys(sale_id) if isinstance(gate, RedisGate) else None
                    stats_key = keys.stats if keys else f"{prefix}fs:{{{sale_id.hex}}}:stats"
                    for outcome, n in counts.items():
                        pipe.hincrby(stats_key, outcome, n)
                for sale_id, per_second in series.items():
                    series_key = f"{prefix}fs:{{{sale_id.hex}}}:series"
                    for second, n in per_second.items():
                        pipe.hincrby(series_key, str(second), n)
                await pipe.execute()
        except Exception:  # figures only: never let them disturb the sale
            log.warning("flash-sale figures not flushed to Redis", exc_info=True)
        finally:
            self._flush_task = None


_STATE_ATTRIBUTE = "_flashsale_state"


def state_of(runtime: Runtime) -> SaleState:
    """The process's flash-sale state, kept on its runtime."""
    state: SaleState | None = runtime.__dict__.get(_STATE_ATTRIBUTE)
    if state is None:
        state = SaleState(runtime)
        setattr(runtime, _STATE_ATTRIBUTE, state)
    return state


def new_reference() -> str:
    """16 base32 characters (80 random bits) after "FS": unguessable and easy to read out."""
    return "FS" + base64.b32encode(os.urandom(10)).decode()


_JSON_HEADERS = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")]


async def _answer(send: Send, status: int, payload: dict[str, Any], retry_after: float | None = None) -> None:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, int(retry_after + 0.999))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(
    send: Send, status: int, code: str, detail: str, retry_after: float | None = None, **data: Any
) -> None:
    if retry_after is not None:
        data["retry_after_seconds"] = max(1, int(retry_after + 0.999))
    await _answer(send, status, {"error": code, "detail": detail, "data": data}, retry_after)


async def _read_body(receive: Receive) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return body


def _header(scope: Scope, name: bytes) -> bytes | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value
    return None


def _buy_sale(scope: Scope) -> str | None:
    """The sale id text of a buy request, else None."""
    path: str = scope.get("path", "")
    if (
        scope["type"] != "http"
        or len(path) != _PATH_LENGTH
        or not path.startswith(BUY_PREFIX)
        or not path.endswith(BUY_SUFFIX)
        or scope["method"] != "POST"
    ):
        return None
    return path[len(BUY_PREFIX) : -len(BUY_SUFFIX)]


class FlashSaleFastPath:
    """ASGI middleware that answers buy requests itself and passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sale_text = _buy_sale(scope)
        if sale_text is None:
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        await buy(state_of(runtime), scope, receive, send, sale_text)


class FlashSaleFront:
    """The application as the server runs it: buys go straight to the fast path, everything else (and
    the lifespan) to the FastAPI application. Skips FastAPI's and Starlette's outer layers for the
    hottest request (about a third of a sold-out answer's CPU in this process)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sale_text = _buy_sale(scope)
        if sale_text is None:
            await self.app(scope, receive, send)
            return
        await buy(state_of(self.app.state.runtime), scope, receive, send, sale_text)


async def buy(state: SaleState, scope: Scope, receive: Receive, send: Send, sale_text: str) -> None:
    try:
        sale_id = uuid.UUID(sale_text)
    except ValueError:
        await _refuse(send, 404, "sale_not_found", "No flash sale with this id.")
        return
    client = scope.get("client")
    address = client[0] if client else "unknown"
    wait = state.allow(f"a:{address}", state.address_rate, 1.0)
    if wait:
        state.count(sale_id, "rate_limited")
        await _refuse(send, 429, "rate_limited", "Too many requests from this network address.", wait)
        return
    authorization = _header(scope, b"authorization") or b""
    token = authorization[7:].decode("latin-1").strip() if authorization[:7].lower() == b"bearer " else ""
    holder = rules.read_pass(state.pass_key, token, now_epoch=time.time()) if token else None
    if holder is None or holder[0] != sale_id.bytes:
        state.count(sale_id, "pass_invalid")
        await _refuse(
            send, 401, "pass_invalid", "The sale pass is missing, expired or not for this sale; get a new one."
        )
        return
    consumer = holder[1].hex()
    wait = state.allow(f"m:{consumer}", state.member_rate, 60.0)
    if wait:
        state.count(sale_id, "rate_limited")
        await _refuse(send, 429, "rate_limited", "Too many buy requests; wait a moment.", wait)
        return
    sale = await state.sale(sale_id)
    if sale is None:
        await _refuse(send, 404, "sale_not_found", "No flash sale with this id.")
        return
    now = clock.utcnow().timestamp()
    if not sale.is_scheduled or now < sale.starts_epoch or now >= sale.ends_epoch:
        state.count(sale_id, "sale_not_open")
        when = "has not started" if sale.is_scheduled and now < sale.starts_epoch else "is over"
        await _refuse(
            send,
            409,
            "sale_not_open",
            f"The sale {when}.",
            starts_at=_iso(sale.starts_epoch),
            ends_at=_iso(sale.ends_epoch),
        )
        return
    body = await _read_body(receive)
    quantity = _quantity(body, sale.per_member_limit)
    if quantity is None:
        state.count(sale_id, "bad_request")
        await _refuse(
            send,
            422,
            "validation_error",
            f'Send no body or {{"quantity": n}} with n from 1 to {sale.per_member_limit}.',
            field="quantity",
        )
        return
    raw_key = _header(scope, b"idempotency-key")
    key = rules.check_idempotency_key(raw_key.decode("latin-1")) if raw_key is not None else None
    if raw_key is not None and key is None:
        state.count(sale_id, "bad_request")
        await _refuse(
            send,
            422,
            "validation_error",
            "Idempotency-Key: 1 to 64 printable ASCII characters, no spaces.",
            field="Idempotency-Key",
        )
        return
    if key is None and state.sold_out_until.get(sale_id, 0.0) > now:
        state.count(sale_id, "sold_out")
        await _refuse(send, 409, "sold_out", "Sold out.", stock_left=0)
        return
    accepted_ms = int(now * 1000)
    try:
        answer = await state.gate.buy(sale, consumer, quantity, new_reference(), key, accepted_ms)
    except GateUnavailable:
        log.exception("flash-sale gate unavailable")
        state.count(sale_id, "gate_unavailable")
        await _refuse(
            send,
            503,
            "gate_unavailable",
            "The sale cannot answer right now. Retry with the same Idempotency-Key: a retry never buys twice.",
            retry_after=1.0,
        )
        return
    await _after_gate(state, sale, answer, quantity, accepted_ms, send)


async def _after_gate(
    state: SaleState, sale: SaleConfig, answer: GateAnswer, quantity: int, accepted_ms: int, send: Send
) -> None:
    outcome = answer.outcome
    if answer.stock_left <= 0 and outcome in (Outcome.ACCEPTED, Outcome.SOLD_OUT):
        state.sold_out_until[sale.id] = accepted_ms / 1000 + SOLD_OUT_FLAG_SECONDS
    if outcome in (Outcome.ACCEPTED, Outcome.REPLAYED):
        if outcome is Outcome.ACCEPTED:
            state.count(sale.id, ACCEPTED, quantity)
        # A replay answers the original order's deadline, not one counted from the retry.
        origin = answer.accepted_ms if outcome is Outcome.REPLAYED else accepted_ms
        pay_by = (
            datetime.fromtimestamp(origin / 1000, UTC) + timedelta(minutes=sale.payment_minutes)
            if origin is not None
            else None
        )
        await _answer(
            send,
            202,
            {
                "reference": answer.reference,
                "status": "accepted",
                "replayed": outcome is Outcome.REPLAYED,
                "quantity": quantity,
                "unit_price_fen": sale.price_fen,
                "pay_by": pay_by.isoformat(timespec="seconds") if pay_by is not None else None,
            },
        )
        return
    if outcome is Outcome.SOLD_OUT:
        state.count(sale.id, "sold_out")
        detail = "Sold out." if answer.stock_left <= 0 else f"Only {answer.stock_left} left."
        await _refuse(send, 409, "sold_out", detail, stock_left=answer.stock_left)
    elif outcome is Outcome.LIMIT_REACHED:
        state.count(sale.id, "limit_reached")
        await _refuse(
            send,
            409,
            "limit_reached",
            f"One member may buy at most {sale.per_member_limit} in this sale.",
            per_member_limit=sale.per_member_limit,
        )
    else:  # closed by an operator, or not armed yet
        state.count(sale.id, "sale_not_open")
        state.forget(sale.id)
        await _refuse(send, 409, "sale_not_open", "The sale is over.")


def _quantity(body: bytes | None, limit: int) -> int | None:
    if body is None:
        return None
    if not body.strip():
        return 1
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or set(parsed) - {"quantity"}:
        return None
    quantity = parsed.get("quantity", 1)
    if type(quantity) is not int or not 1 <= quantity <= limit:
        return None
    return quantity


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
