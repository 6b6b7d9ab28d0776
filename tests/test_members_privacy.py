"""A member's consents, the export of their data and erasure (PIPL) — on both tiers.

The erasure proof dumps every table of the database after erasing and looks for the phone (in every
written form), the name, the ID number and the phone's keyed hashes; the ledger and the trace log must
be exactly as they were.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from tests.factories import Brand, bearer, console_login, make_brand, make_token, make_user, system_actor
from tests.ledger_factories import make_books
from tests.members_factories import adult_id, make_consumer, verify_consumer
from zhongtai.core.consumers import PHONE_PURPOSE as CONSUMER_PHONE_PURPOSE
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.models import AuditEvent, Consumer
from zhongtai.core.runtime import Runtime
from zhongtai.ledger import service as ledger
from zhongtai.ledger.service import EntryDraft, Line
from zhongtai.members import consent, oneid, privacy
from zhongtai.members import oneid_rules as rules
from zhongtai.members.errors import ConsentMissing
from zhongtai.members.oneid import IdentifierInput, ProfileInput
from zhongtai.members.service import ID_PURPOSE
from zhongtai.trace import log as trace_log

NATIONAL = "13812345678"
E164 = f"+86{NATIONAL}"
NAME = "欧阳龙飞"
DISPLAY_NAME = "欧阳小飞"


async def link(runtime: Runtime, brand: Brand, *identifiers: IdentifierInput, name: str | None = None) -> oneid.Linked:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await oneid.do_link(
            session,
            system_actor(brand.id),
            runtime.crypto,
            identifiers=list(identifiers),
            profile=ProfileInput(name=name, city="杭州", verified=True) if name else None,
            source="app",
            reason="test",
        )


async def set_consent(
    runtime: Runtime, brand: Brand, member_id: uuid.UUID, purpose: str, granted: bool, version: str = "v1"
) -> None:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await consent.do_set_consent(
            session,
            system_actor(brand.id),
            member_id,
            purpose,
            granted=granted,
            source="console",
            text_version=version,
        )


# --- consent ---------------------------------------------------------------------------------------


async def test_consent_is_the_latest_decision_and_no_record_is_no_consent(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    member = (await link(runtime, brand, IdentifierInput("phone", NATIONAL, True))).member
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await consent.has_consent(session, member.id, "marketing_messages") is False
        with pytest.raises(ConsentMissing) as refused:
            await consent.require_consent(session, member.id, "marketing_messages")
        assert refused.value.status_code == 403
        assert refused.value.code == "consent_missing"
        with pytest.raises(ValidationFailed, match="Unknown consent purpose 'newsletter'"):
            await consent.has_consent(session, member.id, "newsletter")

    await set_consent(runtime, brand, member.id, "marketing_messages", True, "v1")
    await set_consent(runtime, brand, member.id, "marketing_messages", True, "v1")  # the same again: nothing new
    await set_consent(runtime, brand, member.id, "marketing_messages", False, "v1")
    await set_consent(runtime, brand, member.id, "profiling", True, "v1")
    await set_consent(runtime, brand, member.id, "marketing_messages", True, "v2")
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        history = await consent.history(session, member.id, consent.Purpose.MARKETING_MESSAGES)
        assert [(c.granted, c.text_version) for c in history] == [(True, "v1"), (False, "v1"), (True, "v2")]
        assert [c.recorded_at for c in history] == sorted(c.recorded_at for c in history)
        assert await consent.has_consent(session, member.id, "marketing_messages") is True
        assert await consent.has_consent(session, member.id, "profiling") is True
        assert await consent.has_consent(session, member.id, "share_with_channel") is False
        await consent.require_consent(session, member.id, "profiling")
    with pytest.raises(ValidationFailed, match="Unknown consent source"):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await consent.do_set_consent(
                session, system_actor(brand.id), member.id, "profiling", granted=True, source="fax", text_version="v1"
            )


async def test_consent_api_for_staff_and_the_member(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    consumer, consumer_token = await make_consumer(runtime, brand)
    member = (await link(runtime, brand, IdentifierInput("consumer_account", str(consumer.id), True))).member
    token = await make_token(runtime, brand)
    url = f"/api/v1/members/{member.id}/consents"

    granted = await client.put(
        f"{url}/share_with_channel", json={"granted": True, "text_version": "2026-01"}, headers=bearer(token)
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["granted"] is True
    unknown = await client.put(
        f"{url}/telemarketing", json={"granted": True, "text_version": "1"}, headers=bearer(token)
    )
    assert unknown.status_code == 422
    assert "Unknown consent purpose 'telemarketing'" in unknown.json()["detail"]

    # The member withdraws it themselves, then grants marketing messages.
    mine = "/api/v1/consumer/members/me/consents"
    withdrawn = await client.put(
        f"{mine}/share_with_channel", json={"granted": False, "text_version": "2026-01"}, headers=bearer(consumer_token)
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert (withdrawn.json()["granted"], withdrawn.json()["source"]) == (False, "h5")
    await client.put(
        f"{mine}/marketing_messages", json={"granted": True, "text_version": "m1"}, headers=bearer(consumer_token)
    )
    shown = await client.get(f"{mine}/marketing_messages", headers=bearer(consumer_token))
    assert shown.json()["granted"] is True
    assert (await client.get(f"{mine}/nope", headers=bearer(consumer_token))).status_code == 422

    listed = await client.get(url, headers=bearer(token))
    assert listed.status_code == 200
    current = {c["purpose"]: c["granted"] for c in listed.json()["current"]}
    assert current == {"marketing_messages": True, "profiling": False, "share_with_channel": False}
    history = [(c["purpose"], c["granted"], c["source"]) for c in listed.json()["history"]]
    assert history == [
        ("share_with_channel", True, "console"),
        ("share_with_channel", False, "h5"),
        ("marketing_messages", True, "h5"),
    ]

    # A consumer with no member yet: no consent; setting one creates their member.
    _, newcomer = await make_consumer(runtime, brand)
    assert (await client.get(f"{mine}/profiling", headers=bearer(newcomer))).json()["granted"] is False
    created = await client.put(
        f"{mine}/profiling", json={"granted": True, "text_version": "p1"}, headers=bearer(newcomer)
    )
    assert created.status_code == 200, created.text

    # Refusals: a members.read token and a viewer cannot set consent; staff tokens are not the member.
    reader = await make_token(runtime, brand, scopes=["members.read"])
    body = {"granted": True, "text_version": "x"}
    assert (await client.put(f"{url}/profiling", json=body, headers=bearer(reader))).status_code == 403
    viewer = await make_user(runtime, brand, "viewer")
    csrf = await console_login(client, viewer.email)
    denied = await client.put(f"{url}/profiling", json=body, headers={"x-csrf-token": csrf})
    assert denied.status_code == 403
    assert (await client.get(f"{mine}/profiling", headers=bearer(token))).status_code == 403


# --- export ----------------------------------------------------------------------------------------


async def test_export_needs_the_export_permission_and_is_audited(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    consumer, consumer_token = await make_consumer(runtime, brand, E164)
    id_number = adult_id(7)
    await verify_consumer(runtime, brand, consumer.id, id_number, name=NAME)
    member = (
        await link(
            runtime,
            brand,
            IdentifierInput("phone", NATIONAL, True),
            IdentifierInput("consumer_account", str(consumer.id), True),
            IdentifierInput("wechat_unionid", "union-123456789", True),
            name=DISPLAY_NAME,
        )
    ).member
    await set_consent(runtime, brand, member.id, "profiling", True)
    owner = await make_token(runtime, brand)

    exported = await client.get(f"/api/v1/members/{member.id}/export", headers=bearer(owner))
    assert exported.status_code == 200, exported.text
    data = exported.json()
    assert data["profile"]["name"]["value"] == DISPLAY_NAME
    phone = next(i for i in data["identifiers"] if i["type"] == "phone")
    assert phone["value"] == E164
    unionid = next(i for i in data["identifiers"] if i["type"] == "wechat_unionid")
    assert (unionid["value"], unionid["value_masked"]) == (None, "unio****6789")
    assert [c["purpose"] for c in data["consents"]["history"]] == ["profiling"]
    (identity,) = data["identities"]
    assert identity["id_masked"] == id_number[:4] + "*" * 10 + id_number[-4:]
    assert id_number not in exported.text
    assert NAME not in exported.text

    mine = await client.get("/api/v1/consumer/members/me/export", headers=bearer(consumer_token))
    assert mine.status_code == 200, mine.text
    assert mine.json()["profile"]["name"]["value"] == DISPLAY_NAME
    assert E164 in mine.text
    assert mine.json()["identities"][0]["name_masked"] == NAME[0] + "***"

    async with runtime.db.read_session(tenant_id=brand.id) as session:
        audited = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "members.exported")))
        assert sorted(e.data["requested_by"] for e in audited) == ["member", "staff"]
        assert all(NATIONAL[-4:] not in e.actor_label for e in audited)

    reader = await make_token(runtime, brand, scopes=["members.read", "members.write"])
    assert (await client.get(f"/api/v1/members/{member.id}/export", headers=bearer(reader))).status_code == 403
    for role in ("viewer", "operator"):
        user = await make_user(runtime, brand, role)
        async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as console:  # type: ignore[attr-defined]
            await console_login(console, user.email)
            denied = await console.get(f"/api/v1/members/{member.id}/export")
            assert denied.status_code == 403, role
            assert "members.export" in denied.text
    _, stranger = await make_consumer(runtime, brand)
    assert (await client.get("/api/v1/consumer/members/me/export", headers=bearer(stranger))).status_code == 404


# --- erasure ---------------------------------------------------------------------------------------


def _texts(value: Any) -> list[str]:
    """The text forms of a stored value: itself, and JSON re-written without escapes."""
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return [raw.hex(), raw.decode("utf-8", "replace")]
    if isinstance(value, (dict, list)):
        return [json.dumps(value, ensure_ascii=False, default=str)]
    out = [str(value)]
    if isinstance(value, str) and value[:1] in "[{":
        with contextlib.suppress(ValueError):
            out.append(json.dumps(json.loads(value), ensure_ascii=False))
    return out


async def dump(runtime: Runtime) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table of the database, as text."""
    async with runtime.db.engine.connect() as conn:
        if runtime.db.dialect == "postgresql":
            names = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                    )
                )
            ).scalars()
        else:
            names = (await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))).scalars()
        tables: dict[str, list[tuple[str, ...]]] = {}
        for name in sorted(str(n) for n in names):
            query = text(f'SELECT * FROM "{name}"')  # noqa: S608 (names from the database's own catalogue)
            rows = (await conn.execute(query)).all()
            tables[name] = sorted(tuple("\x1f".join(_texts(v)) for v in row) for row in rows)
    assert len(tables) > 40, "the dump must see the whole database"
    return tables


def _kept(tables: dict[str, list[tuple[str, ...]]]) -> dict[str, list[tuple[str, ...]]]:
    return {name: rows for name, rows in tables.items() if name.startswith(("ledger_", "trace_"))}


async def test_erasure_leaves_no_personal_data_and_keeps_the_books(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    consumer, consumer_token = await make_consumer(runtime, brand, E164)
    id_number = adult_id(42)
    await verify_consumer(runtime, brand, consumer.id, id_number, name=NAME)
    identity = await client.get("/api/v1/consumer/identity", headers=bearer(consumer_token))
    assert identity.status_code == 200, identity.text
    # Two members of one person, merged by a verified unionid; the phone and the account on the first.
    first = await link(
        runtime,
        brand,
        IdentifierInput("phone", NATIONAL, True),
        IdentifierInput("consumer_account", str(consumer.id), True),
        name=DISPLAY_NAME,
    )
    second = await link(
        runtime,
        brand,
        IdentifierInput("wechat_unionid", "union-erase-1", True),
        IdentifierInput("pos_member_no", "P-77"),
    )
    merged = await link(
        runtime, brand, IdentifierInput("phone", E164, True), IdentifierInput("wechat_unionid", "union-erase-1", True)
    )
    assert merged.merged_member_ids == [second.member.id]
    await set_consent(runtime, brand, first.member.id, "marketing_messages", True)
    await set_consent(runtime, brand, first.member.id, "share_with_channel", True)
    # Money and trace data that must survive untouched.
    books = await make_books(runtime, brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await ledger.post(session, EntryDraft("reward:1", "reward", [Line(books.pool, -100), Line(books.wallet, 100)]))
        await trace_log.append(session, brand.id, [b"ni:///sha-256;" + b"ab" * 32])

    crypto = runtime.crypto
    hashes = {
        crypto.lookup_hash(E164, purpose=rules.PHONE_PURPOSE),
        crypto.lookup_hash(E164, purpose=CONSUMER_PHONE_PURPOSE),
        crypto.lookup_hash(id_number, purpose=ID_PURPOSE),
    }
    before = await dump(runtime)
    everything = "\n".join("\t".join(row) for rows in before.values() for row in rows)
    assert all(h in everything for h in hashes), "the dump sees the keyed hashes before erasure"

    owner = await make_token(runtime, brand)
    erased = await client.post(
        f"/api/v1/members/{second.member.id}/erase", json={"reason": "request 2026-118"}, headers=bearer(owner)
    )
    assert erased.status_code == 200, erased.text
    assert erased.json()["is_new"] is True
    assert erased.json()["member_id"] == str(first.member.id)  # the person: the member the other was merged into
    summary = erased.json()["summary"]
    assert (summary["identities_removed"], summary["consumer_accounts_erased"]) == (1, 1)
    assert summary["identifiers_removed"] == 4
    assert summary["consents_withdrawn"] == 2

    after = await dump(runtime)
    everything = "\n".join("\t".join(row) for rows in after.values() for row in rows)
    spaced = f"{NATIONAL[:3]} {NATIONAL[3:7]} {NATIONAL[7:]}"
    dashed = spaced.replace(" ", "-")
    for secret in (E164, E164[1:], NATIONAL, spaced, dashed, NAME, DISPLAY_NAME, id_number, id_number[6:14]):
        assert secret not in everything, f"{secret!r} survived erasure"
    for digest in hashes:
        assert digest not in everything, "a keyed hash survived erasure"
    assert _kept(after) == _kept(before), "the ledger and the trace log are untouched"
    assert sum(len(rows) for rows in _kept(after).values()) >= 8

    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await oneid.find_by_phone(session, crypto, NATIONAL) == []
        for one in (first.member.id, second.member.id):
            member = await oneid.get_member(session, one)
            assert (member.status, member.profile) == ("erased", {})
        assert await consent.has_consent(session, first.member.id, "marketing_messages") is False
        account = await session.scalar(select(Consumer).where(Consumer.id == consumer.id))
        assert account is not None
        assert not account.is_active
        assert account.phone_masked == "erased"
        (event,) = await session.scalars(select(AuditEvent).where(AuditEvent.action == "members.erased"))
        assert event.data["reason"] == "request 2026-118"
    assert (await client.get("/api/v1/consumer/identity", headers=bearer(consumer_token))).status_code == 401

    again = await client.post(
        f"/api/v1/members/{first.member.id}/erase", json={"reason": "again"}, headers=bearer(owner)
    )
    assert again.status_code == 200
    assert again.json()["is_new"] is False
    assert again.json()["erased_at"] == erased.json()["erased_at"]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        repeat = await privacy.do_erase(session, system_actor(brand.id), first.member.id, "third", crypto=crypto)
        assert repeat.is_new is False
    assert _kept(await dump(runtime)) == _kept(before)
    shown = await client.get(f"/api/v1/members/{first.member.id}", headers=bearer(owner))
    assert (shown.json()["status"], shown.json()["identifiers"], shown.json()["profile"]) == ("erased", [], {})


async def test_a_member_erases_themselves(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    consumer, token = await make_consumer(runtime, brand, E164)
    id_number = adult_id(9)
    await verify_consumer(runtime, brand, consumer.id, id_number, name=NAME)
    await client.put(
        "/api/v1/consumer/members/me/consents/profiling",
        json={"granted": True, "text_version": "p1"},
        headers=bearer(token),
    )
    erased = await client.post("/api/v1/consumer/members/me/erase", json={}, headers=bearer(token))
    assert erased.status_code == 200, erased.text
    assert (erased.json()["requested_by"], erased.json()["is_new"]) == ("member", True)
    assert NATIONAL[-4:] not in erased.json()["actor_label"]
    assert erased.json()["summary"]["identities_removed"] == 1
    assert (await client.get("/api/v1/consumer/members/me/export", headers=bearer(token))).status_code == 401
    tables = await dump(runtime)
    everything = "\n".join("\t".join(row) for rows in tables.values() for row in rows)
    for secret in (E164, NATIONAL, NAME, id_number, runtime.crypto.lookup_hash(E164, purpose=CONSUMER_PHONE_PURPOSE)):
        assert secret not in everything
    # Signing in again with the same phone is a new account with no identity.
    newcomer, new_token = await make_consumer(runtime, brand, E164)
    assert newcomer.id != consumer.id
    assert (await client.get("/api/v1/consumer/identity", headers=bearer(new_token))).status_code == 404


async def test_erasure_permissions_and_another_brand(runtime: Runtime, client: httpx.AsyncClient) -> None:
    victim, attacker = await make_brand(runtime), await make_brand(runtime)
    member = (await link(runtime, victim, IdentifierInput("phone", NATIONAL, True), name=DISPLAY_NAME)).member
    await set_consent(runtime, victim, member.id, "profiling", True)

    operator = await make_token(runtime, victim, scopes=["members.read", "members.write"])
    refused = await client.post(f"/api/v1/members/{member.id}/erase", json={"reason": "x"}, headers=bearer(operator))
    assert refused.status_code == 403
    assert "members.erase" in refused.text
    viewer = await make_user(runtime, victim, "viewer")
    csrf = await console_login(client, viewer.email)
    assert (
        await client.post(f"/api/v1/members/{member.id}/erase", json={"reason": "x"}, headers={"x-csrf-token": csrf})
    ).status_code == 403
    assert (
        await client.put(
            f"/api/v1/members/{member.id}/consents/profiling",
            json={"granted": False, "text_version": "x"},
            headers={"x-csrf-token": csrf},
        )
    ).status_code == 403
    assert (await client.get(f"/api/v1/members/{member.id}/export")).status_code == 403

    foreign = await make_token(runtime, attacker)
    for method, path, body in (
        ("GET", f"/api/v1/members/{member.id}/export", None),
        ("GET", f"/api/v1/members/{member.id}/consents", None),
        ("PUT", f"/api/v1/members/{member.id}/consents/profiling", {"granted": False, "text_version": "x"}),
        ("POST", f"/api/v1/members/{member.id}/erase", {"reason": "hijacked"}),
    ):
        answer = await client.request(method, path, json=body, headers=bearer(foreign))
        assert answer.status_code == 404, (method, path, answer.text)
    async with runtime.db.read_session(tenant_id=victim.id) as session:
        assert (await oneid.get_member(session, member.id)).status == "active"
        assert await consent.has_consent(session, member.id, "profiling") is True
        assert [m.id for m in await oneid.find_by_phone(session, runtime.crypto, NATIONAL)] == [member.id]
