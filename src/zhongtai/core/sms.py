"""SMS gateway interface. `SandboxSmsSender` is the stand-in for a real carrier gateway: it sends
nothing, logs the message and keeps it for the development inbox page."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.crypto import mask_phone
from zhongtai.core.models import SandboxMessage

log = logging.getLogger("zhongtai.sms")


class SmsSender(Protocol):
    name: str

    async def send(self, session: AsyncSession, *, tenant_id: uuid.UUID, phone_e164: str, text: str) -> None: ...


class SandboxSmsSender:
    name = "sandbox"

    async def send(self, session: AsyncSession, *, tenant_id: uuid.UUID, phone_e164: str, text: str) -> None:
        log.info("sandbox sms", extra={"to": mask_phone(phone_e164), "text": text})
        session.add(SandboxMessage(tenant_id=tenant_id, channel="sms", recipient=mask_phone(phone_e164), body=text))
        await session.flush()
