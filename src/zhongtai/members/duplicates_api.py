"""The review queue of probable duplicates: scan, list, merge, dismiss, undo (staff only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.jobs import JobContext, enqueue, job_handler
from zhongtai.core.principals import Principal
from zhongtai.core.schemas import Paged, RequestBody
from zhongtai.core.settings import Settings
from zhongtai.core.web import DbSession, PageDep, require
from zhongtai.members import duplicates
from zhongtai.members.duplicate_models import MemberDuplicateSuggestion
from zhongtai.members.models import Member
from zhongtai.members.oneid_rules import shown_profile
from zhongtai.members.oneid_schemas import MergeOut
from zhongtai.members.permissions import MEMBERS_READ, MEMBERS_WRITE

router = APIRouter(prefix="/api/v1/members/duplicates", tags=["members"])

MembersReader = Annotated[Principal, Depends(require(MEMBERS_READ))]
MembersWriter = Annotated[Principal, Depends(require(MEMBERS_WRITE))]
SCAN_TOPIC = "members.duplicates.scan"


@job_handler(SCAN_TOPIC)
async def run_scan(ctx: JobContext) -> None:
    settings = ctx.database.settings if ctx.database is not None else Settings()
    threshold = float(ctx.payload.get("threshold", duplicates.DEFAULT_THRESHOLD))
    await duplicates.do_scan(ctx.session, Crypto(settings.secrets), threshold=threshold)


class ScanIn(RequestBody):
    threshold: float = Field(default=duplicates.DEFAULT_THRESHOLD, ge=0.5, lt=1)


class ScanQueuedOut(BaseModel):
    queued: bool
    topic: str


class SideOut(BaseModel):
    """One member of a pair, masked: what an operator needs to decide, never a full name or address."""

    id: uuid.UUID
    status: str
    created_at: datetime
    profile: dict[str, str]

    @classmethod
    def of(cls, member: Member) -> SideOut:
        return cls(
            id=member.id, status=member.status, created_at=member.created_at, profile=shown_profile(member.profile)
        )


class SuggestionOut(BaseModel):
    id: uuid.UUID
    status: str
    probability: float
    match_weight: float
    agreement: dict[str, str]
    members: list[SideOut]
    merge_id: uuid.UUID | None
    decided_by: str | None
    decided_at: datetime | None
    note: str
    found_at: datetime

    @classmethod
    def of(cls, row: MemberDuplicateSuggestion, a: Member | None = None, b: Member | None = None) -> SuggestionOut:
        return cls(
            id=row.id,
            status=row.status,
            probability=round(row.probability, 6),
            match_weight=round(row.match_weight, 3),
            agreement=row.agreement,
            members=[SideOut.of(m) for m in (a, b) if m is not None],
            merge_id=row.merge_id,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            note=row.note,
            found_at=row.found_at,
        )


class DecisionIn(RequestBody):
    reason: str = Field(min_length=1, max_length=300)


class MergedOut(BaseModel):
    suggestion: SuggestionOut
    merge: MergeOut


async def queue_scan(
    session: AsyncSession, tenant_id: uuid.UUID, threshold: float = duplicates.DEFAULT_THRESHOLD
) -> None:
    """Queue a scan; scans asked for within the same minute run once."""
    await enqueue(
        session,
        SCAN_TOPIC,
        {"threshold": threshold},
        tenant_id=tenant_id,
        dedupe_key=f"{SCAN_TOPIC}:{utcnow():%Y%m%dT%H%M}",
    )


@router.post("/scan", response_model=ScanQueuedOut, status_code=202)
async def scan(body: ScanIn, session: DbSession, principal: MembersWriter) -> ScanQueuedOut:
    """Queue a scan of the brand's members for probable duplicates (at most one a minute)."""
    await queue_scan(session, principal.tenant_id, body.threshold)
    return ScanQueuedOut(queued=True, topic=SCAN_TOPIC)


@router.get("", response_model=Paged[SuggestionOut])
async def list_suggestions(
    session: DbSession,
    _: MembersReader,
    page: PageDep,
    status: Annotated[Literal["open", "merged", "dismissed", "stale"], Query()] = "open",
) -> Paged[SuggestionOut]:
    """The review queue, most probable pairs first."""
    rows, total = await duplicates.list_suggestions(session, status=status, limit=page.per_page, offset=page.offset)
    return Paged(
        items=[SuggestionOut.of(s, a, b) for s, a, b in rows], total=total, page=page.page, per_page=page.per_page
    )


@router.post("/{suggestion_id}/merge", response_model=MergedOut)
async def merge(suggestion_id: uuid.UUID, body: DecisionIn, session: DbSession, principal: MembersWriter) -> MergedOut:
    """Merge the pair (the older member survives; phones and other capped identifiers still guard)."""
    row, record = await duplicates.do_merge(session, principal, suggestion_id, body.reason)
    return MergedOut(suggestion=SuggestionOut.of(row), merge=MergeOut.of(record))


@router.post("/{suggestion_id}/dismiss", response_model=SuggestionOut)
async def dismiss(
    suggestion_id: uuid.UUID, body: DecisionIn, session: DbSession, principal: MembersWriter
) -> SuggestionOut:
    """Different people: the pair leaves the queue for good."""
    return SuggestionOut.of(await duplicates.do_dismiss(session, principal, suggestion_id, body.reason))


@router.post("/{suggestion_id}/undo", response_model=SuggestionOut)
async def undo(
    suggestion_id: uuid.UUID, body: DecisionIn, session: DbSession, principal: MembersWriter
) -> SuggestionOut:
    """Undo the merge this suggestion led to; both members come back as they were."""
    return SuggestionOut.of(await duplicates.do_undo(session, principal, suggestion_id, body.reason))
