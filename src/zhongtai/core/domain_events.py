"""In-transaction domain events: how one module tells others that something happened.

A producer (channel scans, the consumer's PIN verification, sales) calls `publish(session, event)`
inside its own unit of work; every subscriber runs in the same transaction, so its writes commit or
roll back with the producer's. Subscribers return a value (e.g. the rewards a scan earned) that the
producer may show to the person who scanned. Subscribers must be idempotent on the event's
`source_ref` because producers may publish again on a retry.

The events themselves are plain frozen dataclasses that each domain defines next to its own code
(`codes.events.ItemEvent`, `channel.events.DiversionPenalized`, `sales.events.OrderPaid`, …); this
module knows none of them. Subscribers are registered in one place, `zhongtai.domains.wire()`, which
the web app, the worker and the CLI call at start — never as a side effect of importing a module. An
event class marked with `@requires_subscriber` cannot be published while nobody listens: a scan that
should pay rewards must not silently pay nothing because the rewards module was not wired.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

E = TypeVar("E")
T = TypeVar("T", bound=type)
REQUIRED_ATTRIBUTE = "__requires_subscriber__"


class NoSubscriber(RuntimeError):
    """An event that must be handled was published with no subscriber registered: the application was
    started without `zhongtai.domains.wire()`. A wiring mistake, never a client's."""


def requires_subscriber(event_type: T) -> T:
    """Class decorator: publishing this event with no subscriber raises `NoSubscriber`."""
    setattr(event_type, REQUIRED_ATTRIBUTE, True)
    return event_type


Handler = Callable[[AsyncSession, Any], Awaitable[Any]]
_SUBSCRIBERS: dict[type, list[tuple[str, Handler]]] = {}


def subscribe(event_type: type[E], name: str, handler: Callable[[AsyncSession, E], Awaitable[Any]]) -> None:
    """Register `handler` for `event_type` under `name` (registering a name again replaces it)."""
    handlers = _SUBSCRIBERS.setdefault(event_type, [])
    handlers[:] = [(n, h) for n, h in handlers if n != name]
    handlers.append((name, handler))


def unsubscribe(event_type: type, name: str) -> None:
    handlers = _SUBSCRIBERS.get(event_type, [])
    handlers[:] = [(n, h) for n, h in handlers if n != name]


def has_subscribers(event_type: type) -> bool:
    return bool(_SUBSCRIBERS.get(event_type))


def subscriber_names(event_type: type) -> list[str]:
    return [name for name, _ in _SUBSCRIBERS.get(event_type, ())]


async def publish(session: AsyncSession, event: object) -> dict[str, Any]:
    """Run every subscriber of the event's type in the caller's transaction; results by name."""
    handlers = list(_SUBSCRIBERS.get(type(event), ()))
    if not handlers and getattr(type(event), REQUIRED_ATTRIBUTE, False):
        raise NoSubscriber(
            f"No subscriber for {type(event).__name__}: call zhongtai.domains.wire() when the process starts."
        )
    results: dict[str, Any] = {}
    for name, handler in handlers:
        results[name] = await handler(session, event)
    return results
