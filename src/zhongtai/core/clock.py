"""The clock. Everything asks here for the time so that tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime

_offset_seconds = 0.0


def utcnow() -> datetime:
    now = datetime.now(UTC)
    if _offset_seconds:
        from datetime import timedelta

        now += timedelta(seconds=_offset_seconds)
    return now


def advance(seconds: float) -> None:
    """Move the clock forward (tests only)."""
    global _offset_seconds  # noqa: PLW0603
    _offset_seconds += seconds


def reset() -> None:
    global _offset_seconds  # noqa: PLW0603
    _offset_seconds = 0.0
