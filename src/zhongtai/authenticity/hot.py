"""The PIN check on the production tier (PostgreSQL + Redis, `scan_write_behind` on): decided in Redis in
one round trip, persisted to PostgreSQL afterwards by the scan stream worker (persist.py).

One Lua script (`CHECK_LUA`) does atomically what the embedded tier does in one database transaction:

- the per-address request limit and the three PIN attempt limits (per code, client and address; the
  same GCRA as `core.ratelimit`, same keys);
- for a matching PIN, the code's verification summary — the hot state: count, first verification
  (time, place), latest located one, the clone mark — and the verdict (`rules.verdict_of`, including
  the clone check with the same haversine as `zhongtai.geo.distance_km`);
- the scan record, appended to the stream `authenticity:scans` (with its preallocated scan id).

Because the script runs atomically, two simultaneous first verifications of one code get numbers 1 and 2:
exactly one is "genuine". The database stays the source of truth for history: the stream worker
writes the scan rows, the summary, clone alerts and the `consumer_open` event, then acknowledges.

What the script needs of the code (brand, state, lot, level) is cached per process (`_facts`) together
with the *codes epoch*, a Redis counter that every commit changing a code's state increments (the
session listeners below); the script refuses to decide on facts of an older epoch (`stale`), so a
voided code is judged voided from the next check on, in every process. The summary of a code absent
from Redis (first check ever, or expired after `SUMMARY_TTL_SECONDS` without checks) is seeded from
the database row (`cold`).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
import weakref
from collections import deque
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from redis import Redis as SyncRedis
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from zhongtai.authenticity import models as m
from zhongtai.authenticity import resolver, rules, service, verification
from zhongtai.authenticity.resolver import CodeFacts, Resolved
from zhongtai.codes import queries as codes_queries
from zhongtai.codes import rules as code_rules
from zhongtai.codes import serials
from zhongtai.core.errors import RateLimited
from zhongtai.core.ratelimit import TOLERANCE_SECONDS
from zhongtai.core.runtime import Runtime
from zhongtai.core.web import client_ip
from zhongtai.geo.coords import EARTH_RADIUS_KM

EPOCH_KEY = "authenticity:codes-epoch"
STREAM_KEY = "authenticity:scans"
SUMMARY_PREFIX = "authenticity:sum:"
SUMMARY_TTL_SECONDS = 30 * 24 * 3600
FACTS_SECONDS = 60.0  # a code's facts are re-read at least this often, epoch or not
FACTS_CACHE_SIZE = 200_000
SCAN_ID_BLOCK = 100


def enabled(runtime: Runtime) -> bool:
    """Whether PIN checks take this path: Redis, PostgreSQL and the setting."""
    return runtime.redis is not None and runtime.db.dialect == "postgresql" and runtime.settings.scan_write_behind


def key(runtime: Runtime, name: str) -> str:
    return runtime.settings.redis_prefix + name


CHECK_LUA = """
local function gcra(k, limit, period, cost, tol, now)
  local interval = period / limit
  local tat = tonumber(redis.call('GET', k)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval * math.max(cost, 1)
  local allow_at = new_tat - period
  if allow_at - now > tol then return 0, allow_at - now, 0 end
  local kept = tat
  if cost > 0 then
    kept = new_tat
    redis.call('SET', k, string.format('%.17g', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
  end
  return 1, 0, math.floor((period - (kept - now) + tol) / interval)
end
local function f(x) return string.format('%.17g', x) end

local epoch = redis.call('GET', KEYS[7]) or '0'
if epoch ~= ARGV[1] then return {'stale', epoch} end
local pin_ok = ARGV[10] == '1'
if pin_ok and ARGV[23] == '' and redis.call('EXISTS', KEYS[5]) == 0 then return {'cold', epoch} end
local t = redis.call('TIME')
local clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tol = tonumber(ARGV[9])
local ok, retry = gcra(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), 1, tol, clock)
if ok == 0 then return {'rate', f(retry)} end
local code_limit, code_period = tonumber(ARGV[4]), tonumber(ARGV[5])
local hour = tonumber(ARGV[8])
local c_ok, c_retry, c_left = gcra(KEYS[2], code_limit, code_period, 1, tol, clock)
local l_ok, l_retry = gcra(KEYS[3], tonumber(ARGV[6]), hour, 0, tol, clock)
local n_ok, n_retry = gcra(KEYS[4], tonumber(ARGV[7]), hour, 0, tol, clock)
if c_ok == 0 then return {'locked', 'code', f(c_retry)} end
if l_ok == 0 then return {'locked', 'client', f(l_retry)} end
if n_ok == 0 then return {'locked', 'network', f(n_retry)} end
local scan_id = ARGV[21]
if not pin_ok then
  gcra(KEYS[3], tonumber(ARGV[6]), hour, 1, tol, clock)
  gcra(KEYS[4], tonumber(ARGV[7]), hour, 1, tol, clock)
  redis.call('XADD', KEYS[6], '*', 'kind', 'pin_bad', 'id', scan_id, 'scan', ARGV[22])
  return {'wrong', c_left}
end
if c_left < code_limit - 1 then redis.call('DEL', KEYS[2]) end
local s = KEYS[5]
if redis.call('EXISTS', s) == 0 and ARGV[23] ~= '' then
  local seed = cjson.decode(ARGV[23])
  for name, value in pairs(seed) do redis.call('HSET', s, name, value) end
end
local n = redis.call('HINCRBY', s, 'n', 1)
local h = redis.call('HMGET', s, 'clone', 'll_at', 'll_lat', 'll_lon', 'll_id', 'll_iso', 'f_iso', 'f_city', 'f_prov')
local now = tonumber(ARGV[15])
local lat, lon = tonumber(ARGV[16]), tonumber(ARGV[17])
local clone = false
local dist, secs, speed = 0, 0, 0
if lat and h[2] then
  local r = math.pi / 180
  local phi1, phi2 = tonumber(h[3]) * r, lat * r
  local dlmb = (lon - tonumber(h[4])) * r
  local a = math.sin((phi2 - phi1) / 2) ^ 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ^ 2
  dist = 2 * tonumber(ARGV[25]) * math.asin(math.min(1.0, math.sqrt(a)))
  if dist > tonumber(ARGV[14]) then
    secs = math.abs(now - tonumber(h[2]))
    if secs < 1 then speed = math.huge else speed = dist / (secs / 3600) end
    clone = speed > tonumber(ARGV[13])
  end
end
local already = h[1] == '1'
local verdict, reason = '', ''
if ARGV[11] == 'not_commissioned' then verdict, reason = 'suspicious', 'not_commissioned'
elseif ARGV[11] == 'voided' then verdict, reason = 'suspicious', 'voided'
elseif already or clone then verdict, reason = 'suspicious', 'clone'
elseif n > tonumber(ARGV[12]) then verdict, reason = 'suspicious', 'too_many'
elseif n == 1 then verdict = 'genuine'
else verdict = 'verified_before' end
local iso = ARGV[24]
if n == 1 then
  redis.call('HSET', s, 'f_iso', iso, 'f_city', ARGV[20], 'f_prov', ARGV[18], 'f_id', scan_id)
  h[7], h[8], h[9] = iso, ARGV[20], ARGV[18]
end
local entry = {'kind', 'pin_ok', 'id', scan_id, 'scan', ARGV[22], 'verdict', verdict, 'reason', reason, 'n', n}
if clone then
  local sp = speed
  if sp == math.huge then sp = -1 end
  for _, v in ipairs({'prev_id', h[5], 'prev_iso', h[6], 'prev_lat', h[3], 'prev_lon', h[4],
                      'dist', f(dist), 'secs', f(secs), 'speed', f(sp)}) do table.insert(entry, v) end
  if not already then redis.call('HSET', s, 'clone', '1') end
end
if lat then
  redis.call('HSET', s, 'll_at', ARGV[15], 'll_lat', ARGV[16], 'll_lon', ARGV[17], 'll_id', scan_id, 'll_iso', iso)
end
redis.call('EXPIRE', s, tonumber(ARGV[26]))
redis.call('XADD', KEYS[6], '*', unpack(entry))
local sp = speed
if sp == math.huge then sp = -1 end
return {'ok', verdict, reason, n, h[7] or '', h[8] or '', h[9] or '', clone and '1' or '0', f(dist), f(secs), f(sp)}
"""


class _Hot:
    """Per-process state: facts of codes by serial, the last codes epoch seen, preallocated scan ids."""

    def __init__(self) -> None:
        self.facts: dict[str, tuple[float, int, CodeFacts]] = {}  # serial → (expires, epoch, facts)
        self.epoch: int = -1
        self.scan_ids: deque[int] = deque()
        self.id_lock = asyncio.Lock()
        self.sequence: str | None = None
        self.scripts: dict[int, Any] = {}

    def clear(self) -> None:
        self.facts.clear()
        self.epoch = -1
        self.scan_ids.clear()
        self.sequence = None
        self.scripts.clear()


_states: weakref.WeakKeyDictionary[Runtime, _Hot] = weakref.WeakKeyDictionary()


def state(runtime: Runtime) -> _Hot:
    """The per-process state of one runtime (one database: a process normally has one)."""
    found = _states.get(runtime)
    if found is None:
        found = _states[runtime] = _Hot()
    return found


def _script(runtime: Runtime) -> Any:
    assert runtime.redis is not None
    hot = state(runtime)
    found = hot.scripts.get(id(runtime.redis))
    if found is None:
        found = hot.scripts[id(runtime.redis)] = runtime.redis.register_script(CHECK_LUA)
    return found


def _remember(hot: _Hot, serial: str, epoch: int, facts: CodeFacts) -> None:
    if len(hot.facts) >= FACTS_CACHE_SIZE:
        hot.facts.clear()
    hot.facts[serial] = (time.monotonic() + FACTS_SECONDS, epoch, facts)


async def next_scan_id(runtime: Runtime) -> int:
    """A scan id from the table's own sequence, taken in blocks so that a check costs no database trip."""
    hot = state(runtime)
    if not hot.scan_ids:
        async with hot.id_lock:
            if not hot.scan_ids:
                async with runtime.db.engine.connect() as conn:
                    if hot.sequence is None:
                        hot.sequence = await conn.scalar(
                            text("SELECT pg_get_serial_sequence('authenticity_scans', 'id')")
                        )
                    rows = await conn.execute(
                        text("SELECT nextval(CAST(:seq AS regclass)) FROM generate_series(1, :n)"),
                        {"seq": hot.sequence, "n": SCAN_ID_BLOCK},
                    )
                    hot.scan_ids.extend(sorted(int(row[0]) for row in rows))
    return hot.scan_ids.popleft()


def _state_class(state: int) -> str:
    if state in rules.NOT_COMMISSIONED_STATES:
        return "not_commissioned"
    if state in rules.VOIDED_STATES:
        return "voided"
    return "ok"


def _jsonable(values: dict[str, Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    return json.dumps({name: plain(value) for name, value in values.items()}, separators=(",", ":"))


async def _seed(runtime: Runtime, code_id: int) -> str:
    """The database summary of a code, as the hash fields the script keeps."""
    async with runtime.db.read_only(all_tenants=True) as session:
        row = await service.summary_of(session, code_id)
    return _seed_of(row)


def _seed_of(row: Any) -> str:
    """Hash fields from a summary row (or anything with its attributes; None: no summary yet)."""
    seed: dict[str, Any] = {"n": 0}
    if row is not None and row.verify_count is not None:
        seed["n"] = row.verify_count
        if row.first_verified_at is not None:
            seed |= {
                "f_iso": row.first_verified_at.astimezone(UTC).isoformat(),
                "f_city": row.first_city_name or "",
                "f_prov": row.first_province_code or "",
                "f_id": row.first_scan_id or "",
            }
        if row.last_located_at is not None and row.last_latitude is not None and row.last_longitude is not None:
            seed |= {
                "ll_at": repr(row.last_located_at.timestamp()),
                "ll_iso": row.last_located_at.astimezone(UTC).isoformat(),
                "ll_lat": repr(row.last_latitude),
                "ll_lon": repr(row.last_longitude),
                "ll_id": row.last_located_scan_id or "",
            }
        if row.suspicious_reason == m.REASON_CLONE:
            seed["clone"] = "1"
    return json.dumps(seed)


# A code's own row and its summary in one primary-key read, on the driver connection (no ORM).
FACTS_SQL = """
SELECT c.id, c.tenant_id, c.serial, c.state, c.lot_id, c.level,
       s.verify_count, s.first_verified_at, s.first_city_name, s.first_province_code, s.first_scan_id,
       s.last_located_at, s.last_latitude, s.last_longitude, s.last_located_scan_id, s.suspicious_reason
FROM codes c LEFT JOIN authenticity_code_summaries s ON s.code_id = c.id
WHERE c.id = $1
"""


class _Row:
    def __init__(self, record: Any) -> None:
        self.__dict__.update(dict(record))


async def resolve(runtime: Runtime, parsed: code_rules.ParsedCode) -> tuple[Resolved, int, str]:
    """The scanned code, the codes epoch its facts belong to and, when they were just read, the code's
    summary as seed for the script ("" when not read): from the per-process caches when they are warm,
    else from the database (one read without a transaction)."""
    hot = state(runtime)
    found = hot.facts.get(parsed.key)
    if found is not None and found[0] > time.monotonic() and found[1] >= hot.epoch:
        resolved = resolver.resolve_cached(parsed, found[2])
        if resolved is not None:
            return resolved, found[1], ""
    return await _load(runtime, parsed)


async def _load(runtime: Runtime, parsed: code_rules.ParsedCode) -> tuple[Resolved, int, str]:
    # The epoch is taken before the row is read (see the module doc); the last one seen is never newer
    # than the truth, so it needs no round trip — the script answers `stale` if it moved on.
    hot = state(runtime)
    epoch = hot.epoch
    if epoch < 0:
        assert runtime.redis is not None
        epoch = hot.epoch = max(hot.epoch, int(await runtime.redis.get(key(runtime, EPOCH_KEY)) or 0))
    code_id = None
    if len(parsed.key) == serials.SERIAL_LENGTH:
        code_id = serials.keyring_for(runtime.settings.secrets.pii_keys).ids([parsed.key]).get(parsed.key)
    if code_id is not None:
        async with runtime.db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            record = await raw.driver_connection.fetchrow(FACTS_SQL, code_id)  # type: ignore[union-attr]
        if record is not None and record["serial"] == parsed.key:
            facts = CodeFacts(record["id"], record["tenant_id"], record["state"], record["lot_id"], record["level"])
            resolved = resolver.resolve_cached(parsed, facts)
            if resolved is not None:
                _remember(hot, parsed.key, epoch, facts)
                return resolved, epoch, _seed_of(_Row(record))
    # Containers, legacy serials, unknown codes, cold caches: the resolver with a session.
    async with runtime.db.read_only(all_tenants=True) as session:
        resolved = await resolver.resolve(session, parsed)
        await service.get_thresholds(session, resolved.ref.tenant_id)
        if resolved.batch.pin_key_version is not None:
            await resolver.pin_key(session, runtime.crypto, resolved.ref.tenant_id, resolved.batch.pin_key_version)
    _remember(hot, parsed.key, epoch, resolver.facts_of(resolved))
    return resolved, epoch, ""


async def check_pin(
    request: Request,
    runtime: Runtime,
    resolved: Resolved,
    pin: str,
    ctx: service.CheckContext,
    *,
    epoch: int = -1,
    seed: str = "",
    parsed: code_rules.ParsedCode | None = None,
) -> tuple[verification.Answer, Resolved]:
    """`verification.do_check_pin` on this tier: one script call (two or three when the code's facts
    or summary must first be read from the database). `epoch` is the codes epoch of `resolved`'s
    facts (-1: unknown, the facts are read again). Returns the answer and the code as judged (read
    again when it changed)."""
    if not resolved.has_pin:
        raise verification.NoPin()
    value = verification.check_pin_format(pin)
    assert runtime.redis is not None
    assert resolved.batch.pin_key_version is not None
    tenant_id = resolved.ref.tenant_id
    thresholds = service.cached_thresholds(tenant_id)
    pin_key = resolver.caches.pin_keys.get((tenant_id, resolved.batch.pin_key_version))
    if thresholds is None or pin_key is None:
        async with runtime.db.read_only(tenant_id=tenant_id) as session:
            thresholds = await service.get_thresholds(session, tenant_id)
            pin_key = await resolver.pin_key(session, runtime.crypto, tenant_id, resolved.batch.pin_key_version)
    pin_ok = code_rules.check_pin(pin_key, resolved.ref.serial, value)
    scan_id = await next_scan_id(runtime)
    code_period = thresholds.pin_lock_minutes * 60.0
    code_limit = thresholds.pin_attempts_per_code
    code_key, client_key, net_key = verification.limit_keys(resolved, ctx)
    rl = runtime.settings.redis_prefix + "rl:"
    keys = [
        f"{rl}rl:scan:{client_ip(request) or 'unknown'}",
        rl + code_key,
        rl + client_key,
        rl + net_key,
        key(runtime, f"{SUMMARY_PREFIX}{resolved.ref.code_id}"),
        key(runtime, STREAM_KEY),
        key(runtime, EPOCH_KEY),
    ]
    location = ctx.location
    kind = m.KIND_PIN_OK if pin_ok else m.KIND_PIN_BAD
    record = _jsonable(service.scan_values(resolved.ref, ctx, kind))
    for _ in range(4):
        args = [
            epoch,
            runtime.settings.scan_requests_per_minute,
            60.0,
            code_limit,
            code_period,
            thresholds.pin_attempts_per_client,
            thresholds.pin_attempts_per_network,
            verification.CLIENT_HOUR,
            TOLERANCE_SECONDS,
            "1" if pin_ok else "0",
            _state_class(resolved.ref.state),
            thresholds.max_verifications,
            thresholds.clone_speed_kmh,
            thresholds.clone_min_distance_km,
            repr(ctx.occurred_at.timestamp()),
            repr(location.latitude) if location else "",
            repr(location.longitude) if location else "",
            ctx.region.province_code or "",
            ctx.region.city_code or "",
            ctx.region.city_name or "",
            scan_id,
            record,
            seed,
            ctx.occurred_at.isoformat(),
            EARTH_RADIUS_KM,
            SUMMARY_TTL_SECONDS,
        ]
        reply = [part.decode() if isinstance(part, bytes) else part for part in await _script(runtime)(keys, args)]
        status = reply[0]
        if status == "stale":
            state(runtime).epoch = int(reply[1])  # not max(): a reset Redis starts again from 0
            # A code may have changed since these facts were read: judge it on its current row.
            resolved, epoch, seed = await _load(runtime, parsed or resolver.parse(resolved.ref.serial))
            if not resolved.has_pin:
                raise verification.NoPin()
            continue
        if status == "cold":
            seed = await _seed(runtime, resolved.ref.code_id)
            continue
        return _answer(reply, resolved, ctx, scan_id, code_period, code_limit, thresholds.contact), resolved
    raise RuntimeError("the codes epoch kept changing during one check")


def _answer(
    reply: list[Any],
    resolved: Resolved,
    ctx: service.CheckContext,
    scan_id: int,
    code_period: float,
    code_limit: int,
    contact: str,
) -> verification.Answer:
    status = reply[0]
    if status == "rate":
        raise RateLimited(retry_after=float(reply[1]))
    if status == "locked":
        retry = float(reply[2])
        verification.remember_lock(resolved.ref.serial, retry, reply[1], contact)
        return verification.Answer(m.LOCKED, retry_after_seconds=max(1, math.ceil(retry)), locked_by=reply[1])
    if status == "wrong":
        left = int(reply[1])
        retry_after = None if left > 0 else math.ceil(code_period / code_limit)
        return verification.Answer(m.WRONG_PIN, attempts_left=left, retry_after_seconds=retry_after)
    _, verdict, reason, number, first_iso, first_city, first_province, is_clone, dist, secs, speed = reply
    clone = None
    if is_clone == "1":
        speed_value = float(speed)
        clone = rules.CloneEvidence(
            round(float(dist), 3), float(secs), round(speed_value, 1) if speed_value >= 0 else 1e9
        )
    outcome = service.Outcome(
        verdict=verdict,
        reason=reason or None,
        scan_id=scan_id,
        verification_number=int(number),
        first_verified_at=datetime.fromisoformat(first_iso) if first_iso else None,
        first_city_name=first_city or None,
        first_province_code=first_province or None,
        clone=clone,
    )
    return verification.Answer(outcome.verdict, outcome.reason, outcome)


async def overlay(runtime: Runtime, code_id: int, counts: service.ViewCounts | None) -> service.ViewCounts | None:
    """A code's counts with the verification part from the hot state (the database row may lag)."""
    assert runtime.redis is not None
    values: list[Any] = await runtime.redis.hmget(
        key(runtime, f"{SUMMARY_PREFIX}{code_id}"), ["n", "f_iso", "f_city", "clone"]
    )
    n, first_iso, first_city, clone = values
    if n is None:
        return counts
    base = counts or service.ViewCounts(0, 0, 0, None, None, None)
    return service.ViewCounts(
        base.scan_id,
        base.view_count,
        max(base.verify_count, int(n)),
        datetime.fromisoformat(first_iso.decode()) if first_iso else base.first_verified_at,
        first_city.decode() or None if first_city else base.first_city_name,
        m.REASON_CLONE if clone == b"1" else base.suspicious_reason,
    )


# The codes epoch: every commit that changed a code (its state, its lot) moves it on, so that the
# facts cached above are re-read. Registered on every ORM session; a no-op without Redis.

_epoch_clients: dict[str, SyncRedis] = {}


def _changes_codes(session: Session) -> bool:
    return codes_queries.changes_codes(session)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: Any) -> None:
    if state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) == codes_queries.CODES_TABLE:
            state.session.info["zt_codes_changed"] = True


@event.listens_for(Session, "before_flush")
def _on_flush(session: Session, _context: Any, _instances: Any) -> None:
    if _changes_codes(session):
        session.info["zt_codes_changed"] = True


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    if not session.info.pop("zt_codes_changed", False):
        return
    settings = session.info.get("settings")
    if settings is None or not settings.redis_url:
        return
    client = _epoch_clients.get(settings.redis_url)
    if client is None:
        client = _epoch_clients[settings.redis_url] = SyncRedis.from_url(settings.redis_url)
    client.incr(settings.redis_prefix + EPOCH_KEY)


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    session.info.pop("zt_codes_changed", None)
