"""Console pages of members: search by phone, the 360 view (masked, with scans, orders and red
packets), the duplicate review queue with merge, dismiss and undo through forms — on both tiers."""

from __future__ import annotations

import re
import uuid
from datetime import date

import httpx
from sqlalchemy import select

from tests.factories import Brand, console_login, make_brand, make_user, system_actor
from tests.members_factories import make_consumer
from tests.sales_factories import make_order
from zhongtai.authenticity.models import Scan
from zhongtai.core.runtime import Runtime
from zhongtai.members import duplicates, oneid
from zhongtai.members.duplicate_models import MemberDuplicateSuggestion
from zhongtai.members.oneid import IdentifierInput, ProfileInput

HTML = {"accept": "text/html"}
PHONE = "13812345678"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def link(runtime: Runtime, brand: Brand, *ids: IdentifierInput, profile: ProfileInput | None = None) -> uuid.UUID:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        linked = await oneid.do_link(
            session, system_actor(brand.id), runtime.crypto, identifiers=list(ids), profile=profile, source="pos"
        )
        return linked.member.id


async def signed_in(client: httpx.AsyncClient, runtime: Runtime, brand: Brand, role: str = "admin") -> str:
    user = await make_user(runtime, brand, role)
    return await console_login(client, user.email)


async def test_search_and_the_360_view(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    consumer, _ = await make_consumer(runtime, brand)
    member_id = await link(
        runtime,
        brand,
        IdentifierInput("phone", PHONE, True),
        IdentifierInput("consumer_account", str(consumer.id), True),
        profile=ProfileInput(name="欧阳龙飞", city="杭州", address="西湖区文三路100号", birthday=date(1988, 6, 15)),
    )
    other = await link(runtime, brand, IdentifierInput("jd_pin", "jd-1", True))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        session.add(
            Scan(
                code_id=7,
                serial="SERIAL0007",
                kind="pin_ok",
                verdict="genuine",
                consumer_id=consumer.id,
                city_name="杭州市",
            )
        )
        session.add(Scan(code_id=8, serial="SERIAL0008", kind="pin_ok", verdict="genuine"))  # anonymous: not theirs
    order = await make_order(runtime, brand, consumer_id=consumer.id, unit_price_fen=149_900)
    await make_order(runtime, brand)  # someone else's

    await signed_in(client, runtime, brand)
    listing = await client.get("/console/members", headers=HTML)
    assert listing.status_code == 200
    assert str(member_id)[-8:] in listing.text
    assert str(other)[-8:] in listing.text
    found = await client.get("/console/members", params={"phone": "+86 138-1234-5678"}, headers=HTML)
    assert str(member_id)[-8:] in found.text
    assert str(other)[-8:] not in found.text
    nobody = await client.get("/console/members", params={"phone": "13900000000"}, headers=HTML)
    assert "没有会员使用此手机号" in nobody.text
    bad = await client.get("/console/members", params={"phone": "12"}, headers=HTML)
    assert bad.status_code == 200
    assert 'class="flash error"' in bad.text

    page = await client.get(f"/console/members/{member_id}", headers=HTML)
    assert page.status_code == 200
    text = page.text
    for secret in ("欧阳龙飞", PHONE, "100号"):
        assert secret not in text
    assert "欧***" in text
    assert "西湖区文三路***" in text
    assert "138****5678" in text
    assert "SERIAL0007" in text
    assert "SERIAL0008" not in text
    assert order.order_no in text
    assert "¥1,499.00" in text
    assert (await client.get(f"/console/members/{uuid.uuid4()}", headers=HTML)).status_code == 404


async def test_review_queue_merge_and_undo_through_forms(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    same = ProfileInput(name="欧阳龙飞", city="杭州", birthday=date(1988, 6, 15))
    a = await link(runtime, brand, IdentifierInput("pos_member_no", "P1", True), profile=same)
    b = await link(runtime, brand, IdentifierInput("tmall_ouid", "T1", True), profile=same)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await duplicates.do_scan(session, runtime.crypto)
        suggestion_id = await session.scalar(select(MemberDuplicateSuggestion.id))

    auditor_client = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")  # type: ignore[attr-defined]
    async with auditor_client:
        csrf = await signed_in(auditor_client, runtime, brand, "auditor")
        queue = await auditor_client.get("/console/members/duplicates", headers=HTML)
        assert queue.status_code == 200
        assert f"suggestion-{suggestion_id}" in queue.text
        assert "/merge" not in queue.text  # readers see the queue, not the buttons
        refused = await auditor_client.post(
            f"/console/members/duplicates/{suggestion_id}/merge", data={"csrf_token": csrf, "reason": "x"}, headers=HTML
        )
        assert refused.status_code == 403

    csrf = await signed_in(client, runtime, brand)
    queue = await client.get("/console/members/duplicates", headers=HTML)
    assert "欧***" in queue.text
    assert "欧阳龙飞" not in queue.text
    blank = await client.post(
        f"/console/members/duplicates/{suggestion_id}/merge", data={"csrf_token": csrf, "reason": " "}, headers=HTML
    )
    assert blank.status_code == 303
    assert blank.headers["location"] == "/console/members/duplicates"
    merged = await client.post(
        f"/console/members/duplicates/{suggestion_id}/merge",
        data={"csrf_token": csrf, "reason": "same POS card holder"},
        headers=HTML,
    )
    assert merged.status_code == 303
    survivor = uuid.UUID(merged.headers["location"].rsplit("/", 1)[1])
    assert survivor in (a, b)
    absorbed = b if survivor == a else a
    page = await client.get(f"/console/members/{survivor}", headers=HTML)
    assert "same POS card holder" in page.text
    assert str(absorbed)[-8:] in page.text
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert (await oneid.get_member(session, absorbed)).status == "merged"

    undone = await client.post(
        f"/console/members/duplicates/{suggestion_id}/undo",
        data={"csrf_token": csrf, "reason": "two people"},
        headers=HTML,
    )
    assert undone.status_code == 303
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert (await oneid.get_member(session, absorbed)).status == "active"
        row = await session.get(MemberDuplicateSuggestion, suggestion_id)
        assert row is not None
        assert (row.status, row.note) == ("dismissed", "merge undone: two people")
    dismissed = await client.get("/console/members/duplicates", params={"status": "dismissed"}, headers=HTML)
    assert f"suggestion-{suggestion_id}" in dismissed.text
    assert CSRF.search(dismissed.text)
