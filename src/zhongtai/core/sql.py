"""Dialect-aware SQL helpers: the one place that chooses between PostgreSQL's and SQLite's `INSERT … ON
CONFLICT` (both databases speak it; SQLAlchemy gives each dialect its own `insert` construct).

    await session.execute(insert_ignore(session, DiversionAlert, "tenant_id", "source_ref").values(...))
    await session.execute(upsert(session, table, ("code_id",), {"view_count": table.c.view_count + 1}))

Call sites never branch on the dialect for an insert; code that must (statements sent straight to
asyncpg on hot paths) asks `is_postgres`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Insert: TypeAlias = PgInsert | SqliteInsert
Bindable: TypeAlias = AsyncSession | AsyncConnection | str


def dialect_name(bind: Bindable) -> str:
    """ "postgresql" or "sqlite" for a session, a connection or a dialect name."""
    if isinstance(bind, str):
        return bind
    if isinstance(bind, AsyncSession):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def is_postgres(bind: Bindable) -> bool:
    return dialect_name(bind) == "postgresql"


def insert(bind: Bindable, table: Any) -> Insert:
    """`INSERT` of the bind's dialect, which knows `on_conflict_do_nothing/do_update` and `excluded`."""
    return pg_insert(table) if is_postgres(bind) else sqlite_insert(table)


def insert_ignore(bind: Bindable, table: Any, *conflict: Any) -> Insert:
    """`INSERT … ON CONFLICT [(conflict…)] DO NOTHING`: with no columns, any unique constraint."""
    return insert(bind, table).on_conflict_do_nothing(index_elements=list(conflict) or None)


def upsert(
    bind: Bindable,
    table: Any,
    conflict: Sequence[Any],
    set_: Mapping[Any, Any],
    *,
    where: ColumnElement[bool] | None = None,
) -> Insert:
    """`INSERT … ON CONFLICT (conflict…) DO UPDATE SET set_ [WHERE where]`."""
    return insert(bind, table).on_conflict_do_update(index_elements=list(conflict), set_=dict(set_), where=where)


def in_values(bind: Bindable, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN (values…)`; on PostgreSQL `column = ANY(:array)`: one parameter whatever the count, so
    the statement is prepared once and planned fast for thousands of values."""
    if is_postgres(bind):
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(values)  # type: ignore[no-any-return]
