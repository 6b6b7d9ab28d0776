import uuid
from datetime import UTC, datetime

import pytest

from zhongtai.core import domain_events as de


@pytest.fixture(autouse=True)
def _only_this_tests_subscribers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Modules imported by other tests (rewards) subscribe for real; these tests see only their own."""
    monkeypatch.setattr(de, "_SUBSCRIBERS", {})


def _event() -> de.ItemEvent:
    return de.ItemEvent(
        tenant_id=uuid.uuid4(),
        kind="sale",
        code_id=7,
        product_id=None,
        lot_id=None,
        occurred_at=datetime(2026, 11, 22, tzinfo=UTC),
        source_ref="test:1",
    )


async def test_publish_runs_subscribers_in_order_and_returns_results_by_name() -> None:
    seen: list[str] = []

    async def first(session, event):
        seen.append("first")
        return event.code_id

    async def second(session, event):
        seen.append("second")
        return event.kind

    de.subscribe(de.ItemEvent, "t-first", first)
    de.subscribe(de.ItemEvent, "t-second", second)
    de.subscribe(de.ItemEvent, "t-first", first)  # registering again replaces, no double call
    try:
        results = await de.publish(None, _event())  # type: ignore[arg-type]
    finally:
        de.unsubscribe(de.ItemEvent, "t-first")
        de.unsubscribe(de.ItemEvent, "t-second")
    assert results["t-first"] == 7
    assert results["t-second"] == "sale"
    assert seen == ["second", "first"]
    assert "t-first" not in await de.publish(None, _event())  # type: ignore[arg-type]


async def test_a_failing_subscriber_propagates_so_the_producer_rolls_back() -> None:
    async def boom(session, event):
        raise RuntimeError("no")

    de.subscribe(de.ItemEvent, "t-boom", boom)
    try:
        with pytest.raises(RuntimeError):
            await de.publish(None, _event())  # type: ignore[arg-type]
    finally:
        de.unsubscribe(de.ItemEvent, "t-boom")
