"""The session-level tenancy guard (core/tenancy.py) on both tiers."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import aliased

from tests.factories import Brand, make_brand, make_user
from zhongtai.core import tenancy
from zhongtai.core.errors import CrossTenantAccess
from zhongtai.core.models import ApiToken, SandboxMessage, Tenant, User
from zhongtai.core.runtime import Runtime
from zhongtai.core.tenancy import UnscopedTenantQuery


async def _two_brands(runtime: Runtime) -> tuple[Brand, Brand]:
    first, second = await make_brand(runtime, "tenant-a"), await make_brand(runtime, "tenant-b")
    await make_user(runtime, first, "operator", "op@tenant-a.example")
    await make_user(runtime, second, "viewer", "viewer@tenant-b.example")
    return first, second


async def _emails_of(runtime: Runtime, tenant: Brand) -> list[str]:
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        rows = await session.scalars(select(User.email).where(User.tenant_id == tenant.id).order_by(User.email))
        return list(rows)


async def test_scoped_select_sees_only_own_rows(runtime: Runtime) -> None:
    first, second = await _two_brands(runtime)
    async with runtime.db.unit_of_work(tenant_id=first.id) as session:
        emails = sorted(await session.scalars(select(User.email)))
        assert emails == ["op@tenant-a.example", "owner@tenant-a.example"]
        # Filters, counts, aliases and joins are all scoped.
        assert await session.scalar(select(User).where(User.email == "viewer@tenant-b.example")) is None
        assert await session.scalar(select(func.count()).select_from(User)) == 2
        assert await session.scalar(select(func.count(User.id))) == 2
        other = aliased(User)
        joined = await session.execute(select(User.email, other.email).join(other, other.role != User.role))
        assert sorted(joined.all()) == [
            ("op@tenant-a.example", "owner@tenant-a.example"),
            ("owner@tenant-a.example", "op@tenant-a.example"),
        ]
        via_tenant = await session.scalars(select(User.email).join(Tenant, Tenant.id == User.tenant_id))
        assert sorted(via_tenant) == ["op@tenant-a.example", "owner@tenant-a.example"]
        in_subquery = await session.scalars(
            select(Tenant.slug).where(Tenant.id.in_(select(User.tenant_id).where(User.email.like("%b.example"))))
        )
        assert list(in_subquery) == []
        # get() of another tenant's primary key finds nothing.
        assert await session.get(User, second.owner.id) is None
        assert (await session.get(User, first.owner.id)) is not None


async def test_scoped_update_and_delete_do_not_reach_other_tenant(runtime: Runtime) -> None:
    first, second = await _two_brands(runtime)
    async with runtime.db.unit_of_work(tenant_id=first.id) as session:
        changed = await session.execute(update(User).where(User.id == second.owner.id).values(display_name="hijacked"))
        assert changed.rowcount == 0  # type: ignore[attr-defined]
        everyone = await session.execute(update(User).values(locale="en"))
        assert everyone.rowcount == 2  # type: ignore[attr-defined]
        removed = await session.execute(delete(SandboxMessage))
        assert removed.rowcount == 0  # type: ignore[attr-defined]
        gone = await session.execute(delete(User).where(User.id == second.owner.id))
        assert gone.rowcount == 0  # type: ignore[attr-defined]
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        rows = {u.email: (u.display_name, u.locale) for u in await session.scalars(select(User))}
    assert rows["owner@tenant-b.example"] == ("owner", None)
    assert rows["viewer@tenant-b.example"][1] is None
    assert rows["owner@tenant-a.example"][1] == "en"
    assert rows["op@tenant-a.example"][1] == "en"


async def test_new_rows_get_the_scope_tenant(runtime: Runtime) -> None:
    first, _second = await _two_brands(runtime)
    async with runtime.db.unit_of_work(tenant_id=first.id) as session:
        message = SandboxMessage(channel="sms", recipient="138****5678", body="hello")
        session.add(message)
        await session.flush()
        assert message.tenant_id == first.id
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        stored = await session.scalars(select(SandboxMessage.tenant_id))
        assert list(stored) == [first.id]


async def test_writing_another_tenants_row_raises(runtime: Runtime) -> None:
    first, second = await _two_brands(runtime)
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        foreign = await session.get(User, second.owner.id)
        assert foreign is not None

    async def plant_row() -> None:
        async with runtime.db.unit_of_work(tenant_id=first.id) as session:
            session.add(SandboxMessage(tenant_id=second.id, channel="sms", recipient="x", body="planted"))
            await session.flush()

    async def move_own_row() -> None:
        async with runtime.db.unit_of_work(tenant_id=first.id) as session:
            own = await session.get(User, first.owner.id)
            assert own is not None
            own.tenant_id = second.id
            await session.flush()

    async def change_merged_row() -> None:
        # A row of another tenant loaded elsewhere and brought into this session is refused too.
        async with runtime.db.unit_of_work(tenant_id=first.id) as session:
            attached = await session.merge(foreign)
            attached.display_name = "changed from tenant a"
            await session.flush()

    async def delete_foreign_row() -> None:
        async with runtime.db.unit_of_work(tenant_id=first.id) as session:
            session.add(foreign)
            await session.delete(foreign)
            await session.flush()

    for attempt in (plant_row, move_own_row, change_merged_row, delete_foreign_row):
        with pytest.raises(CrossTenantAccess):
            await attempt()
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        assert await session.scalar(select(func.count()).select_from(SandboxMessage)) == 0
        owner_b = await session.get(User, second.owner.id)
        assert owner_b is not None
        assert owner_b.display_name == "owner"
        assert owner_b.tenant_id == second.id
        owner_a = await session.get(User, first.owner.id)
        assert owner_a is not None
        assert owner_a.tenant_id == first.id


async def test_unscoped_session_refuses_tenant_owned_tables(runtime: Runtime) -> None:
    first, _second = await _two_brands(runtime)
    attempts = [
        select(User),
        select(User.email),
        select(func.count()).select_from(User),
        select(Tenant).join(User, User.tenant_id == Tenant.id),
        select(Tenant.slug).where(Tenant.id.in_(select(ApiToken.tenant_id))),
        update(User).values(locale="en"),
        delete(SandboxMessage),
        insert(SandboxMessage).values(tenant_id=first.id, channel="sms", recipient="x", body="y"),
    ]
    for statement in attempts:
        with pytest.raises(UnscopedTenantQuery):
            async with runtime.db.unit_of_work() as session:
                await session.execute(statement)
    with pytest.raises(UnscopedTenantQuery):
        async with runtime.db.unit_of_work() as session:
            await session.get(User, first.owner.id)

    async def add_row() -> None:
        async with runtime.db.unit_of_work() as session:
            session.add(SandboxMessage(tenant_id=first.id, channel="sms", recipient="x", body="y"))
            await session.flush()

    with pytest.raises(UnscopedTenantQuery):
        await add_row()
    # Tables that belong to no tenant stay readable.
    async with runtime.db.unit_of_work() as session:
        slugs = sorted(await session.scalars(select(Tenant.slug)))
    assert slugs == ["platform", "tenant-a", "tenant-b"]
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        assert await session.scalar(select(func.count()).select_from(SandboxMessage)) == 0
        assert await session.scalar(select(func.count()).where(User.locale.is_not(None))) == 0


async def test_criteria_follow_the_current_tenant_not_a_cached_one(runtime: Runtime) -> None:
    first, second = await _two_brands(runtime)
    expected = {
        first.id: ["op@tenant-a.example", "owner@tenant-a.example"],
        second.id: ["owner@tenant-b.example", "viewer@tenant-b.example"],
    }
    order = [first, second] * 6
    # A fresh session per iteration: the compiled statement is cached, the tenant must not be.
    for brand in order:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            assert sorted(await session.scalars(select(User.email))) == expected[brand.id]
            assert await session.scalar(select(func.count()).select_from(User)) == 2
            assert await session.get(User, brand.owner.id) is not None
    # One session re-scoped between statements.
    async with runtime.db.unit_of_work(tenant_id=first.id) as session:
        for brand in order:
            tenancy.scope_to_tenant(session, brand.id)
            assert sorted(await session.scalars(select(User.email))) == expected[brand.id]
            updated = await session.execute(update(User).where(User.role == "owner").values(locale=brand.tenant.slug))
            assert updated.rowcount == 1  # type: ignore[attr-defined]
    assert await _emails_of(runtime, first) == expected[first.id]
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        locales = dict((await session.execute(select(User.email, User.locale).where(User.role == "owner"))).all())
    assert locales == {"owner@tenant-a.example": "tenant-a", "owner@tenant-b.example": "tenant-b"}
