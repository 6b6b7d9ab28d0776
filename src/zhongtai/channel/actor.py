"""Who scans in the channel: a partner account and the dealer and store it acts for. Below the scans
(which build it) and the diversion checks (which name it in an alert's evidence)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from zhongtai.channel.models import Dealer, PartnerAccount, Store


@dataclass(frozen=True)
class Actor:
    """The partner who scans and what it acts for."""

    account: PartnerAccount
    dealer: Dealer  # the dealer account's dealer, or the store's supplying dealer
    store: Store | None

    @property
    def role(self) -> str:
        return self.account.role

    @property
    def guide_id(self) -> uuid.UUID | None:
        return self.account.guide_id

    @property
    def label(self) -> str:
        where = self.store.name if self.store else self.dealer.name
        return f"{self.account.display_name} ({where})"
