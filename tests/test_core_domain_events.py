import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from zhongtai import domains
from zhongtai.channel.events import DiversionPenalized, DiversionResolved
from zhongtai.codes.events import ItemEvent
from zhongtai.core import domain_events as de
from zhongtai.kit import panels
from zhongtai.sales.events import OrderExpired, OrderPaid


@dataclass(frozen=True)
class Noticed:
    """An event of these tests only: nobody has to listen."""

    code_id: int
    kind: str


@de.requires_subscriber
@dataclass(frozen=True)
class MustBeHandled:
    code_id: int


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform's subscribers are wired for the whole run; these tests see only their own."""
    monkeypatch.setattr(de, "_SUBSCRIBERS", {})


@pytest.mark.usefixtures("isolated")
async def test_publish_runs_subscribers_in_order_and_returns_results_by_name() -> None:
    seen: list[str] = []

    async def first(session, event):
        seen.append("first")
        return event.code_id

    async def second(session, event):
        seen.append("second")
        return event.kind

    de.subscribe(Noticed, "t-first", first)
    de.subscribe(Noticed, "t-second", second)
    de.subscribe(Noticed, "t-first", first)  # registering again replaces, no double call
    results = await de.publish(None, Noticed(7, "sale"))  # type: ignore[arg-type]
    assert results == {"t-second": "sale", "t-first": 7}
    assert seen == ["second", "first"]
    de.unsubscribe(Noticed, "t-first")
    assert await de.publish(None, Noticed(7, "sale")) == {"t-second": "sale"}  # type: ignore[arg-type]
    de.unsubscribe(Noticed, "t-second")
    assert await de.publish(None, Noticed(7, "sale")) == {}  # type: ignore[arg-type]


@pytest.mark.usefixtures("isolated")
async def test_a_failing_subscriber_propagates_so_the_producer_rolls_back() -> None:
    async def boom(session, event):
        raise RuntimeError("no")

    de.subscribe(Noticed, "t-boom", boom)
    with pytest.raises(RuntimeError, match="no"):
        await de.publish(None, Noticed(1, "sale"))  # type: ignore[arg-type]


@pytest.mark.usefixtures("isolated")
async def test_an_event_that_must_be_handled_is_refused_while_nobody_listens() -> None:
    with pytest.raises(de.NoSubscriber, match="MustBeHandled"):
        await de.publish(None, MustBeHandled(1))  # type: ignore[arg-type]

    async def handled(session, event):
        return event.code_id

    de.subscribe(MustBeHandled, "t-handled", handled)
    assert await de.publish(None, MustBeHandled(3)) == {"t-handled": 3}  # type: ignore[arg-type]


@pytest.mark.usefixtures("isolated")
async def test_the_platforms_events_need_a_subscriber() -> None:
    item = ItemEvent(
        tenant_id=uuid.uuid4(),
        kind="sale",
        code_id=7,
        product_id=None,
        lot_id=None,
        occurred_at=datetime(2026, 11, 22, tzinfo=UTC),
        source_ref="test:1",
    )
    with pytest.raises(de.NoSubscriber):
        await de.publish(None, item)  # type: ignore[arg-type]
    for event_type in (ItemEvent, DiversionPenalized, DiversionResolved, OrderExpired, OrderPaid):
        assert getattr(event_type, de.REQUIRED_ATTRIBUTE) is True


def test_wire_registers_every_subscriber_and_panel_once() -> None:
    domains.wire()
    domains.wire()  # again: replaces, never doubles
    assert de.subscriber_names(ItemEvent) == ["rewards", "members.points", "members.touch"]
    assert de.subscriber_names(DiversionPenalized) == ["rewards"]
    assert de.subscriber_names(DiversionResolved) == ["rewards"]
    assert sorted(de.subscriber_names(OrderExpired)) == ["flashsale.return_stock", "lottery.win_forfeited"]
    assert de.subscriber_names(OrderPaid) == ["lottery.win_paid", "members.points", "members.touch"]
    assert panels.panel_names("authenticity.scan_page") == ["rewards"]


def test_importing_a_module_subscribes_nothing() -> None:
    """Whether a reward is paid must not depend on an import having happened somewhere."""
    probe = (
        "import zhongtai.rewards.grants, zhongtai.lottery.jobs, zhongtai.flashsale.jobs, zhongtai.rewards.h5_pages;"
        "from zhongtai.core import domain_events as de; from zhongtai.kit import panels;"
        "from zhongtai.codes.events import ItemEvent; from zhongtai.channel.events import DiversionPenalized;"
        "from zhongtai.sales.events import OrderExpired, OrderPaid;"
        "print([de.has_subscribers(t) for t in (ItemEvent, DiversionPenalized, OrderExpired, OrderPaid)],"
        " panels.panel_names('authenticity.scan_page'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[False, False, False, False] []"
