"""Dependencies of console pages: the signed-in operator and per-page permission checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from zhongtai.core.errors import PermissionDenied, Unauthenticated
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.web import MaybePrincipal


async def console_operator(request: Request, principal: MaybePrincipal) -> Principal:
    if principal is None or principal.kind is not PrincipalKind.OPERATOR:
        raise Unauthenticated()
    return principal


ConsoleOperator = Annotated[Principal, Depends(console_operator)]


def require_page(permission: str) -> Any:
    """`Depends` marker: the signed-in operator, who must hold `permission` (else the 403 page)."""

    async def dependency(principal: ConsoleOperator) -> Principal:
        if not principal.can(permission):
            raise PermissionDenied(f"This page needs the permission '{permission}'.", permission=permission)
        return principal

    dependency.__name__ = f"page_needs_{permission.replace('.', '_')}"
    return Depends(dependency)
