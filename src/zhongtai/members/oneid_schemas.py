"""Request and response models of OneID. Every identifier and the name are answered masked."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from zhongtai.core.schemas import RequestBody
from zhongtai.members import oneid, oneid_rules
from zhongtai.members.models import Member, MemberConsent, MemberErasure, MemberIdentifier, MemberMerge


class IdentifierIn(RequestBody):
    type: str = Field(min_length=1, max_length=40, description="phone, wechat_unionid, wechat_openid, …")
    value: str = Field(min_length=1, max_length=200)
    verified: bool = False
    app_id: str | None = Field(default=None, max_length=128, description="the WeChat app of an openid")


class ProfileIn(RequestBody):
    name: str | None = Field(default=None, max_length=80)
    birthday: date | None = None
    gender: str | None = Field(default=None, max_length=10)
    city: str | None = Field(default=None, max_length=80)
    address: str | None = Field(default=None, max_length=200)
    verified: bool = False


class LinkIn(RequestBody):
    identifiers: list[IdentifierIn] = Field(min_length=1, max_length=oneid.MAX_IDENTIFIERS_PER_LINK)
    profile: ProfileIn | None = None
    source: str = Field(min_length=1, max_length=20, description="console, pos, app, wechat, alipay, …")
    reason: str = Field(default="", max_length=300)
    observed_at: datetime | None = None


class UndoIn(RequestBody):
    reason: str = Field(min_length=1, max_length=300)


class BlockIn(RequestBody):
    type: str = Field(min_length=1, max_length=40)
    value: str = Field(min_length=1, max_length=200)
    app_id: str | None = Field(default=None, max_length=128)
    note: str = Field(default="", max_length=200)


class IdentifierOut(BaseModel):
    type: str
    value_masked: str
    app_id: str | None
    verified: bool
    source: str
    first_seen_at: datetime
    last_seen_at: datetime

    @classmethod
    def of(cls, row: MemberIdentifier) -> IdentifierOut:
        return cls(
            type=row.type,
            value_masked=row.value_masked,
            app_id=row.app_id,
            verified=row.verified,
            source=row.source,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
        )


class ProfileValueOut(BaseModel):
    value: str
    source: str
    verified: bool
    at: datetime


class MergeOut(BaseModel):
    id: uuid.UUID
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    actor_label: str
    reason: str
    created_at: datetime
    identifiers_moved: list[dict[str, Any]]
    undone_at: datetime | None
    undone_by: str | None
    undo_reason: str | None

    @classmethod
    def of(cls, row: MemberMerge) -> MergeOut:
        moved = [{"type": i["type"], "value_masked": i["value_masked"]} for i in row.snapshot.get("identifiers", [])]
        return cls(
            id=row.id,
            survivor_id=row.survivor_id,
            merged_id=row.merged_id,
            actor_label=row.actor_label,
            reason=row.reason,
            created_at=row.created_at,
            identifiers_moved=moved,
            undone_at=row.undone_at,
            undone_by=row.undone_by,
            undo_reason=row.undo_reason,
        )


class MemberOut(BaseModel):
    id: uuid.UUID
    status: str
    merged_into_id: uuid.UUID | None
    created_at: datetime
    profile: dict[str, ProfileValueOut]
    identifiers: list[IdentifierOut]
    merges: list[MergeOut]

    @classmethod
    def of(cls, member: Member, identifiers: list[MemberIdentifier], merges: list[MemberMerge]) -> MemberOut:
        profile = {
            name: ProfileValueOut(
                value=entry["masked"] if name in oneid_rules.ENCRYPTED_PROFILE_FIELDS else entry["value"],
                source=entry["source"],
                verified=entry["verified"],
                at=entry["at"],
            )
            for name, entry in member.profile.items()
        }
        return cls(
            id=member.id,
            status=member.status,
            merged_into_id=member.merged_into_id,
            created_at=member.created_at,
            profile=profile,
            identifiers=[IdentifierOut.of(i) for i in identifiers],
            merges=[MergeOut.of(m) for m in merges],
        )


class SkippedOut(BaseModel):
    type: str
    value_masked: str
    reason: str


class LinkOut(BaseModel):
    member: MemberOut
    is_new: bool
    merged_member_ids: list[uuid.UUID]
    skipped: list[SkippedOut]


class MemberList(BaseModel):
    items: list[MemberOut]


class BlockedOut(BaseModel):
    type: str
    value_masked: str
    note: str
    created_at: datetime


class ConsentIn(RequestBody):
    granted: bool
    text_version: str = Field(min_length=1, max_length=40, description="the version of the text the member saw")
    source: str = Field(default="console", max_length=20, description="h5, console or import")


class ConsumerConsentIn(RequestBody):
    granted: bool
    text_version: str = Field(min_length=1, max_length=40, description="the version of the text the member saw")


class ConsentOut(BaseModel):
    purpose: str
    granted: bool
    source: str | None
    text_version: str | None
    recorded_at: datetime | None

    @classmethod
    def of(cls, purpose: str, row: MemberConsent | None) -> ConsentOut:
        if row is None:
            return cls(purpose=purpose, granted=False, source=None, text_version=None, recorded_at=None)
        return cls(
            purpose=row.purpose,
            granted=row.granted,
            source=row.source,
            text_version=row.text_version,
            recorded_at=row.recorded_at,
        )


class ConsentsOut(BaseModel):
    member_id: uuid.UUID
    current: list[ConsentOut]
    history: list[ConsentOut]


class EraseIn(RequestBody):
    reason: str = Field(min_length=1, max_length=300, description="why; never personal data")


class ConsumerEraseIn(RequestBody):
    reason: str = Field(default="", max_length=300)


class ErasureOut(BaseModel):
    member_id: uuid.UUID
    requested_by: str
    actor_label: str
    reason: str
    erased_at: datetime
    summary: dict[str, Any]
    is_new: bool

    @classmethod
    def of(cls, row: MemberErasure, is_new: bool) -> ErasureOut:
        return cls(
            member_id=row.member_id,
            requested_by=row.requested_by,
            actor_label=row.actor_label,
            reason=row.reason,
            erased_at=row.erased_at,
            summary=row.summary,
            is_new=is_new,
        )
