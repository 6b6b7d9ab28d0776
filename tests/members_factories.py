"""Factories of consumers with a sign-in token and real-name identities (members, lottery tests)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from stdnum.cn import ric

from tests.factories import Brand
from zhongtai.core.clock import utcnow
from zhongtai.core.consumers import CONSUMER_TOKEN_PREFIX, PHONE_PURPOSE
from zhongtai.core.crypto import mask_phone, new_token, sha256_hex
from zhongtai.core.models import Consumer, ConsumerSession
from zhongtai.core.runtime import Runtime
from zhongtai.members import service as members
from zhongtai.members.verifier import SandboxIdentityVerifier


def resident_id(birth: date, serial: int = 1, region: str = "110105") -> str:
    """A well-formed resident ID number (valid check digit) for a birth date and a serial 0–999."""
    body = f"{region}{birth:%Y%m%d}{serial % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def adult_id(serial: int = 1) -> str:
    return resident_id(date(1990, 1, 1) + timedelta(days=serial // 1000), serial)


async def make_consumer(runtime: Runtime, brand: Brand, phone: str | None = None) -> tuple[Consumer, str]:
    """A consumer of the brand and a bearer token signed in as them."""
    phone = phone or f"+86138{uuid.uuid4().int % 100_000_000:08d}"
    token = new_token(CONSUMER_TOKEN_PREFIX)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        consumer = Consumer(
            phone_ciphertext=runtime.crypto.pii.encrypt(phone, purpose=PHONE_PURPOSE),
            phone_hash=runtime.crypto.lookup_hash(phone, purpose=PHONE_PURPOSE),
            phone_masked=mask_phone(phone),
        )
        session.add(consumer)
        await session.flush()
        session.add(
            ConsumerSession(
                consumer_id=consumer.id, token_hash=sha256_hex(token), expires_at=utcnow() + timedelta(days=1)
            )
        )
    return consumer, token


async def verify_consumer(
    runtime: Runtime, brand: Brand, consumer_id: uuid.UUID, id_number: str, name: str = "张三"
) -> None:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await members.do_verify_identity(
            session,
            crypto=runtime.crypto,
            limiter=runtime.limiter,
            verifier=SandboxIdentityVerifier(),
            tenant_id=brand.id,
            consumer_id=consumer_id,
            name=name,
            id_number=id_number,
        )
