"""Set-based OneID resolution (`members.bulk.resolve_links`) on both tiers: the same members as
`do_link` one record at a time, idempotent reloads, caps, blocked values and brand isolation."""

from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy import func, select

from tests.factories import Brand, make_brand, system_actor
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.runtime import Runtime
from zhongtai.members import bulk, oneid
from zhongtai.members import oneid_rules as rules
from zhongtai.members.bulk import Link
from zhongtai.members.models import Member, MemberIdentifier
from zhongtai.members.oneid import IdentifierInput

KINDS = ("pos_member_no", "douyin_openid", "jd_pin", "tmall_ouid", "alipay_user_id")
PHONE_A, PHONE_B = "13800138000", "13900139000"


def digest(runtime: Runtime, kind: str, value: str) -> str:
    return oneid.identifier_hash(runtime.crypto, rules.normalise(kind, value))


def link(runtime: Runtime, record: str, kind: str, value: str, verified: bool = True) -> Link:
    return Link(record, kind, digest(runtime, kind, value), verified)


async def resolve(runtime: Runtime, brand: Brand, links: list[Link]) -> bulk.BulkReport:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        return await bulk.resolve_links(session, links, source="import")


async def partition(runtime: Runtime, brand: Brand) -> set[frozenset[tuple[str, str]]]:
    """The brand's identifiers grouped by the member holding them."""
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        rows = await session.execute(
            select(MemberIdentifier.member_id, MemberIdentifier.type, MemberIdentifier.value_hash)
        )
        groups: dict[uuid.UUID, set[tuple[str, str]]] = {}
        for member_id, kind, value_hash in rows.all():
            groups.setdefault(member_id, set()).add((kind, value_hash))
    return {frozenset(g) for g in groups.values()}


async def counts(runtime: Runtime, brand: Brand) -> tuple[int, int]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        members = await session.scalar(select(func.count()).select_from(Member).where(Member.status == "active"))
        identifiers = await session.scalar(select(func.count()).select_from(MemberIdentifier))
    return int(members or 0), int(identifiers or 0)


async def generous_caps(runtime: Runtime, brand: Brand) -> None:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await oneid.do_set_caps(session, system_actor(brand.id), dict.fromkeys(KINDS, 50))


def generated_records(seed: int, records: int, pool: int) -> list[list[tuple[str, str]]]:
    """Records of 1–3 verified identifiers drawn from a small pool, so that records chain into people."""
    draw = random.Random(seed)
    values = [(KINDS[n % len(KINDS)], f"v{n}") for n in range(pool)]
    return [draw.sample(values, draw.randint(1, 3)) for _ in range(records)]


async def test_same_members_as_do_link(runtime: Runtime) -> None:
    by_link, by_bulk = await make_brand(runtime), await make_brand(runtime)
    await generous_caps(runtime, by_link)
    await generous_caps(runtime, by_bulk)
    records = generated_records(seed=15, records=150, pool=220)
    for identifiers in records:
        async with runtime.db.unit_of_work(tenant_id=by_link.id) as session:
            await oneid.do_link(
                session,
                system_actor(by_link.id),
                runtime.crypto,
                identifiers=[IdentifierInput(kind, value, True) for kind, value in identifiers],
                source="import",
            )
    links = [link(runtime, f"r{n}", kind, value) for n, ids in enumerate(records) for kind, value in ids]
    assert len(links) > 250
    report = await resolve(runtime, by_bulk, links)
    expected = await partition(runtime, by_link)
    assert max(len(g) for g in expected) >= 6  # records chained into people, with merges along the way
    assert await partition(runtime, by_bulk) == expected
    assert report.members_created == len(expected)
    assert report.identifiers_added == sum(len(g) for g in expected)
    assert (report.split_records, report.refused_records, report.merges_existing) == ([], [], [])


async def test_second_load_attaches_and_do_link_finds_the_member(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    links = [
        link(runtime, "a", "phone", PHONE_A),
        link(runtime, "a", "jd_pin", "jd-1"),
        # the same person in a marketplace: its hashed phone is the phone's hash
        Link("b", "marketplace_phone_hash", digest(runtime, "phone", PHONE_A)),
        link(runtime, "b", "tmall_ouid", "tm-1"),
        link(runtime, "c", "phone", PHONE_B),
    ]
    first = await resolve(runtime, brand, links)
    assert (first.records, first.links, first.members_created, first.identifiers_added) == (3, 5, 2, 5)
    before = await partition(runtime, brand)
    assert len(before) == 2
    second = await resolve(runtime, brand, links)
    assert (second.members_created, second.identifiers_added, second.members_attached) == (0, 0, 2)
    assert await partition(runtime, brand) == before
    assert await counts(runtime, brand) == (2, 5)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        linked = await oneid.do_link(
            session,
            system_actor(brand.id),
            runtime.crypto,
            identifiers=[IdentifierInput("phone", PHONE_A, True), IdentifierInput("jd_pin", "jd-2", True)],
            source="app",
        )
    assert not linked.is_new
    assert await counts(runtime, brand) == (2, 6)


async def test_over_cap_component_is_split_per_record(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    report = await resolve(
        runtime,
        brand,
        [
            link(runtime, "r1", "phone", PHONE_A),
            link(runtime, "r1", "wechat_unionid", "u-1"),
            link(runtime, "r2", "wechat_unionid", "u-1"),
            link(runtime, "r2", "phone", PHONE_B),
            # one record carrying two verified phones is refused, as a link would be
            link(runtime, "r3", "phone", "13700137000"),
            link(runtime, "r3", "phone", "13600136000"),
        ],
    )
    assert report.split_records == ["r1", "r2"]
    assert report.refused_records == ["r3"]
    assert report.held_by_another_member == 1  # r2's unionid went to r1
    assert await partition(runtime, brand) == {
        frozenset(
            {("phone", digest(runtime, "phone", PHONE_A)), ("wechat_unionid", digest(runtime, "wechat_unionid", "u-1"))}
        ),
        frozenset({("phone", digest(runtime, "phone", PHONE_B))}),
    }


async def test_blocked_values_never_connect(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await oneid.do_block_identifier(
            session, system_actor(brand.id), runtime.crypto, type="phone", value=PHONE_A, app_id=None, note="store"
        )
    report = await resolve(
        runtime,
        brand,
        [
            link(runtime, "r1", "phone", PHONE_A),
            link(runtime, "r1", "jd_pin", "jd-1"),
            Link("r2", "marketplace_phone_hash", digest(runtime, "phone", PHONE_A)),
            link(runtime, "r2", "jd_pin", "jd-2"),
        ],
    )
    assert (report.blocked, report.members_created, report.identifiers_added) == (2, 2, 2)
    assert await counts(runtime, brand) == (2, 2)


async def test_existing_members_are_not_merged_in_bulk(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    await resolve(runtime, brand, [link(runtime, "a", "jd_pin", "jd-1"), link(runtime, "b", "jd_pin", "jd-2")])
    report = await resolve(runtime, brand, [link(runtime, "c", "jd_pin", "jd-1"), link(runtime, "c", "jd_pin", "jd-2")])
    assert report.merges_existing == ["c"]
    assert (report.members_created, report.identifiers_added) == (0, 0)
    assert await counts(runtime, brand) == (2, 2)


async def test_unverified_identifiers_attach_but_never_connect(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    report = await resolve(
        runtime,
        brand,
        [
            link(runtime, "r1", "phone", PHONE_A),
            link(runtime, "r1", "jd_pin", "jd-1", verified=False),
            link(runtime, "r2", "phone", PHONE_B),
            link(runtime, "r2", "jd_pin", "jd-1", verified=False),  # held by r1's member: reported
            link(runtime, "r3", "jd_pin", "jd-1", verified=False),  # only evidence: r1's member
            link(runtime, "r3", "douyin_openid", "dy-1", verified=False),
        ],
    )
    assert (report.members_created, report.members_attached, report.held_by_another_member) == (2, 1, 1)
    jd, dy = digest(runtime, "jd_pin", "jd-1"), digest(runtime, "douyin_openid", "dy-1")
    assert await partition(runtime, brand) == {
        frozenset({("phone", digest(runtime, "phone", PHONE_A)), ("jd_pin", jd), ("douyin_openid", dy)}),
        frozenset({("phone", digest(runtime, "phone", PHONE_B))}),
    }
    again = await resolve(runtime, brand, [link(runtime, "r4", "jd_pin", "jd-1")])  # verified now
    assert (again.members_created, again.identifiers_verified) == (0, 1)


async def test_brands_are_isolated(runtime: Runtime) -> None:
    one, other = await make_brand(runtime), await make_brand(runtime)
    links = [link(runtime, "a", "phone", PHONE_A), link(runtime, "a", "jd_pin", "jd-1")]
    await resolve(runtime, one, links)
    report = await resolve(runtime, other, links)
    assert (report.members_created, report.members_attached, report.identifiers_added) == (1, 0, 2)
    assert await counts(runtime, one) == (1, 2)
    assert await counts(runtime, other) == (1, 2)


def test_connected_components_matches_a_plain_union_find() -> None:
    import numpy as np

    draw = random.Random(7)
    size = 500
    left = np.array([draw.randrange(size) for _ in range(400)], dtype=np.int64)
    right = np.array([draw.randrange(size) for _ in range(400)], dtype=np.int64)
    parent = list(range(size))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    assert bulk.connected_components(size, left, right).tolist() == [root(x) for x in range(size)]


async def test_empty_batch_and_unknown_types(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    report = await resolve(runtime, brand, [])
    assert (report.records, report.links, report.members_created, report.identifiers_added) == (0, 0, 0, 0)
    with pytest.raises(ValidationFailed):
        await resolve(runtime, brand, [Link("a", "fax", "abc")])
    assert await counts(runtime, brand) == (0, 0)
