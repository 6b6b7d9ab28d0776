"""GCRA rate limiting (core/ratelimit.py): in process with a fake clock, and on both tiers for real."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from zhongtai.core.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from zhongtai.core.runtime import Runtime


class FakeClock:
    def __init__(self, start: float = 1_000.123) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7, 10, 30])
@pytest.mark.parametrize("period", [0.3, 1.0, 60.0, 900.0, 86_400.0])
async def test_gcra_allows_exactly_limit_per_period(limit: int, period: float) -> None:
    clock = FakeClock()
    limiter = InProcessRateLimiter(clock=clock)
    decisions = [await limiter.hit("k", limit=limit, period=period) for _ in range(limit + 1)]
    assert [d.allowed for d in decisions] == [True] * limit + [False]
    assert [d.remaining for d in decisions] == [*range(limit - 1, -1, -1), 0]
    assert decisions[-1].retry_after == pytest.approx(period / limit, rel=1e-6)
    # Refusals spend nothing: asking again is refused with the same wait.
    again = await limiter.hit("k", limit=limit, period=period)
    assert (again.allowed, again.retry_after) == (False, pytest.approx(period / limit, rel=1e-6))
    # Smooth recovery: one emission interval frees exactly one request.
    clock.now += period / limit * 0.99
    assert not (await limiter.hit("k", limit=limit, period=period)).allowed
    clock.now += period / limit * 0.01
    assert (await limiter.hit("k", limit=limit, period=period)).allowed
    assert not (await limiter.hit("k", limit=limit, period=period)).allowed
    # A whole idle period restores the whole allowance, and no more.
    clock.now += period
    after_idle = [(await limiter.hit("k", limit=limit, period=period)).allowed for _ in range(limit + 1)]
    assert after_idle == [True] * limit + [False]


async def test_gcra_spreads_a_steady_stream() -> None:
    clock = FakeClock()
    limiter = InProcessRateLimiter(clock=clock)
    admitted = 0
    for _ in range(600):  # one request every 0.5 s for 5 minutes at 10 per minute
        admitted += (await limiter.hit("k", limit=10, period=60.0)).allowed
        clock.now += 0.5
    # The k-th admission (from 0) needs 6·k ≤ t + 54 (a burst of 10 on top of one per 6 s), so the last
    # request, at t = 299.5, is admission number 58.
    assert admitted == 59


async def test_cost_zero_asks_without_spending_and_keys_are_independent() -> None:
    clock = FakeClock()
    limiter = InProcessRateLimiter(clock=clock)
    for _ in range(3):
        peek = await limiter.hit("a", limit=3, period=30.0, cost=0)
        assert (peek.allowed, peek.remaining) == (True, 3)
    assert [(await limiter.hit("a", limit=3, period=30.0)).allowed for _ in range(3)] == [True] * 3
    locked = await limiter.hit("a", limit=3, period=30.0, cost=0)
    assert (locked.allowed, locked.retry_after) == (False, pytest.approx(10.0))
    assert (await limiter.hit("b", limit=3, period=30.0)).allowed
    costly = await limiter.hit("c", limit=3, period=30.0, cost=3)
    assert (costly.allowed, costly.remaining) == (True, 0)
    assert not (await limiter.hit("c", limit=3, period=30.0, cost=1)).allowed
    await limiter.reset("a")
    assert (await limiter.hit("a", limit=3, period=30.0)).remaining == 2


async def _exercise_real_clock(limiter: RateLimiter, key: str) -> None:
    limit, period = 5, 2.0
    started = time.monotonic()
    decisions = [await limiter.hit(key, limit=limit, period=period) for _ in range(limit + 1)]
    elapsed = time.monotonic() - started
    assert [d.allowed for d in decisions] == [True] * limit + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    interval = period / limit
    assert interval - elapsed - 0.01 <= decisions[-1].retry_after <= interval + 0.01
    await asyncio.sleep(decisions[-1].retry_after + 0.05)
    assert (await limiter.hit(key, limit=limit, period=period)).allowed
    refused = await limiter.hit(key, limit=limit, period=period)
    assert not refused.allowed
    assert 0 < refused.retry_after <= interval + 0.01


async def test_runtime_limiter_semantics_on_each_tier(runtime: Runtime) -> None:
    expected = RedisRateLimiter if runtime.redis is not None else InProcessRateLimiter
    assert isinstance(runtime.limiter, expected)
    await _exercise_real_clock(runtime.limiter, "semantics")
    # `limit=1` admits the first request whatever the clock reads (float drift once refused it).
    started = time.monotonic()
    firsts = [await runtime.limiter.hit(f"single:{i}", limit=1, period=60.0) for i in range(300)]
    assert all(d.allowed for d in firsts)
    seconds = [await runtime.limiter.hit(f"single:{i}", limit=1, period=60.0) for i in range(300)]
    elapsed = time.monotonic() - started
    assert not any(d.allowed for d in seconds)
    assert all(60.0 - elapsed - 0.01 <= d.retry_after <= 60.0 for d in seconds)


async def test_concurrent_hits_never_exceed_the_limit(runtime: Runtime) -> None:
    limiters: list[RateLimiter] = [runtime.limiter]
    clients: list[Redis] = []
    if runtime.redis is not None:
        # Separate connections, as separate server processes would have.
        for _ in range(3):
            extra = Redis.from_url(str(runtime.settings.redis_url))
            clients.append(extra)
            limiters.append(RedisRateLimiter(extra, runtime.settings.redis_prefix))
    try:
        decisions = await asyncio.gather(
            *(limiters[i % len(limiters)].hit("crowd", limit=25, period=60.0) for i in range(400))
        )
    finally:
        for extra in clients:
            await extra.aclose()
    assert sum(d.allowed for d in decisions) == 25
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(25))
