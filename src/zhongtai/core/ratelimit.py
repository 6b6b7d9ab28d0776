"""Rate limiting with GCRA (generic cell rate algorithm): `limit` requests per `period`, smooth.

`InProcessRateLimiter` serves the embedded tier (one process); `RedisRateLimiter` runs the same
algorithm atomically in a Lua script, shared by every server process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: float
    remaining: int


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, period: float, cost: int = 1) -> RateDecision:
        """Spend `cost` of the allowance of `key`; `cost=0` only asks whether one more would pass."""
        ...

    async def reset(self, key: str) -> None: ...


# Sums of `period / limit` drift by a few ulps (60 / 7 * 7 != 60); without a tolerance the last request
# of a full window — or the only one when `limit=1` — could be refused.
TOLERANCE_SECONDS = 1e-6


def gcra(tat: float, now: float, *, limit: int, period: float, cost: int) -> tuple[RateDecision, float]:
    """One GCRA step: the decision for `cost` units at `now` and the theoretical arrival time to keep."""
    interval = period / limit
    tat = max(tat, now)
    new_tat = tat + interval * max(cost, 1)
    allow_at = new_tat - period
    if allow_at - now > TOLERANCE_SECONDS:
        return RateDecision(False, allow_at - now, 0), tat
    kept = new_tat if cost > 0 else tat
    remaining = int((period - (kept - now) + TOLERANCE_SECONDS) / interval)
    return RateDecision(True, 0.0, max(0, remaining)), kept


class InProcessRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tats: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._clock = clock

    async def hit(self, key: str, *, limit: int, period: float, cost: int = 1) -> RateDecision:
        async with self._lock:
            now = self._clock()
            decision, tat = gcra(self._tats.get(key, now), now, limit=limit, period=period, cost=cost)
            self._tats[key] = tat
            if len(self._tats) > 100_000:
                self._tats = {k: v for k, v in self._tats.items() if v > now}
            return decision

    async def reset(self, key: str) -> None:
        async with self._lock:
            self._tats.pop(key, None)


_GCRA_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tolerance = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = period / limit
local tat = tonumber(redis.call('GET', key)) or now
if tat < now then tat = now end
local new_tat = tat + interval * math.max(cost, 1)
local allow_at = new_tat - period
if allow_at - now > tolerance then
  return {0, string.format('%.17g', allow_at - now), 0}
end
local kept = tat
if cost > 0 then
  kept = new_tat
  -- %.17g: tostring() keeps 14 digits, a tenth of a millisecond at today's epoch
  redis.call('SET', key, string.format('%.17g', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
end
return {1, '0', math.floor((period - (kept - now) + tolerance) / interval)}
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix + "rl:"
        self._script = redis.register_script(_GCRA_LUA)

    async def hit(self, key: str, *, limit: int, period: float, cost: int = 1) -> RateDecision:
        allowed, retry_after, remaining = await self._script(
            keys=[self._prefix + key], args=[limit, period, cost, TOLERANCE_SECONDS]
        )
        return RateDecision(bool(allowed), float(retry_after), max(0, int(remaining)))

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
