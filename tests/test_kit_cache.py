"""`kit.cache.TTLCache`: time to live, size bound, explicit invalidation, values that may be None."""

from __future__ import annotations

import pytest

from zhongtai.kit import cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_value_lives_for_its_ttl_then_is_gone() -> None:
    clock = Clock()
    c: cache.TTLCache[str, int] = cache.TTLCache("test.ttl", ttl=30, clock=clock)
    assert c.set("a", 1) == 1
    clock.now += 29.9
    assert (c.get("a"), "a" in c) == (1, True)
    clock.now += 0.1
    assert (c.get("a"), "a" in c, c.get("a", -1)) == (None, False, -1)
    c.set("b", 2, ttl=cache.FOREVER)
    clock.now += 10**9
    assert c.get("b") == 2
    assert (c.hits, c.misses) == (2, 2)


def test_none_is_a_value_told_apart_from_missing() -> None:
    c: cache.TTLCache[str, str | None] = cache.TTLCache("test.none", ttl=30, clock=Clock())
    assert c.get("lot", cache.MISSING) is cache.MISSING
    c.set("lot", None)
    assert c.get("lot", cache.MISSING) is None


def test_at_its_size_expired_entries_go_first_then_the_oldest() -> None:
    clock = Clock()
    c: cache.TTLCache[str, int] = cache.TTLCache("test.size", ttl=10, maxsize=3, clock=clock)
    c.set("short", 0, ttl=1)
    c.set("old", 1)
    c.set("new", 2)
    clock.now += 2  # "short" expired
    c.set("x", 3)
    assert sorted(k for k in ("short", "old", "new", "x") if k in c) == ["new", "old", "x"]
    c.set("old", 11)  # storing again makes it the newest
    c.set("y", 4)
    assert sorted(k for k in ("old", "new", "x", "y") if k in c) == ["old", "x", "y"]
    assert len(c) == 3


def test_pop_clear_and_clear_all() -> None:
    a: cache.TTLCache[str, int] = cache.TTLCache("test.a", ttl=10)
    b: cache.TTLCache[str, int] = cache.TTLCache("test.b", ttl=10)
    a.set("k", 1)
    a.set("j", 2)
    b.set("k", 1)
    a.pop("k")
    a.pop("never")
    assert (a.get("k"), a.get("j")) == (None, 2)
    assert cache.stats()["test.a"]["size"] == 1
    cache.clear_all()
    assert (len(a), len(b)) == (0, 0)


def test_a_cache_needs_a_positive_ttl_and_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        cache.TTLCache("test.bad", ttl=0)
    with pytest.raises(ValueError, match="positive"):
        cache.TTLCache("test.bad", ttl=1, maxsize=0)
