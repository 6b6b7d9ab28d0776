"""Members REST API: a consumer verifies their real name; staff list verified members, masked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from zhongtai.core.errors import NotFound
from zhongtai.core.principals import Principal
from zhongtai.core.schemas import Paged
from zhongtai.core.web import CurrentConsumer, DbSession, PageDep, RuntimeDep, rate_limit, require
from zhongtai.members import service
from zhongtai.members.permissions import MEMBERS_READ
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
