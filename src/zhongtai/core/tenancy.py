"""Tenant isolation enforced by the session itself, so that forgetting it is hard.

Every ORM model that inherits `TenantOwned` carries `tenant_id`. A session is scoped either to one
tenant (`scope_to_tenant`) — then every ORM SELECT, UPDATE and DELETE gets `tenant_id = :tenant`
added, and every new row gets the tenant filled in (a row of another tenant is refused) — or
explicitly to all tenants (`scope_all_tenants`) for platform work. An unscoped session that touches a
tenant-owned table raises `UnscopedTenantQuery`: the guard fails closed.

Core SQL (`text()`, `insert(table)`) is not rewritten: repositories that use it filter by tenant
themselves and say so.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import ForeignKey, TableClause, event
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.sql import visitors

from zhongtai.core.errors import CrossTenantAccess

_SCOPE_KEY = "zt_tenant_scope"
ALL_TENANTS = "*"


class UnscopedTenantQuery(CrossTenantAccess):
    pass


class TenantOwned:
    """Mixin for every row that belongs to one tenant (brand)."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"), index=True, nullable=False)


def scope_to_tenant(session: Session | Any, tenant_id: uuid.UUID) -> None:
    target = getattr(session, "sync_session", session)
    target.info[_SCOPE_KEY] = tenant_id


def scope_all_tenants(session: Session | Any) -> None:
    target = getattr(session, "sync_session", session)
    target.info[_SCOPE_KEY] = ALL_TENANTS


def clear_scope(session: Session | Any) -> None:
    target = getattr(session, "sync_session", session)
    target.info.pop(_SCOPE_KEY, None)


def current_scope(session: Session | Any) -> uuid.UUID | str | None:
    target = getattr(session, "sync_session", session)
    scope: uuid.UUID | str | None = target.info.get(_SCOPE_KEY)
    return scope


def _tenant_owned_table_names() -> set[str]:
    names: set[str] = set()
    pending: list[type] = list(TenantOwned.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        table = getattr(cls, "__table__", None)
        if table is not None:
            names.add(table.name)
    return names


def _touches_tenant_owned(state: ORMExecuteState) -> bool:
    if any(issubclass(mapper.class_, TenantOwned) for mapper in state.all_mappers):
        return True
    # all_mappers sees only the top-level entities; a join, a subquery or `select_from()` can reach a
    # tenant-owned table too, so look at every table in the statement.
    names = _tenant_owned_table_names()
    return any(
        isinstance(element, TableClause) and element.name in names
        for element in visitors.iterate(cast(visitors.ExternallyTraversible, state.statement))
    )


@event.listens_for(Session, "do_orm_execute")
def _scope_orm_execute(state: ORMExecuteState) -> None:
    scope = state.session.info.get(_SCOPE_KEY)
    if scope is None:
        if _touches_tenant_owned(state):
            raise UnscopedTenantQuery("query on a tenant-owned table from a session with no tenant scope")
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if scope == ALL_TENANTS:
        return
    tenant_id = scope
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantOwned,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _check_tenant_on_flush(session: Session, _context: Any, _instances: Any) -> None:
    scope = session.info.get(_SCOPE_KEY)
    new = set(session.new)  # session.new builds a fresh set on every access
    for obj in [*new, *session.dirty, *session.deleted]:
        if not isinstance(obj, TenantOwned):
            continue
        if scope is None:
            raise UnscopedTenantQuery(f"write of {type(obj).__name__} from a session with no tenant scope")
        if scope == ALL_TENANTS:
            if obj.tenant_id is None:
                raise UnscopedTenantQuery(f"{type(obj).__name__} needs a tenant_id")
            continue
        if obj in new and obj.tenant_id is None:
            obj.tenant_id = scope
        elif obj.tenant_id != scope:
            raise CrossTenantAccess(f"{type(obj).__name__} of another tenant in a tenant-scoped session")
