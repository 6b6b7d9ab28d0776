"""The signed-in member's own view (the H5 member centre): who the brand knows them as, their profile
(editable), consents and verified bottles. Points and tiers answer in their own module."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import queries as scans
from zhongtai.authenticity import resolver, verification
from zhongtai.catalog import queries as catalog
from zhongtai.core import tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import AppError
from zhongtai.core.runtime import Runtime
from zhongtai.core.schemas import RequestBody
from zhongtai.core.web import CurrentConsumer, DbSession, RuntimeDep, rate_limit
from zhongtai.members import consent, earning, oneid, privacy, touches
from zhongtai.members import oneid_rules as r
from zhongtai.members.oneid_schemas import ConsentOut
from zhongtai.rewards import grants

router = APIRouter(prefix="/api/v1/consumer/members/me", tags=["consumer"])

PROFILE_SOURCE = "h5"
CLAIM_DAYS = 7
CLAIM_MAX_CODES = 20
ClaimLimit = Depends(rate_limit("members-claim", limit=30, period=3600, by="principal"))


class MyIdentifierOut(BaseModel):
    type: str
    value_masked: str
    verified: bool


class MeOut(BaseModel):
    is_member: bool
    member_since: datetime | None
    profile: dict[str, str] = Field(description="field → value as shown (name and address masked)")
    identifiers: list[MyIdentifierOut]
    consents: list[ConsentOut]


class ProfileEditIn(RequestBody):
    name: str | None = Field(default=None, max_length=80)
    birthday: date | None = None
    gender: str | None = Field(default=None, max_length=10)
    city: str | None = Field(default=None, max_length=80)
    address: str | None = Field(default=None, max_length=200)


class BottleOut(BaseModel):
    serial: str
    product: str | None
    verdict: str | None
    checked_at: datetime
    city: str | None


class BottlesOut(BaseModel):
    items: list[BottleOut]
    total: int


async def _me(session: AsyncSession, runtime: Runtime, consumer_id: uuid.UUID) -> MeOut:
    member = await privacy.member_for_consumer(session, runtime.crypto, consumer_id)
    if member is None:
        return MeOut(
            is_member=False,
            member_since=None,
            profile={},
            identifiers=[],
            consents=[ConsentOut.of(p.value, None) for p in consent.Purpose],
        )
    current = await consent.current(session, member.id)
    return MeOut(
        is_member=True,
        member_since=member.created_at,
        profile=r.shown_profile(member.profile),
        identifiers=[
            MyIdentifierOut(type=i.type, value_masked=i.value_masked, verified=i.verified)
            for i in await oneid.identifiers_of(session, member.id)
        ],
        consents=[ConsentOut.of(p.value, row) for p, row in current.items()],
    )


@router.get("", response_model=MeOut)
async def me(principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep) -> MeOut:
    """What the brand keeps about the signed-in member, as their screen shows it."""
    return await _me(session, runtime, principal.id)


@router.put("/profile", response_model=MeOut)
async def edit_profile(
    body: ProfileEditIn, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep
) -> MeOut:
    """The member fills in or corrects their profile (their account becomes a member if it was not one).
    Their word is unverified, so a verified value (a real-name check, a store's record) stays."""
    await oneid.do_link(
        session,
        principal,
        runtime.crypto,
        identifiers=await privacy.account_identifiers(session, runtime.crypto, principal.id),
        profile=oneid.ProfileInput(
            name=body.name or None,
            birthday=body.birthday,
            gender=body.gender or None,
            city=body.city or None,
            address=body.address or None,
        ),
        source=PROFILE_SOURCE,
        reason="the member edited their profile",
    )
    return await _me(session, runtime, principal.id)


@router.get("/bottles", response_model=BottlesOut)
async def my_bottles(
    principal: CurrentConsumer,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
) -> BottlesOut:
    """The bottles this member checked while signed in, newest first."""
    found, total = await scans.scans_of_consumers(session, [principal.id], limit=limit)
    names = await catalog.product_names(session, [s.product_id for s in found])
    return BottlesOut(
        items=[
            BottleOut(
                serial=s.serial,
                product=names.get(s.product_id) if s.product_id else None,
                verdict=s.verdict,
                checked_at=s.occurred_at,
                city=s.city_name,
            )
            for s in found
        ],
        total=total,
    )


class ClaimIn(RequestBody):
    codes: list[str] = Field(
        min_length=1, max_length=CLAIM_MAX_CODES, description="Digital Links the scan page checked"
    )


class ClaimOut(BaseModel):
    scans: int = Field(description="checks of this device given to the member now")
    points: int = Field(description="points earned for first verifications among them")
    red_packets: int
    red_packet_fen: int


@router.post("/claim", response_model=ClaimOut, dependencies=[ClaimLimit])
async def claim(
    body: ClaimIn, request: Request, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep
) -> ClaimOut:
    """After signing in: the bottles this device checked before (within a week) become the member's —
    their first verifications earn points once per bottle, and the device's red packets move to the
    member's wallet. Codes that are not the brand's, or were checked on another device, are ignored."""
    code_ids = []
    for text in body.codes:
        try:
            resolved = await resolver.resolve(session, resolver.parse(text))
        except AppError:
            continue
        finally:
            tenancy.scope_to_tenant(session, principal.tenant_id)  # the resolver looks across brands
        if resolved.ref.tenant_id == principal.tenant_id:
            code_ids.append(resolved.ref.code_id)
    device = verification.client_hash_of(request, runtime.crypto)
    since = utcnow() - timedelta(days=CLAIM_DAYS)
    claimed = await scans.claim_code_scans(session, principal.id, device, sorted(set(code_ids)), since=since)
    earned = 0
    for scan in claimed:
        if not scan.is_first_verification:
            continue
        payload = {"kind": "scan", "source": f"code:{scan.code_id}", "consumer_id": str(principal.id)}
        got = await earning.do_earn_for_consumer(
            session, runtime.crypto, principal.tenant_id, payload | {"at": scan.occurred_at.isoformat()}
        )
        earned += got.lot.amount if got is not None and got.is_new else 0
        await touches.on_consumer_touch(
            session,
            touches.ConsumerTouch(
                tenant_id=principal.tenant_id,
                consumer_id=principal.id,
                kind="scan",
                ref=f"consumer-verify:{scan.code_id}:{scan.code_id}",
                at=scan.occurred_at,
                channel="scan",
            ),
        )
    packets = await grants.do_claim_device_packets(session, principal.id, device)
    return ClaimOut(scans=len(claimed), points=earned, red_packets=packets.grants, red_packet_fen=packets.amount_fen)
