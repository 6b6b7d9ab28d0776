"""Console pages for the brand's people and integrations: operator users and API tokens.

Every rule lives in `core.accounts`; these handlers parse forms, call the service, and either redirect
with a flash message or re-render the form with the service's message next to the field.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from zhongtai.core import accounts
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import AppError
from zhongtai.core.models import ApiToken
from zhongtai.core.permissions import (
    PERMISSIONS,
    TOKENS_READ,
    TOKENS_WRITE,
    USERS_READ,
    USERS_WRITE,
    Role,
    assignable_roles,
)
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, Origin
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import (
    PER_PAGE,
    error_field,
    localize_error,
    redirect_with_flash,
    render,
    tr,
)

router = APIRouter(include_in_schema=False)

UsersReader = Annotated[Principal, require_page(USERS_READ)]
UsersWriter = Annotated[Principal, require_page(USERS_WRITE)]
TokensReader = Annotated[Principal, require_page(TOKENS_READ)]
TokensWriter = Annotated[Principal, require_page(TOKENS_WRITE)]

Text = Annotated[str, Form(max_length=300)]
Secret = Annotated[str, Form(max_length=200)]

TOKEN_EXPIRY_CHOICES = (("", "Never expires"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"))


def _roles_for(principal: Principal) -> list[str]:
    return [role.value for role in assignable_roles(principal.role)] if principal.role else []


def _errors(request: Request, error: AppError) -> dict[str, str]:
    return {error_field(error): localize_error(request, error)}


# Users.


def _page_number(value: int) -> int:
    return max(1, min(value, 100_000))


@router.get("/users")
async def users_page(
    request: Request,
    session: DbSession,
    principal: UsersReader,
    q: str = "",
    role: str = "",
    page: int = 1,
) -> Response:
    page = _page_number(page)
    role_filter = role if role in {r.value for r in Role} else ""
    rows, total = await accounts.list_users(
        session, query=q[:100] or None, role=role_filter or None, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    return render(
        request,
        "console/users.html",
        {
            "users": rows,
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "q": q,
            "role": role_filter,
            "roles": [r.value for r in Role],
            "can_write": principal.can(USERS_WRITE),
        },
    )


def _user_form(
    request: Request,
    principal: Principal,
    *,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    user: Any = None,
) -> Response:
    return render(
        request,
        "console/user_form.html",
        {"form": form, "errors": errors or {}, "roles": _roles_for(principal), "user": user},
        status_code=status_code,
    )


@router.get("/users/new")
async def new_user_page(request: Request, principal: UsersWriter) -> Response:
    return _user_form(request, principal, form={"role": Role.OPERATOR.value})


@router.post("/users")
async def create_user(
    request: Request,
    session: DbSession,
    principal: UsersWriter,
    origin: Origin,
    email: Text = "",
    display_name: Text = "",
    role: Text = "",
    password: Secret = "",
) -> Response:
    try:
        user = await accounts.do_create_user(
            session, principal, email=email, display_name=display_name, role=role, password=password, origin=origin
        )
    except AppError as exc:
        await session.rollback()  # drop what the failed use case wrote
        typed = {"email": email, "display_name": display_name, "role": role}
        return _user_form(request, principal, form=typed, errors=_errors(request, exc), status_code=exc.status_code)
    return redirect_with_flash(request, "/console/users", tr(request, "User {email} was created.", email=user.email))


@router.get("/users/{user_id}")
async def edit_user_page(request: Request, session: DbSession, principal: UsersWriter, user_id: uuid.UUID) -> Response:
    user = await accounts.get_user(session, user_id)
    form = {"display_name": user.display_name, "role": user.role, "is_active": "1" if user.is_active else "0"}
    return _user_form(request, principal, form=form, user=user)


@router.post("/users/{user_id}")
async def update_user(
    request: Request,
    session: DbSession,
    principal: UsersWriter,
    origin: Origin,
    user_id: uuid.UUID,
    display_name: Text = "",
    role: Text = "",
    is_active: Text = "",
    password: Secret = "",
) -> Response:
    try:
        user = await accounts.do_update_user(
            session,
            principal,
            user_id,
            display_name=display_name or None,
            role=role or None,
            is_active={"1": True, "0": False}.get(is_active),
            password=password or None,
            origin=origin,
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        await session.rollback()  # drop what the failed use case wrote
        user = await accounts.get_user(session, user_id)
        typed = {"display_name": display_name, "role": role, "is_active": is_active}
        return _user_form(
            request, principal, form=typed, errors=_errors(request, exc), status_code=exc.status_code, user=user
        )
    return redirect_with_flash(request, "/console/users", tr(request, "User {email} was updated.", email=user.email))


# API tokens.


def _token_state(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= utcnow():
        return "expired"
    return "active"


@router.get("/tokens")
async def tokens_page(
    request: Request, session: DbSession, principal: TokensReader, page: int = 1, revoked: str = "1"
) -> Response:
    page = _page_number(page)
    include_revoked = revoked != "0"
    rows, total = await accounts.list_tokens(
        session, include_revoked=include_revoked, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    return render(
        request,
        "console/tokens.html",
        {
            "tokens": [(token, _token_state(token)) for token in rows],
            "total": total,
            "page": page,
            "per_page": PER_PAGE,
            "include_revoked": include_revoked,
            "can_write": principal.can(TOKENS_WRITE),
        },
    )


def _token_form(
    request: Request,
    principal: Principal,
    *,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    scopes = [PERMISSIONS[name] for name in sorted(principal.permissions) if name in PERMISSIONS]
    return render(
        request,
        "console/token_form.html",
        {"form": form, "errors": errors or {}, "scopes": scopes, "expiry_choices": TOKEN_EXPIRY_CHOICES},
        status_code=status_code,
    )


@router.get("/tokens/new")
async def new_token_page(request: Request, principal: TokensWriter) -> Response:
    return _token_form(request, principal, form={"scopes": [], "expires_in_days": ""})


@router.post("/tokens")
async def create_token(
    request: Request,
    session: DbSession,
    principal: TokensWriter,
    origin: Origin,
    name: Text = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    expires_in_days: Text = "",
) -> Response:
    chosen = [scope for scope in scopes or [] if scope]
    typed = {"name": name, "scopes": chosen, "expires_in_days": expires_in_days}
    try:
        days = int(expires_in_days) if expires_in_days.strip() else None
    except ValueError:
        days = -1  # refused by the service with its own message
    try:
        issued = await accounts.do_create_token(
            session, principal, name=name, scopes=chosen, expires_in_days=days, origin=origin
        )
    except AppError as exc:
        await session.rollback()  # drop what the failed use case wrote
        errors = _errors(request, exc)
        if exc.status_code == 403 and "scopes" in exc.data:
            errors = {"scopes": localize_error(request, exc)}
        return _token_form(request, principal, form=typed, errors=errors, status_code=exc.status_code)
    # The secret is shown on this response only; it is never stored and never put in a cookie or URL.
    response = render(request, "console/token_created.html", {"token": issued.token, "secret": issued.secret})
    response.headers["cache-control"] = "no-store"
    return response


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request, session: DbSession, principal: TokensWriter, origin: Origin, token_id: uuid.UUID
) -> Response:
    token = await accounts.do_revoke_token(session, principal, token_id, origin=origin)
    return redirect_with_flash(request, "/console/tokens", tr(request, "Token {name} was revoked.", name=token.name))
