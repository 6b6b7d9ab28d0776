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
