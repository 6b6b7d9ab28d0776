"""`core.sql`: one dialect-aware INSERT … ON CONFLICT for both tiers."""

from __future__ import annotations

import sqlalchemy as sa

from zhongtai.core import sql
from zhongtai.core.runtime import Runtime

metadata = sa.MetaData()
counters = sa.Table(
    "test_sql_counters",
    metadata,
    sa.Column("name", sa.String(20), primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Column("note", sa.String(20), nullable=False, server_default=""),
)


async def _rows(runtime: Runtime) -> list[tuple[str, int, str]]:
    async with runtime.db.unit_of_work() as session:
        rows = await session.execute(sa.select(counters).order_by(counters.c.name))
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_insert_ignore_and_upsert_behave_the_same_on_both_tiers(runtime: Runtime, tier: str) -> None:
    async with runtime.db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with runtime.db.unit_of_work() as session:
        assert sql.is_postgres(session) is (tier == "postgres")
        first = await session.execute(
            sql.insert_ignore(session, counters, "name").values(name="a", hits=1).returning(counters.c.name)
        )
        assert first.scalars().all() == ["a"]
        again = await session.execute(
            sql.insert_ignore(session, counters).values(name="a", hits=99).returning(counters.c.name)
        )
        assert again.scalars().all() == []  # the conflict skipped the row, the first value stays
        bump = sql.upsert(session, counters, ("name",), {"hits": counters.c.hits + 1})
        await session.execute(bump.values(name="a", hits=1))
        await session.execute(bump.values(name="b", hits=1))
        guarded = sql.upsert(
            session,
            counters,
            ("name",),
            {"note": sql.insert(session, counters).excluded.note},
            where=counters.c.hits > 1,
        )
        await session.execute(guarded.values(name="a", hits=0, note="kept"))
        await session.execute(guarded.values(name="b", hits=0, note="refused"))
    assert await _rows(runtime) == [("a", 2, "kept"), ("b", 1, "")]
