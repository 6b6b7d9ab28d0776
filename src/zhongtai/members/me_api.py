"""The signed-in member's own view (the H5 member centre): who the brand knows them as, their profile
(editable), consents and verified bottles. Points and tiers answer in their own module."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.authenticity import queries as scans
from zhongtai.catalog import queries as catalog
from zhongtai.core.runtime import Runtime
from zhongtai.core.schemas import RequestBody
from zhongtai.core.web import CurrentConsumer, DbSession, RuntimeDep
from zhongtai.members import consent, oneid, privacy
from zhongtai.members import oneid_rules as r
from zhongtai.members.oneid_schemas import ConsentOut

router = APIRouter(prefix="/api/v1/consumer/members/me", tags=["consumer"])

PROFILE_SOURCE = "h5"


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
        identifiers=[oneid.IdentifierInput(r.IdentifierType.CONSUMER_ACCOUNT.value, str(principal.id), verified=True)],
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
