"""Events the channel publishes through `zhongtai.core.domain_events` (in the publisher's transaction)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from zhongtai.core.domain_events import requires_subscriber


@requires_subscriber
@dataclass(frozen=True)
class DiversionPenalized:
    """An operator penalised a dealer for a confirmed diversion alert (防窜货): `amount` fen to deduct
    from the dealer's rewards. Published by the channel in the operator's transaction; `source_ref`
    ("diversion-penalty:{alert id}") makes it unique, so subscribers deduct once."""

    tenant_id: uuid.UUID
    alert_id: uuid.UUID
    dealer_id: uuid.UUID
    amount: int  # fen
    reason: str
    occurred_at: datetime
    source_ref: str


@requires_subscriber
@dataclass(frozen=True)
class DiversionResolved:
    """An operator decided a diversion alert raised by a channel scan: `upheld` (confirmed) or not
    (dismissed). What the scan earned was held for this decision (`scan_ref` is the scan's
    "channel-scan:{id}"); subscribers reject it when upheld and release it when dismissed, once —
    `source_ref` ("diversion-resolved:{alert id}") makes the decision unique."""

    tenant_id: uuid.UUID
    alert_id: uuid.UUID
    scan_ref: str
    upheld: bool
    decided_by: str
    occurred_at: datetime
    source_ref: str
