"""Events about one item (a bottle's code), published through `zhongtai.core.domain_events`.

Channel scans (a dealer or store receives, a case is opened, a bottle is sold) and the consumer's first
genuine PIN check publish one `ItemEvent` per item; rewards subscribes and pays for each step.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from zhongtai.core.domain_events import requires_subscriber

ItemStep = Literal["dealer_receive", "store_receive", "case_open", "sale", "consumer_open"]
ITEM_STEPS: tuple[ItemStep, ...] = (
    "dealer_receive",
    "store_receive",
    "case_open",
    "sale",
    "consumer_open",
)


@requires_subscriber
@dataclass(frozen=True)
class ItemEvent:
    """One item (a bottle's code) passed a step that can earn rewards.

    A scan of a case or pallet publishes one `ItemEvent` per item inside it. `source_ref` names the
    producer's record (e.g. "channel-scan:{scan id}" or "consumer-verify:{code id}") and, with
    `kind` and `code_id`, makes the event unique.
    """

    tenant_id: uuid.UUID
    kind: ItemStep
    code_id: int
    product_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    occurred_at: datetime
    source_ref: str
    dealer_id: uuid.UUID | None = None
    store_id: uuid.UUID | None = None
    guide_id: uuid.UUID | None = None
    consumer_id: uuid.UUID | None = None
    partner_account_id: uuid.UUID | None = None
    latitude: float | None = None  # WGS-84
    longitude: float | None = None
    device_hash: str | None = None  # keyed hash of the client id, never the raw id
    extra: dict[str, Any] = field(default_factory=dict)
