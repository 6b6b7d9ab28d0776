"""Members REST API: a consumer verifies their real name; staff list verified members, masked, and
link identifiers to members (OneID)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.errors import NotFound
from zhongtai.core.principals import Principal
from zhongtai.core.schemas import Paged
from zhongtai.core.web import (
    CurrentConsumer,
    DbSession,
    PageDep,
    RuntimeDep,
    rate_limit,
    require,
    writes_on_get,
)
from zhongtai.members import consent, oneid, privacy, service
from zhongtai.members.models import Member
from zhongtai.members.oneid_schemas import (
    BlockedOut,
    BlockIn,
    ConsentIn,
    ConsentOut,
    ConsentsOut,
    ConsumerConsentIn,
    ConsumerEraseIn,
    EraseIn,
    ErasureOut,
    LinkIn,
    LinkOut,
    MemberList,
    MemberOut,
    MergeOut,
    SkippedOut,
    UndoIn,
)
from zhongtai.members.permissions import MEMBERS_ERASE, MEMBERS_EXPORT, MEMBERS_READ, MEMBERS_WRITE
from zhongtai.members.schemas import IdentityOut, IdentitySubmit, IdentityVerifiedOut
from zhongtai.members.verifier import verifier_for

router = APIRouter(prefix="/api/v1", tags=["members"])

MembersReader = Annotated[Principal, Depends(require(MEMBERS_READ))]
# On top of five attempts a day per account (in the service): 20 a minute per network address.
VerifyLimit = Depends(rate_limit("members-verify", limit=20, period=60.0))


@router.post(
    "/consumer/identity",
    response_model=IdentityVerifiedOut,
    status_code=201,
    dependencies=[VerifyLimit],
    responses={200: {"model": IdentityVerifiedOut, "description": "already verified with this identity"}},
)
async def verify_identity(
    body: IdentitySubmit, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep, response: Response
) -> IdentityVerifiedOut:
    """Real-name verification: name and resident ID number, checked locally and with the authority."""
    verified = await service.do_verify_identity(
        session,
        crypto=runtime.crypto,
        limiter=runtime.limiter,
        verifier=verifier_for(runtime.settings),
        tenant_id=principal.tenant_id,
        consumer_id=principal.id,
        name=body.name,
        id_number=body.id_number,
    )
    if not verified.is_new:
        response.status_code = 200
    return IdentityVerifiedOut(identity=IdentityOut.of(verified.identity, service.today()), is_new=verified.is_new)


@router.get("/consumer/identity", response_model=IdentityOut)
async def my_identity(principal: CurrentConsumer, session: DbSession) -> IdentityOut:
    identity = await service.identity_of(session, principal.id)
    if identity is None:
        raise NotFound("This account has no verified identity yet.")
    return IdentityOut.of(identity, service.today())


@router.get("/members/identities", response_model=Paged[IdentityOut])
async def list_identities(session: DbSession, _: MembersReader, page: PageDep) -> Paged[IdentityOut]:
    rows, total = await service.list_identities(session, limit=page.per_page, offset=page.offset)
    today = service.today()
    return Paged(items=[IdentityOut.of(r, today) for r in rows], total=total, page=page.page, per_page=page.per_page)


# --- OneID (member ids are typed `uuid` in paths, so /members/identities and other words never match them) ---

MembersWriter = Annotated[Principal, Depends(require(MEMBERS_WRITE))]


async def _member_out(session: AsyncSession, member: Member) -> MemberOut:
    identifiers = await oneid.identifiers_of(session, member.id)
    return MemberOut.of(member, identifiers, await oneid.merges_of(session, member.id))


@router.post("/members/link", response_model=LinkOut)
async def link_member(body: LinkIn, session: DbSession, principal: MembersWriter, runtime: RuntimeDep) -> LinkOut:
    """Link identifiers (and profile values) to one member: create, attach or merge deterministically."""
    profile = None
    if body.profile is not None:
        profile = oneid.ProfileInput(
            name=body.profile.name,
            birthday=body.profile.birthday,
            gender=body.profile.gender,
            city=body.profile.city,
            address=body.profile.address,
            verified=body.profile.verified,
        )
    linked = await oneid.do_link(
        session,
        principal,
        runtime.crypto,
        identifiers=[oneid.IdentifierInput(i.type, i.value, i.verified, i.app_id) for i in body.identifiers],
        profile=profile,
        source=body.source,
        reason=body.reason,
        observed_at=body.observed_at,
    )
    return LinkOut(
        member=await _member_out(session, linked.member),
        is_new=linked.is_new,
        merged_member_ids=linked.merged_member_ids,
        skipped=[SkippedOut(type=s.type, value_masked=s.value_masked, reason=s.reason) for s in linked.skipped],
    )


@router.get("/members", response_model=MemberList)
async def find_members(
    session: DbSession,
    _: MembersReader,
    runtime: RuntimeDep,
    phone: Annotated[str, Query(min_length=1, max_length=40, description="exact phone number")],
) -> MemberList:
    """Exact look-up by phone, through its keyed hash (a marketplace hashed phone matches too)."""
    found = await oneid.find_by_phone(session, runtime.crypto, phone)
    return MemberList(items=[await _member_out(session, m) for m in found])


@router.get("/members/{member_id:uuid}", response_model=MemberOut)
async def get_member(member_id: uuid.UUID, session: DbSession, _: MembersReader) -> MemberOut:
    return await _member_out(session, await oneid.get_member(session, member_id))


@router.post("/members/merges/{merge_id}/undo", response_model=MergeOut)
async def undo_merge(merge_id: uuid.UUID, body: UndoIn, session: DbSession, principal: MembersWriter) -> MergeOut:
    """Undo a merge: both members as they were before it (undo later merges that build on it first)."""
    return MergeOut.of(await oneid.do_unmerge(session, principal, merge_id, body.reason))


@router.post("/members/blocked-identifiers", response_model=BlockedOut, status_code=201)
async def block_identifier(
    body: BlockIn, session: DbSession, principal: MembersWriter, runtime: RuntimeDep
) -> BlockedOut:
    """Never match or merge on this value (a store's counter phone, a test account)."""
    row = await oneid.do_block_identifier(
        session, principal, runtime.crypto, type=body.type, value=body.value, app_id=body.app_id, note=body.note
    )
    return BlockedOut(type=row.type, value_masked=row.value_masked, note=row.note, created_at=row.created_at)


# --- consent, export and erasure --------------------------------------------------------------------

MembersExporter = Annotated[Principal, Depends(require(MEMBERS_EXPORT))]
MembersEraser = Annotated[Principal, Depends(require(MEMBERS_ERASE))]


async def _consents_out(session: AsyncSession, member_id: uuid.UUID) -> ConsentsOut:
    current = await consent.current(session, member_id)
    return ConsentsOut(
        member_id=member_id,
        current=[ConsentOut.of(p.value, row) for p, row in current.items()],
        history=[ConsentOut.of(row.purpose, row) for row in await consent.history(session, member_id)],
    )


@router.get("/members/{member_id:uuid}/consents", response_model=ConsentsOut)
async def get_consents(member_id: uuid.UUID, session: DbSession, _: MembersReader) -> ConsentsOut:
    """The member's current decision per purpose and the full history, oldest first."""
    member = await oneid.get_member(session, member_id)
    return await _consents_out(session, member.id)


@router.put("/members/{member_id:uuid}/consents/{purpose}", response_model=ConsentOut)
async def set_consent(
    member_id: uuid.UUID, purpose: str, body: ConsentIn, session: DbSession, principal: MembersWriter
) -> ConsentOut:
    """Record a grant or a withdrawal the member made (at a counter, on paper, in an import)."""
    row = await consent.do_set_consent(
        session,
        principal,
        member_id,
        purpose,
        granted=body.granted,
        source=body.source,
        text_version=body.text_version,
    )
    return ConsentOut.of(row.purpose, row)


@router.get("/members/{member_id:uuid}/export")
@writes_on_get
async def export_member(
    member_id: uuid.UUID, session: DbSession, principal: MembersExporter, runtime: RuntimeDep
) -> dict[str, Any]:
    """Everything kept about the member, decrypted. Every export is recorded in the audit log."""
    return await privacy.do_export(session, principal, runtime.crypto, member_id)


@router.post("/members/{member_id:uuid}/erase", response_model=ErasureOut)
async def erase_member(
    member_id: uuid.UUID, body: EraseIn, session: DbSession, principal: MembersEraser, runtime: RuntimeDep
) -> ErasureOut:
    """Erase the member's personal data (all their member records). Erasing again answers the first erasure."""
    erased = await privacy.do_erase(session, principal, member_id, body.reason, crypto=runtime.crypto)
    return ErasureOut.of(erased.record, erased.is_new)


@router.get("/consumer/members/me/export")
@writes_on_get
async def export_mine(principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep) -> dict[str, Any]:
    """The signed-in member's own data: profile and phone decrypted, identity masked."""
    member = await privacy.member_for_consumer(session, runtime.crypto, principal.id)
    if member is None:
        raise NotFound("The brand keeps no member record for this account yet.")
    return await privacy.do_export(session, principal, runtime.crypto, member.id, consumer_ids=[principal.id])


@router.get("/consumer/members/me/consents/{purpose}", response_model=ConsentOut)
async def my_consent(purpose: str, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep) -> ConsentOut:
    wanted = consent.check_purpose(purpose)
    member = await privacy.member_for_consumer(session, runtime.crypto, principal.id)
    row = None if member is None else await consent.latest(session, member.id, wanted)
    return ConsentOut.of(wanted.value, row)


@router.put("/consumer/members/me/consents/{purpose}", response_model=ConsentOut)
async def set_my_consent(
    purpose: str, body: ConsumerConsentIn, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep
) -> ConsentOut:
    """The member grants or withdraws consent themselves (source `h5`)."""
    consent.check_purpose(purpose)
    member = await privacy.ensure_member_for_consumer(session, principal, runtime.crypto, principal.id)
    row = await consent.do_set_consent(
        session, principal, member.id, purpose, granted=body.granted, source="h5", text_version=body.text_version
    )
    return ConsentOut.of(row.purpose, row)


@router.post("/consumer/members/me/erase", response_model=ErasureOut)
async def erase_mine(
    body: ConsumerEraseIn, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep
) -> ErasureOut:
    """The member asks for their personal data to be erased; this account is signed out and closed."""
    member = await privacy.ensure_member_for_consumer(session, principal, runtime.crypto, principal.id)
    erased = await privacy.do_erase(
        session,
        principal,
        member.id,
        body.reason or privacy.SELF_REASON,
        crypto=runtime.crypto,
        consumer_ids=[principal.id],
    )
    return ErasureOut.of(erased.record, erased.is_new)
