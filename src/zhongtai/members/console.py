"""Console page of verified members (masked names and ID numbers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import PER_PAGE, render
from zhongtai.members import rules, service
from zhongtai.members.permissions import MEMBERS_READ

router = APIRouter(prefix="/console/members", include_in_schema=False)

MembersReader = Annotated[Principal, require_page(MEMBERS_READ)]


@router.get("/identities")
async def identities_page(
    request: Request,
    session: DbSession,
    _: MembersReader,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    rows, total = await service.list_identities(session, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    today = service.today()
    return render(
        request,
        "members/identities.html",
        {
            "identities": [(row, rules.age_on(row.birth_date, today)) for row in rows],
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "adult_age": rules.ALCOHOL_MINIMUM_AGE,
        },
    )
