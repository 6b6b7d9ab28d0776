"""What the member's 360 view passes to the sections other modules add to it (see `zhongtai.kit.panels`):
orders come from sales, which sits above members and so registers its own section."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

MEMBER_360 = "members.member_360"


@dataclass(frozen=True)
class MemberPanelContext:
    """The page's request, its read session (scoped to the brand), the member and their consumer accounts."""

    request: Request
    session: AsyncSession
    member_id: uuid.UUID
    consumer_ids: list[uuid.UUID]
