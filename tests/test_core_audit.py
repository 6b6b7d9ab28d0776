"""The audit log (core/audit.py): every operator write through the API, and append-only storage."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from tests.factories import PASSWORD, bearer, console_login, make_brand, make_platform_admin, make_token
from zhongtai.core import accounts
from zhongtai.core.models import PLATFORM_TENANT_ID, AuditEvent, OutboxJob, Tenant, User
from zhongtai.core.runtime import Runtime

UA = {"user-agent": "audit-test/1.0"}


async def _events(runtime: Runtime, tenant_id: uuid.UUID) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        return list(await session.scalars(select(AuditEvent).order_by(AuditEvent.created_at, AuditEvent.id)))


async def _dead_job(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        job = OutboxJob(topic="test.audit", payload={}, status="dead", attempts=8)
        session.add(job)
        await session.flush()
        return job.id


async def test_every_operator_write_is_audited(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    csrf = await console_login(client, brand.owner.email)
    session_events = len(await _events(runtime, brand.id))  # auth.login
    counter = iter(range(1, 100))

    async def call(method: str, url: str, json: Any = None) -> httpx.Response:
        request_id = f"req-{next(counter)}"
        headers = {"x-csrf-token": csrf, "x-request-id": request_id, **UA}
        response = await client.request(method, url, json=json, headers=headers)
        assert response.status_code < 300, response.text
        assert response.headers["x-request-id"] == request_id
        return response

    user = (
        await call(
            "POST",
            "/api/v1/users",
            {"email": "new@x.example", "display_name": "New", "role": "viewer", "password": PASSWORD},
        )
    ).json()
    await call("PATCH", f"/api/v1/users/{user['id']}", {"role": "auditor", "display_name": "Renamed"})
    token = (await call("POST", "/api/v1/tokens", {"name": "erp", "scopes": ["users.read"]})).json()
    await call("DELETE", f"/api/v1/tokens/{token['id']}")
    retry_job, cancel_job = await _dead_job(runtime, brand.id), await _dead_job(runtime, brand.id)
    await call("POST", f"/api/v1/jobs/{retry_job}/retry")
    await call("POST", f"/api/v1/jobs/{cancel_job}/cancel")

    events = (await _events(runtime, brand.id))[session_events:]
    assert [(e.action, e.target_type, e.target_id, e.request_id) for e in events] == [
        ("user.create", "user", user["id"], "req-1"),
        ("user.update", "user", user["id"], "req-2"),
        ("token.create", "api_token", token["id"], "req-3"),
        ("token.revoke", "api_token", token["id"], "req-4"),
        ("job.retry", "job", str(retry_job), "req-5"),
        ("job.cancel", "job", str(cancel_job), "req-6"),
    ]
    for event in events:
        assert (event.actor_kind, event.actor_id, event.actor_label) == ("operator", brand.owner.id, brand.owner.email)
        assert (event.ip, event.user_agent, event.tenant_id) == ("10.1.2.3", "audit-test/1.0", brand.id)
    assert events[0].data == {"email": "new@x.example", "role": "viewer"}
    assert events[1].data == {
        "email": "new@x.example",
        "display_name": "Renamed",
        "role": {"from": "viewer", "to": "auditor"},
    }
    assert events[2].data == {"name": "erp", "scopes": ["users.read"]}

    # The log is readable through the API, newest first, and filterable.
    listed = await client.get("/api/v1/audit-events", params={"action": "token."})
    assert listed.status_code == 200
    assert [(e["action"], e["request_id"], e["ip"]) for e in listed.json()["items"]] == [
        ("token.revoke", "req-4", "10.1.2.3"),
        ("token.create", "req-3", "10.1.2.3"),
    ]
    # Failed writes leave no event.
    refused = await client.post(
        "/api/v1/users",
        json={"email": "new@x.example", "display_name": "Dup", "role": "viewer", "password": PASSWORD},
        headers={"x-csrf-token": csrf},
    )
    assert refused.status_code == 409
    assert len(await _events(runtime, brand.id)) == session_events + len(events)


async def test_token_and_platform_writes_are_audited(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand, ["users.write"])
    created = await client.post(
        "/api/v1/users",
        json={"email": "via-token@x.example", "display_name": "T", "role": "viewer", "password": PASSWORD},
        headers={**bearer(token), "x-request-id": "tok-1"},
    )
    assert created.status_code == 201
    [event] = [e for e in await _events(runtime, brand.id) if e.action == "user.create"]
    assert (event.actor_kind, event.actor_label, event.request_id, event.ip) == (
        "token",
        "token:test token",
        "tok-1",
        "10.1.2.3",
    )

    admin = await make_platform_admin(runtime)
    platform_token = await _platform_token(runtime, admin.id)
    made = await client.post(
        "/api/v1/platform/tenants",
        json={"slug": "new-brand", "name": "New", "owner_email": "o@new.example", "owner_password": PASSWORD},
        headers=bearer(platform_token),
    )
    assert made.status_code == 201, made.text
    tenant_id = made.json()["tenant"]["id"]
    assert (
        await client.post(f"/api/v1/platform/tenants/{tenant_id}/suspend", headers=bearer(platform_token))
    ).is_success
    assert (
        await client.post(f"/api/v1/platform/tenants/{tenant_id}/activate", headers=bearer(platform_token))
    ).is_success
    platform_events = [e for e in await _events(runtime, PLATFORM_TENANT_ID) if e.action.startswith("tenant.")]
    assert [(e.action, e.target_id, e.ip) for e in platform_events] == [
        ("tenant.create", tenant_id, "10.1.2.3"),
        ("tenant.suspend", tenant_id, "10.1.2.3"),
        ("tenant.activate", tenant_id, "10.1.2.3"),
    ]
    assert all(e.request_id for e in platform_events)
    assert len({e.request_id for e in platform_events}) == 3


async def _platform_token(runtime: Runtime, admin_id: uuid.UUID) -> str:
    async with runtime.db.unit_of_work(tenant_id=PLATFORM_TENANT_ID) as session:
        user = await session.get(User, admin_id)
        tenant = await session.get(Tenant, PLATFORM_TENANT_ID)
        assert user is not None
        assert tenant is not None
        actor = accounts.operator_principal(user, tenant)
        issued = await accounts.do_create_token(session, actor, name="platform", scopes=["platform.tenants"])
    return issued.secret


async def test_audit_events_cannot_be_changed_or_deleted(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    [event] = await _events(runtime, brand.id)
    assert event.action == "token.create"
    statements: list[Any] = [
        text("UPDATE audit_events SET action = 'forged'"),
        text("DELETE FROM audit_events"),
        update(AuditEvent).values(actor_label="someone else"),
        delete(AuditEvent).where(AuditEvent.id == event.id),
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
                await session.execute(statement)

    async def change_through_the_orm() -> None:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            row = await session.get(AuditEvent, event.id)
            assert row is not None
            row.data = {"rewritten": True}

    with pytest.raises(DBAPIError, match="append-only"):
        await change_through_the_orm()
    [unchanged] = await _events(runtime, brand.id)
    assert (unchanged.id, unchanged.action, unchanged.actor_label, unchanged.data) == (
        event.id,
        event.action,
        event.actor_label,
        event.data,
    )
    # Inserts still work.
    assert (await client.get("/api/v1/audit-events", headers=bearer(token))).json()["total"] == 1
