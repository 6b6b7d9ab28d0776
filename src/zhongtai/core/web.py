"""FastAPI dependencies shared by every HTTP module: the unit of work, the caller, permissions, CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import tenancy
from zhongtai.core.accounts import authenticate_token
from zhongtai.core.audit import RequestOrigin
from zhongtai.core.consumers import authenticate_consumer
from zhongtai.core.crypto import constant_time_equals
from zhongtai.core.errors import CsrfFailed, PermissionDenied, RateLimited, Unauthenticated
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.runtime import Runtime
from zhongtai.core.signin import SESSION_COOKIE, resolve_session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

BearerResolver = Callable[[AsyncSession, str], Coroutine[Any, Any, Principal | None]]
# Bearer tokens of principals that modules own (e.g. `ztp_` for channel partners), by token prefix.
BEARER_RESOLVERS: dict[str, BearerResolver] = {}


def register_bearer_resolver(prefix: str, resolver: BearerResolver) -> None:
    """Let a module authenticate bearer tokens that start with `prefix` (such as "ztp_")."""
    BEARER_RESOLVERS[prefix] = resolver


CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


WRITES_ON_GET = "__zt_writes_on_get__"
F = TypeVar("F", bound=Callable[..., Any])


def writes_on_get(endpoint: F) -> F:
    """Mark a GET route that writes (the scan page records the scan; a pickup code is issued on
    first view): its requests get the unit of work instead of a read session."""
    setattr(endpoint, WRITES_ON_GET, True)
    return endpoint


def route_reads_only(request: Request) -> bool:
    """GET and HEAD read, unless their route is marked `writes_on_get`; every other method writes."""
    if request.method not in ("GET", "HEAD"):
        return False
    return not getattr(request.scope.get("endpoint"), WRITES_ON_GET, False)


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    runtime = get_runtime(request)
    if route_reads_only(request):
        async with runtime.db.read_session() as session:
            request.state.db = session
            yield session
        return
    async with runtime.db.unit_of_work() as session:
        request.state.db = session
        yield session


# The request's session, chosen by the route: a read session for GET/HEAD (no write lock on SQLite, a
# read-only transaction on PostgreSQL), the unit of work for everything else and for `writes_on_get`
# routes. scope="function": the commit happens before the response is sent, so a failed commit is an
# error response and never a success the client believes.
DbSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]


async def _read_only(request: Request) -> AsyncIterator[AsyncSession]:
    runtime = get_runtime(request)
    async with runtime.db.read_only() as session:
        request.state.db = session
        yield session


# For endpoints that only read append-only data (the Merkle log's proofs and heads): no transaction
# round trips on PostgreSQL (see `Database.read_only`). Never write through it.
ReadSession = Annotated[AsyncSession, Depends(_read_only, scope="function")]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_origin(request: Request) -> RequestOrigin:
    return RequestOrigin(ip=client_ip(request), user_agent=request.headers.get("user-agent"))


Origin = Annotated[RequestOrigin, Depends(request_origin)]


async def _check_csrf(request: Request, principal: Principal) -> None:
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not principal.csrf_token or not constant_time_equals(sent, principal.csrf_token):
        raise CsrfFailed()


async def _resolve_principal(request: Request, session: AsyncSession) -> Principal | None:
    runtime = get_runtime(request)
    authorization = request.headers.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    principal: Principal | None = None
    if scheme.lower() == "bearer" and credential:
        credential = credential.strip()
        resolver = next((r for prefix, r in BEARER_RESOLVERS.items() if credential.startswith(prefix)), None)
        if credential.startswith("ztc_"):
            principal = await authenticate_consumer(session, credential)
        elif resolver is not None:
            principal = await resolver(session, credential)
        else:
            principal = await authenticate_token(session, credential, ip=client_ip(request))
        if principal is None:
            raise Unauthenticated("The bearer token is unknown, revoked or expired.")
    elif cookie := request.cookies.get(SESSION_COOKIE):
        principal = await resolve_session(session, runtime.crypto.secret_key, cookie)
        if principal is not None:
            await _check_csrf(request, principal)
    if principal is not None:
        tenancy.scope_to_tenant(session, principal.tenant_id)
        request.state.principal = principal
    else:
        # Finding the caller widened the session to all tenants; nobody found must not keep that.
        tenancy.clear_scope(session)
    return principal


async def optional_principal(request: Request, session: DbSession) -> Principal | None:
    cached: Principal | None = getattr(request.state, "principal", None)
    return cached or await _resolve_principal(request, session)


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def current_principal(principal: MaybePrincipal) -> Principal:
    if principal is None:
        raise Unauthenticated()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency: the caller must be staff (operator or token) holding `permission`."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.is_staff:
            raise PermissionDenied("This needs an operator account or an API token.")
        if not principal.can(permission):
            raise PermissionDenied(f"This needs the permission '{permission}'.", permission=permission)
        return principal

    dependency.__name__ = f"require_{permission.replace('.', '_')}"
    return dependency


async def current_consumer(principal: CurrentPrincipal) -> Principal:
    if principal.kind is not PrincipalKind.CONSUMER:
        raise PermissionDenied("This needs a consumer sign-in.")
    return principal


CurrentConsumer = Annotated[Principal, Depends(current_consumer)]


class Page:
    """Paging parameters shared by list endpoints."""

    def __init__(
        self,
        page: Annotated[int, Query(ge=1, le=100_000, description="1-based page number")] = 1,
        per_page: Annotated[int, Query(ge=1, le=200, description="rows per page")] = 20,
    ) -> None:
        self.page = page
        self.per_page = per_page

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


PageDep = Annotated[Page, Depends()]


def rate_limit(bucket: str, *, limit: int, period: float, by: str = "ip") -> Callable[..., Coroutine[Any, Any, None]]:
    """Dependency: at most `limit` requests per `period` seconds per network address (`by="ip"`) or
    per signed-in caller (`by="principal"`, falling back to the address for anonymous callers)."""

    async def dependency(request: Request, runtime: RuntimeDep) -> None:
        subject = client_ip(request) or "unknown"
        if by == "principal":
            principal: Principal | None = getattr(request.state, "principal", None)
            subject = f"{principal.kind}:{principal.id}" if principal else subject
        decision = await runtime.limiter.hit(f"rl:{bucket}:{subject}", limit=limit, period=period)
        if not decision.allowed:
            raise RateLimited(retry_after=decision.retry_after)

    dependency.__name__ = f"rate_limit_{bucket}"
    return dependency
