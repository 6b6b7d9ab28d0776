"""OneID (members): linking identifiers to one member, deterministic merges with guard rails, the merge
log and its undo, survivorship of profile values, concurrency and the API — on both tiers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import Brand, bearer, console_login, make_brand, make_token, make_user, system_actor
from tests.members_factories import make_consumer
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.runtime import Runtime
from zhongtai.members import oneid
from zhongtai.members import oneid_rules as rules
from zhongtai.members.errors import CapReached, MergeRefused, UnmergeRefused
from zhongtai.members.models import Member, MemberIdentifier, MemberMerge
from zhongtai.members.oneid import IdentifierInput, ProfileInput

PHONE = "13800138000"
OTHER_PHONE = "13900139000"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def phone(value: str = PHONE, verified: bool = True) -> IdentifierInput:
    return IdentifierInput("phone", value, verified)


def ident(kind: str, value: str, verified: bool = True, app_id: str | None = None) -> IdentifierInput:
    return IdentifierInput(kind, value, verified, app_id)


async def link(
    runtime: Runtime,
    brand: Brand,
    *identifiers: IdentifierInput,
    profile: ProfileInput | None = None,
    source: str = "app",
    observed_at: datetime | None = None,
) -> oneid.Linked:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await oneid.do_link(
            session,
            system_actor(brand.id),
            runtime.crypto,
            identifiers=list(identifiers),
            profile=profile,
            source=source,
            reason="test",
            observed_at=observed_at,
        )


async def member_state(runtime: Runtime, brand: Brand, member_id: uuid.UUID) -> tuple[str, list[str]]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        member = await oneid.get_member(session, member_id)
        return member.status, [i.type for i in await oneid.identifiers_of(session, member_id)]


async def snapshot(runtime: Runtime, brand: Brand) -> dict[str, Any]:
    """Every column of every member and identifier of the brand."""
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        members = {
            m.id: {c.key: getattr(m, c.key) for c in Member.__table__.columns}
            for m in await session.scalars(select(Member))
        }
        identifiers = {
            i.id: {c.key: getattr(i, c.key) for c in MemberIdentifier.__table__.columns}
            for i in await session.scalars(select(MemberIdentifier))
        }
    return {"members": members, "identifiers": identifiers}


async def test_link_creates_attaches_and_merges(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    first = await link(runtime, brand, phone())
    assert first.is_new
    attached = await link(runtime, brand, phone(), ident("wechat_unionid", "union-1"))
    assert (attached.member.id, attached.is_new, attached.merged_member_ids) == (first.member.id, False, [])
    other = await link(runtime, brand, ident("wechat_openid", "open-1", app_id="wxapp"))
    assert other.is_new
    assert other.member.id != first.member.id
    merged = await link(
        runtime, brand, ident("wechat_unionid", "union-1"), ident("wechat_openid", "open-1", app_id="wxapp")
    )
    assert (merged.member.id, merged.merged_member_ids) == (first.member.id, [other.member.id])
    assert await member_state(runtime, brand, first.member.id) == (
        "active",
        ["phone", "wechat_unionid", "wechat_openid"],
    )
    assert await member_state(runtime, brand, other.member.id) == ("merged", [])
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        history = await oneid.merges_of(session, first.member.id)
        assert [(m.survivor_id, m.merged_id, m.actor_label) for m in history] == [
            (first.member.id, other.member.id, "test")
        ]


async def test_link_is_idempotent(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    consumer, _ = await make_consumer(runtime, brand)
    given = (phone(), ident("consumer_account", str(consumer.id)), ident("pos_member_no", "POS-1", verified=False))
    first = await link(runtime, brand, *given)
    again = await link(runtime, brand, *given)
    assert (again.member.id, again.is_new, again.skipped) == (first.member.id, False, [])
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(MemberIdentifier)) == 3
        assert await session.scalar(select(func.count()).select_from(Member)) == 1


async def test_brands_never_share_members(runtime: Runtime) -> None:
    one, two = await make_brand(runtime), await make_brand(runtime)
    a = await link(runtime, one, phone())
    b = await link(runtime, two, phone())
    assert a.member.id != b.member.id
    assert b.is_new
    async with runtime.db.read_session(tenant_id=one.id) as session:
        assert [m.id for m in await oneid.find_by_phone(session, runtime.crypto, PHONE)] == [a.member.id]


async def test_blocked_store_phone_never_merges(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await oneid.do_block_identifier(
            session, system_actor(brand.id), runtime.crypto, type="phone", value=PHONE, app_id=None, note="store"
        )
    seen = set()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for n in range(100):
            linked = await oneid.do_link(
                session,
                system_actor(brand.id),
                runtime.crypto,
                identifiers=[phone(), ident("pos_member_no", f"P{n}")],
                source="pos",
            )
            assert linked.merged_member_ids == []
            assert [(s.type, s.reason) for s in linked.skipped] == [("phone", "blocked")]
            seen.add(linked.member.id)
    assert len(seen) == 100
    # The marketplace hash of a blocked phone is blocked too, and a link of blocked values only is refused.
    with pytest.raises(ValidationFailed):
        await link(runtime, brand, ident("marketplace_phone_hash", oneid.marketplace_phone_hash(runtime.crypto, PHONE)))
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await oneid.find_by_phone(session, runtime.crypto, PHONE) == []


async def test_two_verified_phones_refuse_a_merge(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    a = await link(runtime, brand, phone())
    b = await link(runtime, brand, phone(OTHER_PHONE), ident("wechat_unionid", "union-2"))
    with pytest.raises(MergeRefused) as refused:
        await link(runtime, brand, phone(), ident("wechat_unionid", "union-2"))
    assert refused.value.status_code == 409
    assert refused.value.message == "These members have two different verified phones; review them instead of merging."
    assert (await member_state(runtime, brand, a.member.id))[0] == "active"
    assert (await member_state(runtime, brand, b.member.id))[0] == "active"
    # A second verified phone on one member is refused as well.
    with pytest.raises(CapReached):
        await link(runtime, brand, ident("wechat_unionid", "union-2"), phone("13700137000"))


async def test_caps_per_brand(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        caps = await oneid.do_set_caps(session, system_actor(brand.id), {"pos_member_no": 1})
    assert caps["pos_member_no"] == 1
    assert caps["phone"] == 1
    await link(runtime, brand, phone(), ident("pos_member_no", "A"))
    skipped = await link(runtime, brand, phone(), ident("pos_member_no", "B", verified=False))
    assert [(s.type, s.reason) for s in skipped.skipped] == [("pos_member_no", "cap_reached")]


async def test_unverified_identifier_never_merges(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    a = await link(runtime, brand, phone())
    b = await link(runtime, brand, ident("wechat_unionid", "union-3"))
    linked = await link(runtime, brand, phone(), ident("wechat_unionid", "union-3", verified=False))
    assert (linked.member.id, linked.merged_member_ids) == (a.member.id, [])
    assert [(s.type, s.reason) for s in linked.skipped] == [("wechat_unionid", "held_by_another_member")]
    assert await member_state(runtime, brand, b.member.id) == ("active", ["wechat_unionid"])
    # Unverified only: attaches to the one member holding it, creates nothing new.
    alone = await link(
        runtime, brand, ident("wechat_unionid", "union-3", verified=False), ident("jd_pin", "jd-1", False)
    )
    assert (alone.member.id, alone.is_new) == (b.member.id, False)


async def test_marketplace_hashed_phone_matches_the_phone(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    a = await link(runtime, brand, phone())
    hashed = oneid.marketplace_phone_hash(runtime.crypto, "+86 138 0013 8000")
    linked = await link(runtime, brand, ident("marketplace_phone_hash", hashed.upper()), ident("tmall_ouid", "ouid-1"))
    assert linked.member.id == a.member.id
    assert await member_state(runtime, brand, a.member.id) == (
        "active",
        ["phone", "marketplace_phone_hash", "tmall_ouid"],
    )
    # A member known only by a marketplace export is found by the phone and joined by it later.
    b = await link(
        runtime, brand, ident("marketplace_phone_hash", oneid.marketplace_phone_hash(runtime.crypto, OTHER_PHONE))
    )
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert [m.id for m in await oneid.find_by_phone(session, runtime.crypto, OTHER_PHONE)] == [b.member.id]
    assert (await link(runtime, brand, phone(OTHER_PHONE))).member.id == b.member.id


def entry(verified: bool, at: datetime, source: str) -> dict[str, Any]:
    return {"value": "x", "verified": verified, "at": at.isoformat(), "source": source}


def test_survivorship_rule() -> None:
    old, new = T0, T0 + timedelta(days=1)
    assert rules.beats(entry(True, old, "import"), entry(False, new, "console"))  # verified beats unverified
    assert not rules.beats(entry(False, new, "console"), entry(True, old, "import"))
    assert rules.beats(entry(False, new, "import"), entry(False, old, "console"))  # most recent among equals
    assert rules.beats(entry(True, old, "pos"), entry(True, old, "wechat"))  # tie: source priority
    assert not rules.beats(entry(True, old, "wechat"), entry(True, old, "pos"))
    assert not rules.beats(entry(True, old, "pos"), entry(True, old, "pos"))  # a full tie keeps what is there


async def test_profile_survivorship(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await link(runtime, brand, phone(), profile=ProfileInput(city="北京", name="张三"), source="wechat", observed_at=T0)
    await link(
        runtime,
        brand,
        phone(),
        profile=ProfileInput(city="上海", verified=True),
        source="import",
        observed_at=T0 - timedelta(days=9),
    )
    await link(
        runtime,
        brand,
        phone(),
        profile=ProfileInput(city="广州", gender="female"),
        source="console",
        observed_at=T0 + timedelta(days=9),
    )
    last = await link(
        runtime,
        brand,
        phone(),
        profile=ProfileInput(gender="male"),
        source="import",
        observed_at=T0 + timedelta(days=9),
    )
    profile = last.member.profile
    assert (profile["city"]["value"], profile["city"]["verified"]) == ("上海", True)  # verified beats newer
    assert profile["gender"]["value"] == "female"  # same time: console outranks import
    assert profile["name"]["masked"] == "张*"
    assert "张三" not in str(profile)
    with pytest.raises(ValidationFailed):
        await link(runtime, brand, phone(), profile=ProfileInput(birthday=date(2999, 1, 1)))


async def test_merge_and_unmerge_round_trip(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    a = await link(runtime, brand, phone(), profile=ProfileInput(city="北京", name="张三"), observed_at=T0)
    b = await link(
        runtime,
        brand,
        ident("wechat_unionid", "union-9"),
        ident("wechat_openid", "open-9", verified=False, app_id="wxapp"),
        profile=ProfileInput(city="上海", gender="male", birthday=date(1990, 5, 1)),
        source="wechat",
        observed_at=T0 + timedelta(days=3),
    )
    before = await snapshot(runtime, brand)
    merged = await link(
        runtime, brand, phone(), ident("wechat_unionid", "union-9"), observed_at=T0 - timedelta(days=30)
    )
    assert merged.merged_member_ids == [b.member.id]
    assert merged.member.profile["city"]["value"] == "上海"
    assert await snapshot(runtime, brand) != before
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        (merge,) = await oneid.merges_of(session, a.member.id)
        merge_id = merge.id
    token = await make_token(runtime, brand)
    undone = await client.post(
        f"/api/v1/members/merges/{merge_id}/undo", json={"reason": "two people"}, headers=bearer(token)
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["undone_by"]
    assert undone.json()["undo_reason"] == "two people"
    assert await snapshot(runtime, brand) == before
    again = await client.post(f"/api/v1/members/merges/{merge_id}/undo", json={"reason": "x"}, headers=bearer(token))
    assert again.status_code == 409


async def test_out_of_order_unmerge_is_refused(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    a = await link(runtime, brand, phone())
    b = await link(runtime, brand, ident("wechat_unionid", "u-b"))
    c = await link(runtime, brand, ident("alipay_user_id", "ali-c"))
    await link(runtime, brand, phone(), ident("wechat_unionid", "u-b"))
    await link(runtime, brand, phone(), ident("alipay_user_id", "ali-c"))
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        first, second = await oneid.merges_of(session, a.member.id)
        assert (first.merged_id, second.merged_id) == (b.member.id, c.member.id)
        first_id, second_id = first.id, second.id
    actor = system_actor(brand.id)
    with pytest.raises(UnmergeRefused) as refused:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await oneid.do_unmerge(session, actor, first_id, "wrong")
    assert refused.value.message == "A later merge builds on this one; undo the later merge first."
    for merge_id in (second_id, first_id):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            await oneid.do_unmerge(session, actor, merge_id, "wrong")
    for member, kinds in ((a, ["phone"]), (b, ["wechat_unionid"]), (c, ["alipay_user_id"])):
        assert await member_state(runtime, brand, member.member.id) == ("active", kinds)


async def test_concurrent_links_of_one_phone_make_one_member(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    results = await asyncio.gather(
        *(link(runtime, brand, phone(), ident("wechat_openid", f"open-{n}", app_id="wxapp")) for n in range(5))
    )
    assert len({r.member.id for r in results}) == 1
    assert sum(r.is_new for r in results) == 1
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(Member)) == 1
        assert await session.scalar(select(func.count()).select_from(MemberIdentifier)) == 6


async def test_concurrent_merges_touching_one_member(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    hub = await link(runtime, brand, phone())
    spokes = [await link(runtime, brand, ident("pos_member_no", f"S{n}")) for n in range(3)]
    results = await asyncio.gather(
        *(link(runtime, brand, phone(), ident("pos_member_no", f"S{n}")) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, oneid.Linked) and r.member.id == hub.member.id for r in results), results
    assert await member_state(runtime, brand, hub.member.id) == ("active", ["phone"] + ["pos_member_no"] * 3)
    for spoke in spokes:
        assert await member_state(runtime, brand, spoke.member.id) == ("merged", [])
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(MemberMerge)) == 3
        assert await session.scalar(select(func.count()).select_from(MemberIdentifier)) == 4


async def test_api_link_lookup_and_refusals(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    body = {
        "identifiers": [{"type": "phone", "value": PHONE, "verified": True}],
        "profile": {"name": "张三", "city": "北京"},
        "source": "pos",
    }
    first = await client.post("/api/v1/members/link", json=body, headers=bearer(token))
    assert first.status_code == 200, first.text
    again = await client.post("/api/v1/members/link", json=body, headers=bearer(token))
    member = again.json()["member"]
    assert (again.json()["is_new"], member["id"]) == (False, first.json()["member"]["id"])
    assert member["identifiers"][0]["value_masked"] == "138****8000"
    assert member["profile"]["name"]["value"] == "张*"
    for answer in (first, again):
        assert PHONE not in answer.text
        assert "张三" not in answer.text
    found = await client.get("/api/v1/members", params={"phone": f"+86{PHONE}"}, headers=bearer(token))
    assert [m["id"] for m in found.json()["items"]] == [member["id"]]
    shown = await client.get(f"/api/v1/members/{member['id']}", headers=bearer(token))
    assert shown.status_code == 200
    assert PHONE not in shown.text
    assert shown.json()["merges"] == []
    assert (await client.get(f"/api/v1/members/{uuid.uuid4()}", headers=bearer(token))).status_code == 404

    for bad, problem in (
        ({"type": "email", "value": "a@b.c"}, "Unknown identifier type 'email'"),
        ({"type": "phone", "value": "12345"}, "This phone number is not valid"),
        ({"type": "wechat_openid", "value": "o1"}, "A WeChat openid needs the app id"),
    ):
        refused = await client.post(
            "/api/v1/members/link", json={"identifiers": [bad], "source": "pos"}, headers=bearer(token)
        )
        assert refused.status_code == 422, refused.text
        assert problem in refused.json()["detail"]
    unknown_source = await client.post("/api/v1/members/link", json={**body, "source": "fax"}, headers=bearer(token))
    assert unknown_source.status_code == 422

    reader = await make_token(runtime, brand, scopes=["members.read"])
    assert (await client.post("/api/v1/members/link", json=body, headers=bearer(reader))).status_code == 403
    viewer = await make_user(runtime, brand, "viewer")
    csrf = await console_login(client, viewer.email)
    denied = await client.post("/api/v1/members/link", json=body, headers={"x-csrf-token": csrf})
    assert denied.status_code == 403
    assert "members.write" in denied.text


async def test_another_brand_cannot_see_or_undo(runtime: Runtime, client: httpx.AsyncClient) -> None:
    victim, attacker = await make_brand(runtime), await make_brand(runtime)
    a = await link(runtime, victim, phone())
    await link(runtime, victim, ident("wechat_unionid", "u-v"))
    merged = await link(runtime, victim, phone(), ident("wechat_unionid", "u-v"))
    async with runtime.db.read_session(tenant_id=victim.id) as session:
        (merge,) = await oneid.merges_of(session, a.member.id)
        merge_id = merge.id
    token = await make_token(runtime, attacker)
    shown = await client.get(f"/api/v1/members/{merged.member.id}", headers=bearer(token))
    assert shown.status_code == 404
    undo = await client.post(f"/api/v1/members/merges/{merge_id}/undo", json={"reason": "x"}, headers=bearer(token))
    assert undo.status_code == 404
    found = await client.get("/api/v1/members", params={"phone": PHONE}, headers=bearer(token))
    assert found.json()["items"] == []
    assert (await member_state(runtime, victim, a.member.id))[0] == "active"
