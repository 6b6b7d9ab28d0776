"""Console pages of segments and lifecycle: the live count fragment, saving, refresh, export and the
funnel's figures — on both tiers."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date

import httpx
from sqlalchemy import select

from tests.factories import Brand, console_login, make_brand, make_user, system_actor
from zhongtai.core.runtime import Runtime
from zhongtai.members import facts, oneid, segments
from zhongtai.members.oneid import IdentifierInput, ProfileInput
from zhongtai.members.segment_models import MemberSegment

HTML = {"accept": "text/html"}
FUNNEL = re.compile(r'<script type="application/json" id="funnel-data">(.*?)</script>', re.S)


async def members(runtime: Runtime, brand: Brand, cities: list[str]) -> list[uuid.UUID]:
    ids = []
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for n, city in enumerate(cities):
            linked = await oneid.do_link(
                session,
                system_actor(brand.id),
                runtime.crypto,
                identifiers=[IdentifierInput("pos_member_no", f"P{n}", True)],
                profile=ProfileInput(name=f"会员{n}", city=city, birthday=date(1990, 1, 1 + n)),
                source="pos",
            )
            ids.append(linked.member.id)
        await facts.do_sync_facts(session, brand.id)
    return ids


async def test_builder_counts_saves_refreshes_and_exports(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    ids = await members(runtime, brand, ["杭州", "杭州", "上海"])
    user = await make_user(runtime, brand, "admin")
    csrf = await console_login(client, user.email)

    page = await client.get("/console/members/segments", headers=HTML)
    assert page.status_code == 200
    match = FUNNEL.search(page.text)
    assert match
    funnel = {row["stage"]: row["value"] for row in json.loads(match.group(1))}
    assert funnel["new"] == 3
    assert sum(funnel.values()) == 3

    counted = await client.post(
        "/console/members/segments/preview",
        data={"expression": 'city == "杭州"'},
        headers={**HTML, "x-csrf-token": csrf},
    )
    assert counted.status_code == 200
    assert '<strong id="preview-count">2</strong>' in counted.text
    assert "会员0" not in counted.text  # names masked
    refused = await client.post(
        "/console/members/segments/preview",
        data={"expression": "city.size() > 2"},
        headers={**HTML, "x-csrf-token": csrf},
    )
    assert 'id="preview-error"' in refused.text

    saved = await client.post(
        "/console/members/segments",
        data={"csrf_token": csrf, "name": "杭州会员", "expression": 'city == "杭州"'},
        headers=HTML,
    )
    assert saved.status_code == 303
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        segment = await session.scalar(select(MemberSegment))
        assert segment is not None
        assert (segment.name, segment.member_count) == ("杭州会员", 2)
        segment_id = segment.id
    listing = await client.get("/console/members/segments", headers=HTML)
    assert f"segment-{segment_id}" in listing.text

    exported = await client.get(f"/console/members/segments/{segment_id}/export.csv", headers=HTML)
    assert exported.status_code == 200
    assert sorted(exported.text.split()[1:]) == sorted(str(m) for m in ids[:2])

    refreshed = await client.post(
        f"/console/members/segments/{segment_id}/refresh", data={"csrf_token": csrf}, headers=HTML
    )
    assert refreshed.status_code == 303
    deleted = await client.post(
        f"/console/members/segments/{segment_id}/delete", data={"csrf_token": csrf}, headers=HTML
    )
    assert deleted.status_code == 303
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        assert await session.scalar(select(MemberSegment)) is None


async def test_readers_cannot_save_or_export(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    await members(runtime, brand, ["杭州"])
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        segment = await segments.do_create_segment(session, brand.id, "all", "scans >= 0")
        segment_id = segment.id
    auditor = await make_user(runtime, brand, "auditor")
    csrf = await console_login(client, auditor.email)
    page = await client.get("/console/members/segments", headers=HTML)
    assert page.status_code == 200
    assert "/refresh" not in page.text
    assert "export.csv" not in page.text
    denied = await client.post(
        "/console/members/segments", data={"csrf_token": csrf, "name": "x", "expression": "scans >= 0"}, headers=HTML
    )
    assert denied.status_code == 403
    assert (await client.get(f"/console/members/segments/{segment_id}/export.csv", headers=HTML)).status_code == 403
