"""The clock. Everything asks here for the time so that tests can move it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_offset_seconds = 0.0


def utcnow() -> datetime:
    now = datetime.now(UTC)
    if _offset_seconds:
        now += timedelta(seconds=_offset_seconds)
    return now


def advance(seconds: float) -> None:
    """Move the clock forward (tests only)."""
    global _offset_seconds  # noqa: PLW0603
    _offset_seconds += seconds


def reset() -> None:
    global _offset_seconds  # noqa: PLW0603
    _offset_seconds = 0.0


@contextmanager
def travel(to: datetime) -> Iterator[None]:
    """Within the block `utcnow()` starts at `to` (an aware datetime) and runs on from there; the
    previous offset comes back after. For generated history (the demo) and tests."""
    global _offset_seconds  # noqa: PLW0603
    previous = _offset_seconds
    _offset_seconds = (to - datetime.now(UTC)).total_seconds()
    try:
        yield
    finally:
        _offset_seconds = previous
