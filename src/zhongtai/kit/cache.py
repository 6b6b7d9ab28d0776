"""One small per-process cache with a time to live, a size bound and explicit invalidation.

For what changes rarely and is read on every request (a brand's code batches and products, lot
numbers, PIN keys): a value is served for at most `ttl` seconds after it was stored, so a change made
by another process shows within that time; the process that makes a change calls `pop` or `clear`
and sees it at once. At `maxsize` entries, expired entries are dropped first, then the oldest.

Every cache is named and registered, so `clear_all()` (tests, `zhongtai` admin commands) and
`stats()` reach all of them. Not shared between processes, not for anything that must be exact.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")
MISSING: object = object()  # a default for caches whose values may be None

FOREVER = float("inf")
_REGISTRY: dict[str, TTLCache[object, object]] = {}


class TTLCache(Generic[K, V]):
    __slots__ = ("_clock", "_entries", "hits", "maxsize", "misses", "name", "ttl")

    def __init__(
        self, name: str, *, ttl: float, maxsize: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0 or maxsize <= 0:
            raise ValueError("A cache needs a positive time to live and size.")
        self.name = name
        self.ttl = ttl
        self.maxsize = maxsize
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        _REGISTRY[name] = self  # type: ignore[assignment]

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The value stored under `key` if it has not expired, else `default`."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            self.misses += 1
            return default
        self.hits += 1
        return entry[1]

    def __contains__(self, key: object) -> bool:
        entry = self._entries.get(key)  # type: ignore[arg-type]
        return entry is not None and entry[0] > self._clock()

    def set(self, key: K, value: V, *, ttl: float | None = None) -> V:
        """Store `value` for `ttl` seconds (the cache's own by default; `FOREVER` for immutable values)."""
        entries = self._entries
        if key in entries:
            del entries[key]
        elif len(entries) >= self.maxsize:
            self._make_room()
        entries[key] = (self._clock() + (self.ttl if ttl is None else ttl), value)
        return value

    def pop(self, key: K) -> None:
        """Forget `key` (after the process changed what it caches)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _make_room(self) -> None:
        now = self._clock()
        for key in [key for key, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        while len(self._entries) >= self.maxsize:
            self._entries.popitem(last=False)


def clear_all() -> None:
    """Empty every registered cache of this process."""
    for cache in _REGISTRY.values():
        cache.clear()


def stats() -> dict[str, dict[str, int]]:
    return {name: {"size": len(cache), "hits": cache.hits, "misses": cache.misses} for name, cache in _REGISTRY.items()}
