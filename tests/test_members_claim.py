"""Bottles checked before signing in become the member's: the claim from the member centre — points
once per bottle, only the device's own checks, only the brand's codes — and a signed-in check that
earns at once. Both tiers."""

from __future__ import annotations

import httpx

from tests.factories import bearer, system_actor
from tests.members_factories import make_consumer
from tests.test_authenticity_scan import GTIN, Scene, scene, settle, verify
from zhongtai.app import create_app
from zhongtai.core.runtime import Runtime
from zhongtai.members import loyalty, oneid, points, privacy
from zhongtai.members.loyalty import ProgramDraft, RuleDraft
from zhongtai.members.loyalty_rules import TierDraft

SCAN_POINTS = 10


def device(runtime: Runtime, cookie: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime=runtime), client=("10.1.2.3", 4444))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies={"zt_cid": cookie})


async def loyalty_rules(runtime: Runtime, found: Scene) -> None:
    brand = found.line.brand
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await loyalty.do_set_rules(session, system_actor(brand.id), [RuleDraft("scan", SCAN_POINTS)])
        await loyalty.do_save_program(
            session,
            system_actor(brand.id),
            ProgramDraft("MAIN", "会员计划", [TierDraft("silver", "银卡", 0), TierDraft("gold", "金卡", 15)]),
        )


async def balance(runtime: Runtime, found: Scene, consumer_id: object) -> int:
    async with runtime.db.read_session(tenant_id=found.line.brand.id) as session:
        member = await privacy.member_for_consumer(session, runtime.crypto, consumer_id)  # type: ignore[arg-type]
        return 0 if member is None else await points.balance_of(session, member.id)


async def test_claim_earns_once_for_this_devices_checks(client: httpx.AsyncClient, runtime: Runtime) -> None:
    found = await scene(client, runtime)
    await loyalty_rules(runtime, found)
    first, second, third = found.items[:3]
    consumer, token = await make_consumer(runtime, found.line.brand)
    async with device(runtime, "phone-a") as phone, device(runtime, "phone-b") as other:
        assert (await verify(phone, first, found.pins[first])).json()["verdict"] == "genuine"
        assert (await verify(other, second, found.pins[second])).json()["verdict"] == "genuine"
        await settle(runtime)

        claimed = await phone.post(
            "/api/v1/consumer/members/me/claim",
            json={"codes": [found.path(first), found.path(second), "/01/09506000134352/21/NOSUCH", "junk"]},
            headers=bearer(token),
        )
        assert claimed.status_code == 200, claimed.text
        assert claimed.json() == {"scans": 1, "points": SCAN_POINTS, "red_packets": 0, "red_packet_fen": 0}
        again = await phone.post(
            "/api/v1/consumer/members/me/claim", json={"codes": [found.path(first)]}, headers=bearer(token)
        )
        assert again.json()["scans"] == 0
        assert again.json()["points"] == 0
        assert await balance(runtime, found, consumer.id) == SCAN_POINTS

        # Signed in on the scan page: the check is the member's at once and earns through the event.
        signed = await phone.post(
            "/api/v1/authenticity/verify",
            json={"code": found.path(third), "pin": found.pins[third]},
            headers=bearer(token),
        )
        assert signed.json()["verdict"] == "genuine"
        await settle(runtime)
        assert await balance(runtime, found, consumer.id) == 2 * SCAN_POINTS

        bottles = await phone.get("/api/v1/consumer/members/me/bottles", headers=bearer(token))
        assert sorted(b["serial"] for b in bottles.json()["items"]) == sorted([first, third])
        tiers = await phone.get("/api/v1/consumer/members/me/memberships", headers=bearer(token))
        assert [(m["program_code"], m["tier_code"]) for m in tiers.json()] == [("MAIN", "gold")]
        me = await phone.get("/api/v1/consumer/members/me", headers=bearer(token))
        assert me.json()["is_member"] is True
        assert [i["type"] for i in me.json()["identifiers"]] == ["phone", "consumer_account"]


async def test_claim_refuses_bad_input_and_strangers(client: httpx.AsyncClient, runtime: Runtime) -> None:
    found = await scene(client, runtime)
    _, token = await make_consumer(runtime, found.line.brand)
    empty = await client.post("/api/v1/consumer/members/me/claim", json={"codes": []}, headers=bearer(token))
    assert empty.status_code == 422
    many = await client.post(
        "/api/v1/consumer/members/me/claim",
        json={"codes": [f"/01/{GTIN}/21/X{n}" for n in range(21)]},
        headers=bearer(token),
    )
    assert many.status_code == 422
    anonymous = await client.post("/api/v1/consumer/members/me/claim", json={"codes": [found.path(found.items[0])]})
    assert anonymous.status_code == 401


async def test_member_edits_their_profile_and_a_verified_value_stays(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    found = await scene(client, runtime)
    brand = found.line.brand
    consumer, token = await make_consumer(runtime, brand)
    edited = await client.put(
        "/api/v1/consumer/members/me/profile",
        json={"name": "欧阳龙飞", "city": "杭州", "gender": "male", "address": "西湖区文三路100号"},
        headers=bearer(token),
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["profile"] == {"name": "欧***", "city": "杭州", "gender": "male", "address": "西湖区文三路***"}
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:  # a store verifies the city
        await oneid.do_link(
            session,
            system_actor(brand.id),
            runtime.crypto,
            identifiers=[oneid.IdentifierInput("consumer_account", str(consumer.id), True)],
            profile=oneid.ProfileInput(city="宁波", verified=True),
            source="pos",
        )
    again = await client.put("/api/v1/consumer/members/me/profile", json={"city": "上海"}, headers=bearer(token))
    assert again.json()["profile"]["city"] == "宁波"
    bad = await client.put("/api/v1/consumer/members/me/profile", json={"gender": "robot"}, headers=bearer(token))
    assert bad.status_code == 422
    assert "Gender" in bad.json()["detail"]


async def test_signing_in_joins_the_member_who_has_the_phone(client: httpx.AsyncClient, runtime: Runtime) -> None:
    found = await scene(client, runtime)
    brand = found.line.brand
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:  # a store enrolled them at the counter
        crm = await oneid.do_link(
            session,
            system_actor(brand.id),
            runtime.crypto,
            identifiers=[
                oneid.IdentifierInput("phone", "13812340000", True),
                oneid.IdentifierInput("pos_member_no", "C-1", True),
            ],
            source="pos",
        )
    consumer, token = await make_consumer(runtime, brand, phone="+8613812340000")
    me = await client.put("/api/v1/consumer/members/me/profile", json={"city": "杭州"}, headers=bearer(token))
    assert me.status_code == 200, me.text
    assert sorted(i["type"] for i in me.json()["identifiers"]) == ["consumer_account", "phone", "pos_member_no"]
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        member = await privacy.member_for_consumer(session, runtime.crypto, consumer.id)
        assert member is not None
        assert member.id == crm.member.id
