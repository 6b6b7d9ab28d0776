"""Request and response models of members."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from zhongtai.core.schemas import RequestBody
from zhongtai.members import rules
from zhongtai.members.models import MemberIdentity


class IdentitySubmit(RequestBody):
    name: str = Field(min_length=1, max_length=rules.NAME_MAX_CHARS, description="name as printed on the ID card")
    id_number: str = Field(min_length=1, max_length=40, description="18-character resident ID number")


class IdentityOut(BaseModel):
    id: uuid.UUID
    consumer_id: uuid.UUID
    name_masked: str
    id_masked: str
    birth_year: int
    age: int
    meets_alcohol_age: bool
    region_code: str
    verifier: str
    verified_at: datetime

    @classmethod
    def of(cls, row: MemberIdentity, today: date) -> IdentityOut:
        age = rules.age_on(row.birth_date, today)
        return cls(
            id=row.id,
            consumer_id=row.consumer_id,
            name_masked=row.name_masked,
            id_masked=row.id_masked,
            birth_year=row.birth_date.year,
            age=age,
            meets_alcohol_age=age >= rules.ALCOHOL_MINIMUM_AGE,
            region_code=row.region_code,
            verifier=row.verifier,
            verified_at=row.verified_at,
        )


class IdentityVerifiedOut(BaseModel):
    identity: IdentityOut
    is_new: bool
