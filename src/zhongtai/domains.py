"""The application's wiring, in one place: every module that registers job handlers, permissions or
routes is imported, and every domain-event subscriber and page panel is registered here — not as a
side effect of importing a module.

The web app (`create_app`), `zhongtai worker`, the flash-sale persister and the CLI call `load_all()`
at start, so that all of them know every job topic and every subscriber.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from zhongtai.sales.events import OrderPaid

DOMAIN_MODULES: tuple[str, ...] = (
    "zhongtai.core.api",
    "zhongtai.authenticity.api",
    "zhongtai.authenticity.h5",
    "zhongtai.authenticity.service",
    "zhongtai.authenticity.reports_api",
    "zhongtai.catalog.api",
    "zhongtai.channel.api",
    "zhongtai.codes.api",
    "zhongtai.codes.generation",
    "zhongtai.trace.capture",
    "zhongtai.trace.epcis_api",
    "zhongtai.trace.log",
    "zhongtai.trace.checkpoint",  # the log's signing job
    "zhongtai.trace.log_api",
    "zhongtai.trace.producers",
    "zhongtai.trace.trace_api",
    "zhongtai.members.api",
    "zhongtai.members.duplicates_api",
    "zhongtai.members.me_api",
    "zhongtai.members.points_api",
    "zhongtai.members.earning",  # the points jobs
    "zhongtai.members.segments_api",
    "zhongtai.members.touches",  # the members.touch job
    "zhongtai.members.lifecycle",  # the daily lifecycle job
    "zhongtai.lottery.api",
    "zhongtai.flashsale.api",
    "zhongtai.ledger.api",
    "zhongtai.rewards.api",
    "zhongtai.rewards.h5_pages",
    "zhongtai.lottery.jobs",
    "zhongtai.flashsale.jobs",
    "zhongtai.sales.api",
)


def load_all() -> None:
    """Import every domain module and wire the subscribers and panels (idempotent)."""
    for name in DOMAIN_MODULES:
        importlib.import_module(name)
    wire()


def wire() -> None:
    """Register every domain-event subscriber and page panel (registering again replaces: idempotent).

    | event (owner)                        | subscriber                 | what it does                              |
    |--------------------------------------|----------------------------|-------------------------------------------|
    | codes.events.ItemEvent               | rewards                    | pays the parties of a step (exactly once) |
    | channel.events.DiversionPenalized    | rewards                    | deducts the penalty from the dealer       |
    | channel.events.DiversionResolved     | rewards                    | rejects or releases what the scan held    |
    | sales.events.OrderExpired            | flashsale.return_stock     | puts an unpaid buy's stock back on sale   |
    | sales.events.OrderExpired            | lottery.win_forfeited      | forfeits an unpaid win                    |
    | sales.events.OrderPaid               | lottery.win_paid           | marks a win paid                          |
    | codes.events.ItemEvent               | members.points             | a first consumer open earns (job, once)   |
    | sales.events.OrderPaid               | members.points (adapter)   | a paid order earns per yuan (job, once)   |

    | codes.events.ItemEvent               | members.touch              | a consumer's opening is a scan touch      |
    | sales.events.OrderPaid               | members.touch              | a paid order is a purchase touch          |

    | page slot (owner)                    | panel                      | what it shows                             |
    |--------------------------------------|----------------------------|-------------------------------------------|
    | authenticity.scan_page               | rewards                    | the red packet a first open earned        |
    | members.member_360                   | sales                      | the member's latest orders                |

    | console home section (kit.home)      | permission                 | what it shows                             |
    |--------------------------------------|----------------------------|-------------------------------------------|
    | authenticity                         | authenticity.read          | verifications, suspicious, activations    |
    | rewards                              | rewards.read               | rewards paid against budget, held         |
    | channel                              | channel.read               | diversion alerts raised and open          |
    | sales                                | sales.read                 | orders, payments, pickups                 |
    | members                              | members.read               | new members, active and at-risk members   |
    """
    from zhongtai.authenticity import home as authenticity_home
    from zhongtai.authenticity.panels import SCAN_PAGE
    from zhongtai.channel import home as channel_home
    from zhongtai.channel.events import DiversionPenalized, DiversionResolved
    from zhongtai.codes.events import ItemEvent
    from zhongtai.core.domain_events import subscribe
    from zhongtai.flashsale import service as flashsale
    from zhongtai.kit.home import register_home_section
    from zhongtai.kit.panels import register_panel
    from zhongtai.lottery import service as lottery
    from zhongtai.members import earning as points
    from zhongtai.members import home as members_home
    from zhongtai.members import touches as member_touches
    from zhongtai.members.panels import MEMBER_360
    from zhongtai.rewards import grants as rewards
    from zhongtai.rewards import h5_pages as rewards_pages
    from zhongtai.rewards import home as rewards_home
    from zhongtai.sales import console as sales_pages
    from zhongtai.sales import home as sales_home
    from zhongtai.sales.events import OrderExpired, OrderPaid

    subscribe(ItemEvent, rewards.SUBSCRIBER, rewards.on_item_event)
    subscribe(DiversionPenalized, rewards.SUBSCRIBER, rewards.on_diversion_penalized)
    subscribe(DiversionResolved, rewards.SUBSCRIBER, rewards.on_diversion_resolved)
    subscribe(OrderExpired, "flashsale.return_stock", flashsale.on_order_expired)
    subscribe(OrderExpired, "lottery.win_forfeited", lottery.on_order_expired)
    subscribe(OrderPaid, "lottery.win_paid", lottery.on_order_paid)
    subscribe(ItemEvent, "members.points", points.on_item_event)
    subscribe(OrderPaid, "members.points", _order_paid_to_points)
    subscribe(ItemEvent, "members.touch", member_touches.on_item_event)
    subscribe(OrderPaid, "members.touch", _order_paid_touch)
    register_panel(SCAN_PAGE, "rewards", rewards_pages.red_packet_panel)
    register_panel(MEMBER_360, "sales", sales_pages.member_orders_panel)
    register_home_section("authenticity", authenticity_home.home_section, permission="authenticity.read", order=10)
    register_home_section("rewards", rewards_home.home_section, permission="rewards.read", order=20)
    register_home_section("channel", channel_home.home_section, permission="channel.read", order=30)
    register_home_section("sales", sales_home.home_section, permission="sales.read", order=40)
    register_home_section("members", members_home.home_section, permission="members.read", order=50)


async def _order_paid_to_points(session: AsyncSession, event: OrderPaid) -> bool:
    """members sits below sales: it takes a paid order in its own terms."""
    from zhongtai.members import earning

    paid = earning.PurchasePaid(event.tenant_id, event.order_id, event.consumer_id, event.amount_fen)
    return await earning.on_purchase_paid(session, paid)


async def _order_paid_touch(session: AsyncSession, event: OrderPaid) -> None:
    """Adapter: members sits below sales, so a paid order reaches it as members' own `ConsumerTouch`."""
    from zhongtai.core.clock import utcnow
    from zhongtai.members import touches as member_touches

    touch = member_touches.ConsumerTouch(
        tenant_id=event.tenant_id,
        consumer_id=event.consumer_id,
        kind="purchase",
        ref=f"order:{event.order_id}",
        at=utcnow(),
        channel=event.source,
        amount_fen=event.amount_fen,
    )
    await member_touches.on_consumer_touch(session, touch)
