"""Probable duplicates (members): the Splink model's pairs, the review queue, merge, dismiss and undo
through the API, guard rails and races — on both tiers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import Brand, bearer, make_brand, make_token, system_actor
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.jobs import Worker
from zhongtai.core.runtime import Runtime
from zhongtai.members import duplicates, oneid
from zhongtai.members.duplicate_models import MemberDuplicateSuggestion
from zhongtai.members.errors import SuggestionClosed
from zhongtai.members.models import MemberMerge
from zhongtai.members.oneid import IdentifierInput, ProfileInput

BIRTHDAY = date(1988, 6, 15)


def record(
    uid: str, name: str | None, birthday: str | None, city: str | None, address: str | None = None
) -> dict[str, str | None]:
    return {"unique_id": uid, "name": name, "birthday": birthday, "city": city, "address": address}


def test_model_scores_the_pairs_a_person_would_review() -> None:
    ids = [str(uuid.UUID(int=n)) for n in range(1, 8)]
    records = [
        record(ids[0], "欧阳龙飞", "1988-06-15", "杭州", "西湖区文三路100号3单元502"),
        record(ids[1], "欧阳龙飞", "1988-06-15", "杭州", "西湖区文三路100号3单元502室"),  # same person, address similar
        record(ids[2], "王芳", "1988-06-15", "杭州", None),  # shares birthday and city only
        record(ids[3], "李静", None, "上海", "浦东新区世纪大道88号"),
        record(ids[4], "李静", None, "上海", "浦东新区世纪大道88号"),  # name, city, address: no birthday
        record(ids[5], "李静", None, "上海", None),  # name and city only: too little
        record(ids[6], "欧阳龙飞", "1988-06-15", "北京", None),  # moved: name and birthday, another city
    ]
    pairs = duplicates.score_pairs(records)
    found = {(str(p.a), str(p.b)): p for p in pairs}
    assert set(found) == {(ids[0], ids[1]), (ids[3], ids[4]), (ids[0], ids[6]), (ids[1], ids[6])}
    assert found[(ids[0], ids[1])].agreement == {
        "name": "exact",
        "birthday": "exact",
        "city": "exact",
        "address": "similar",
    }
    assert found[(ids[3], ids[4])].agreement == {
        "name": "exact",
        "birthday": "missing",
        "city": "exact",
        "address": "exact",
    }
    assert found[(ids[0], ids[6])].agreement["city"] == "different"
    assert all(p.probability >= duplicates.DEFAULT_THRESHOLD for p in pairs)
    assert [p.probability for p in pairs] == sorted((p.probability for p in pairs), reverse=True)
    assert pairs[0].probability > found[(ids[0], ids[6])].probability  # agreeing on the city counts
    assert duplicates.score_pairs(records[:1]) == []


async def member(runtime: Runtime, brand: Brand, identifier: IdentifierInput, **profile: object) -> uuid.UUID:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        linked = await oneid.do_link(
            session,
            system_actor(brand.id),
            runtime.crypto,
            identifiers=[identifier],
            profile=ProfileInput(**profile) if profile else None,  # type: ignore[arg-type]
            source="pos",
            reason="test",
        )
        return linked.member.id


async def scan(runtime: Runtime, brand: Brand) -> duplicates.ScanReport:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await duplicates.do_scan(session, runtime.crypto)


async def suggestions(runtime: Runtime, brand: Brand) -> dict[tuple[uuid.UUID, uuid.UUID], str]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        rows = await session.scalars(select(MemberDuplicateSuggestion))
        return {(s.member_a_id, s.member_b_id): s.status for s in rows}


async def same_person_twice(runtime: Runtime, brand: Brand) -> tuple[uuid.UUID, uuid.UUID]:
    first = await member(
        runtime,
        brand,
        IdentifierInput("pos_member_no", "P-1001", True),
        name="欧阳龙飞",
        birthday=BIRTHDAY,
        city="杭州",
    )
    second = await member(
        runtime,
        brand,
        IdentifierInput("tmall_ouid", "ouid-77", True),
        name="欧阳龙飞",
        birthday=BIRTHDAY,
        city="杭州",
        address="西湖区文三路100号",
    )
    return min(first, second), max(first, second)


async def test_scan_queues_pairs_and_keeps_decisions(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    pair = await same_person_twice(runtime, brand)
    other = await member(
        runtime, brand, IdentifierInput("jd_pin", "jd-5", True), name="王芳", birthday=BIRTHDAY, city="杭州"
    )
    await member(runtime, brand, IdentifierInput("jd_pin", "jd-6", True), city="杭州")  # too little to compare

    report = await scan(runtime, brand)
    assert (report.members_compared, report.pairs_found, report.new, report.updated, report.over_caps) == (
        3,
        1,
        1,
        0,
        0,
    )
    assert await suggestions(runtime, brand) == {pair: "open"}
    again = await scan(runtime, brand)
    assert (again.new, again.updated) == (0, 1)

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        (row,) = await session.scalars(select(MemberDuplicateSuggestion))
        await duplicates.do_dismiss(session, system_actor(brand.id), row.id, "two cousins")
    third = await scan(runtime, brand)
    assert (third.new, third.updated) == (0, 0)
    assert await suggestions(runtime, brand) == {pair: "dismissed"}
    assert other not in pair


async def test_pairs_a_merge_would_refuse_are_not_queued(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    for number in ("13800138000", "13900139000"):
        await member(
            runtime, brand, IdentifierInput("phone", number, True), name="张伟", birthday=BIRTHDAY, city="北京"
        )
    report = await scan(runtime, brand)
    assert (report.pairs_found, report.over_caps, report.new) == (0, 1, 0)
    assert await suggestions(runtime, brand) == {}


async def test_open_pair_goes_stale_when_a_member_is_merged_elsewhere(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    spoke = await member(runtime, brand, IdentifierInput("phone", "13700137000", True))  # the oldest member
    a, b = await same_person_twice(runtime, brand)
    await scan(runtime, brand)
    assert await suggestions(runtime, brand) == {(a, b): "open"}
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:  # the phone's owner signs in on Tmall
        linked = await oneid.do_link(
            session,
            system_actor(brand.id),
            runtime.crypto,
            identifiers=[IdentifierInput("phone", "13700137000", True), IdentifierInput("tmall_ouid", "ouid-77", True)],
            source="app",
        )
    assert linked.member.id == spoke
    absorbed = linked.merged_member_ids[0]
    assert absorbed in (a, b)
    report = await scan(runtime, brand)
    assert report.stale == 1
    found = await suggestions(runtime, brand)
    assert found[(a, b)] == "stale"
    assert found.get((min(a, b, key=lambda m: m == absorbed), spoke)) in (None, "open")


async def run_jobs(runtime: Runtime) -> None:
    worker = Worker(runtime.db)
    while await worker.run_once():
        pass


async def test_review_through_the_api(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    a, b = await same_person_twice(runtime, brand)
    token = await make_token(runtime, brand)
    queued = await client.post("/api/v1/members/duplicates/scan", json={}, headers=bearer(token))
    assert queued.status_code == 202, queued.text
    await run_jobs(runtime)

    listed = await client.get("/api/v1/members/duplicates", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert [m["id"] for m in item["members"]] == [str(a), str(b)]
    profiles = sorted((m["profile"] for m in item["members"]), key=len)
    assert profiles[0] == {"name": "欧***", "birthday": "1988-06-15", "city": "杭州"}
    assert profiles[1] == {
        "name": "欧***",
        "birthday": "1988-06-15",
        "city": "杭州",
        "address": "西湖区文三路***",
    }
    assert "欧阳龙飞" not in listed.text
    assert "100号" not in listed.text
    assert item["agreement"] == {"name": "exact", "birthday": "exact", "city": "exact", "address": "missing"}

    refused = await client.post(
        f"/api/v1/members/duplicates/{item['id']}/merge", json={"reason": " "}, headers=bearer(token)
    )
    assert refused.status_code == 422
    merged = await client.post(
        f"/api/v1/members/duplicates/{item['id']}/merge", json={"reason": "same card holder"}, headers=bearer(token)
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["suggestion"]["status"] == "merged"
    assert merged.json()["merge"]["survivor_id"] == str(a) or merged.json()["merge"]["survivor_id"] == str(b)
    survivor = uuid.UUID(merged.json()["merge"]["survivor_id"])
    absorbed = b if survivor == a else a
    shown = (await client.get(f"/api/v1/members/{absorbed}", headers=bearer(token))).json()
    assert (shown["status"], shown["merged_into_id"]) == ("merged", str(survivor))
    twice = await client.post(
        f"/api/v1/members/duplicates/{item['id']}/merge", json={"reason": "x"}, headers=bearer(token)
    )
    assert twice.status_code == 409
    assert twice.json()["error"] == "duplicate_suggestion_closed"

    undone = await client.post(
        f"/api/v1/members/duplicates/{item['id']}/undo", json={"reason": "two people"}, headers=bearer(token)
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["status"] == "dismissed"
    for member_id in (a, b):
        assert (await client.get(f"/api/v1/members/{member_id}", headers=bearer(token))).json()["status"] == "active"
    await client.post("/api/v1/members/duplicates/scan", json={}, headers=bearer(token))
    await run_jobs(runtime)
    assert await suggestions(runtime, brand) == {(a, b): "dismissed"}


async def test_readers_cannot_decide_and_other_brands_see_nothing(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand, stranger = await make_brand(runtime), await make_brand(runtime)
    await same_person_twice(runtime, brand)
    await scan(runtime, brand)
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        suggestion_id = await session.scalar(select(MemberDuplicateSuggestion.id))
    reader = await make_token(runtime, brand, scopes=["members.read"])
    assert (await client.get("/api/v1/members/duplicates", headers=bearer(reader))).json()["total"] == 1
    denied = await client.post(
        f"/api/v1/members/duplicates/{suggestion_id}/merge", json={"reason": "x"}, headers=bearer(reader)
    )
    assert denied.status_code == 403
    outsider = await make_token(runtime, stranger)
    assert (await client.get("/api/v1/members/duplicates", headers=bearer(outsider))).json()["total"] == 0
    hidden = await client.post(
        f"/api/v1/members/duplicates/{suggestion_id}/dismiss", json={"reason": "x"}, headers=bearer(outsider)
    )
    assert hidden.status_code == 404
    assert await suggestions(runtime, brand) != {}
    assert set((await suggestions(runtime, brand)).values()) == {"open"}


async def test_two_reviewers_merging_one_pair_at_once(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await same_person_twice(runtime, brand)
    await scan(runtime, brand)
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        suggestion_id = await session.scalar(select(MemberDuplicateSuggestion.id))

    async def decide(n: int) -> str:
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            if n % 2:
                await duplicates.do_dismiss(session, system_actor(brand.id), suggestion_id, "different")
                return "dismissed"
            await duplicates.do_merge(session, system_actor(brand.id), suggestion_id, "same")
            return "merged"

    results = await asyncio.gather(*(decide(n) for n in range(4)), return_exceptions=True)
    won = [r for r in results if isinstance(r, str)]
    assert len(won) == 1, results
    assert all(isinstance(r, SuggestionClosed) for r in results if not isinstance(r, str)), results
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        merges = await session.scalar(select(func.count()).select_from(MemberMerge))
    assert merges == (1 if won == ["merged"] else 0)
    assert set((await suggestions(runtime, brand)).values()) == set(won)


@pytest.mark.parametrize("threshold", [0.4, 1.0])
async def test_scan_threshold_is_checked(runtime: Runtime, threshold: float) -> None:
    brand = await make_brand(runtime)
    with pytest.raises(ValidationFailed, match="threshold"):
        await scan_with(runtime, brand, threshold)


async def scan_with(runtime: Runtime, brand: Brand, threshold: float) -> None:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await duplicates.do_scan(session, runtime.crypto, threshold=threshold)
