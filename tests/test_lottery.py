"""Reservation lotteries end to end on both tiers: commitment, entries, close, receipts with proofs,
the draw recomputed independently from the public JSON, exclusions, wins, idempotency, races."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from tests.factories import bearer, make_brand, make_token, make_user
from tests.lottery_factories import end_window, make_lottery, make_product, open_window
from tests.members_factories import adult_id, make_consumer, resident_id, verify_consumer
from zhongtai.cli.main import app as cli_app
from zhongtai.core import accounts, jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.models import SandboxMessage
from zhongtai.core.runtime import Runtime
from zhongtai.lottery import service
from zhongtai.lottery import verify as draw_verify
from zhongtai.lottery.models import LotteryEntry, LotteryWin
from zhongtai.members import service as members_service
from zhongtai.members.models import MemberIdentity
from zhongtai.trace import merkle


# An independent implementation of the published algorithm, from docs/lottery.md: standard library only.
def _tree_hash(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _tree_hash(leaves[:k]) + _tree_hash(leaves[k:])).digest()


def _recompute(data: dict[str, Any]) -> tuple[str, str, set[tuple[str, str, str, int]]]:
    leaves = []
    for e in data["entries"]:
        reason = e["excluded_reason"] or ""
        leaf = f"zt-lottery-v1|{e['entry_id']}|{e['product_id']}|{e['store_id']}|{e['entrant']}|{reason}".encode()
        leaves.append(hashlib.sha256(b"\x00" + leaf).digest())
    root = _tree_hash(leaves)
    seed = hashlib.sha256(bytes.fromhex(data["server_seed"]) + root + (data["beacon"] or "").encode()).digest()
    groups: dict[tuple[str, str], list[tuple[bytes, str]]] = {}
    for e, leaf_hash in zip(data["entries"], leaves, strict=True):
        if e["excluded_reason"] is None:
            score = hmac.new(seed, leaf_hash, "sha256").digest()
            groups.setdefault((e["store_id"], e["product_id"]), []).append((score, e["entry_id"]))
    winners = set()
    for line in data["stock"]:
        ranked = sorted(groups.get((line["store_id"], line["product_id"]), []))[: line["quantity"]]
        winners.update((eid, line["store_id"], line["product_id"], rank) for rank, (_s, eid) in enumerate(ranked, 1))
    return root.hex(), seed.hex(), winners


async def _enter(
    client: httpx.AsyncClient, token: str, session_id: uuid.UUID, product: uuid.UUID, store: uuid.UUID
) -> httpx.Response:
    return await client.post(
        f"/api/v1/consumer/lottery/sessions/{session_id}/entries",
        json={"product_id": str(product), "store_id": str(store)},
        headers=bearer(token),
    )


async def _run_jobs(runtime: Runtime) -> None:
    worker = jobs.Worker(runtime.db, name="test")
    while await worker.run_once():
        pass


async def test_lottery_end_to_end(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    staff = bearer(await make_token(runtime, brand))
    lottery = await make_lottery(runtime, brand, quantities=(2, 1, 1), beacon_source="drand quicknet round 1000")
    sid, product = lottery.session_id, lottery.product_ids[0]
    bj, sh, gz = lottery.store_ids

    commitment = await client.get(f"/api/v1/public/{brand.tenant.slug}/lottery/{sid}/commitment")
    assert commitment.status_code == 200, commitment.text
    published = commitment.json()
    assert published["algorithm"] == "zt-lottery-v1"
    assert published["beacon_source"] == "drand quicknet round 1000"
    assert sorted((s["store_id"], s["quantity"]) for s in published["stock"]) == sorted(
        [(str(bj), 2), (str(sh), 1), (str(gz), 1)]
    )

    members = []
    for i in range(9):
        consumer, token = await make_consumer(runtime, brand)
        await verify_consumer(runtime, brand, consumer.id, adult_id(i))
        members.append((consumer, token))
    minor, minor_token = await make_consumer(runtime, brand)
    await verify_consumer(runtime, brand, minor.id, resident_id(date(members_service.today().year - 17, 1, 1), 77))
    _, unverified_token = await make_consumer(runtime, brand)

    early = await _enter(client, members[0][1], sid, product, bj)
    assert (early.status_code, early.json()["error"]) == (409, "lottery_not_open")
    open_window()
    # Nearby stores: from Shanghai, Shanghai first, then Beijing (~1,070 km), then Guangzhou (~1,210 km).
    nearby = await client.get(
        f"/api/v1/consumer/lottery/sessions/{sid}/stores",
        params={"latitude": 31.23, "longitude": 121.47},
        headers=bearer(members[0][1]),
    )
    assert [s["id"] for s in nearby.json()] == [str(sh), str(bj), str(gz)]
    assert nearby.json()[0]["distance_km"] < 5

    receipts = []
    for i, (_consumer, token) in enumerate(members):
        store = [bj, bj, bj, bj, sh, sh, sh, gz, gz][i]
        entered = await _enter(client, token, sid, product, store)
        assert entered.status_code == 201, entered.text
        receipts.append(entered.json())
    assert (receipts[0]["result"], receipts[0]["inclusion_proof"]) == ("pending", None)
    retried = await _enter(client, members[0][1], sid, product, bj)
    assert (retried.status_code, retried.json()["entry_id"]) == (200, receipts[0]["entry_id"])
    other_store = await _enter(client, members[0][1], sid, product, sh)
    assert (other_store.status_code, other_store.json()["error"]) == (409, "lottery_already_entered")
    under = await _enter(client, minor_token, sid, product, bj)
    assert (under.status_code, under.json()["error"]) == (403, "under_age")
    unverified = await _enter(client, unverified_token, sid, product, bj)
    assert (unverified.status_code, unverified.json()["error"]) == (403, "not_verified")
    other_product = await make_product(runtime, brand, gtin="6901234567885", name="其他")
    not_offered = await _enter(client, members[1][1], sid, other_product, bj)
    assert (not_offered.status_code, not_offered.json()["error"]) == (422, "lottery_not_offered")

    early_close = await client.post(f"/api/v1/lottery/sessions/{sid}/close", headers=staff)
    assert (early_close.status_code, early_close.json()["error"]) == (409, "lottery_wrong_state")
    end_window()
    late = await _enter(client, members[1][1], sid, product, bj)
    assert late.status_code == 409
    closed = await client.post(f"/api/v1/lottery/sessions/{sid}/close", headers=staff)
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["entries_count"]) == ("closed", 9)
    root = bytes.fromhex(closed.json()["entries_root"])
    assert (await client.post(f"/api/v1/lottery/sessions/{sid}/close", headers=staff)).json() == closed.json()

    # Every receipt proves its leaf in the published root.
    for (_c, token), first in zip(members, receipts, strict=True):
        receipt = (
            await client.get(f"/api/v1/consumer/lottery/entries/{first['entry_id']}", headers=bearer(token))
        ).json()
        assert receipt["leaf"] == f"zt-lottery-v1|{first['entry_id']}|{product}|{first['store_id']}|{first['entrant']}|"
        assert merkle.verify_inclusion(
            merkle.leaf_hash(receipt["leaf"].encode()),
            receipt["leaf_index"],
            receipt["tree_size"],
            [bytes.fromhex(p) for p in receipt["inclusion_proof"]],
            root,
        )
    # Another member cannot read someone's receipt.
    foreign = await client.get(
        f"/api/v1/consumer/lottery/entries/{receipts[0]['entry_id']}", headers=bearer(members[1][1])
    )
    assert foreign.status_code == 404

    no_beacon = await client.post(f"/api/v1/lottery/sessions/{sid}/draw", json={}, headers=staff)
    assert (no_beacon.status_code, no_beacon.json()["data"]["field"]) == (422, "beacon")
    drawn = await client.post(f"/api/v1/lottery/sessions/{sid}/draw", json={"beacon": "a1b2c3"}, headers=staff)
    assert drawn.status_code == 200, drawn.text
    assert (drawn.json()["status"], drawn.json()["winners_count"]) == ("drawn", 4)
    again = await client.post(f"/api/v1/lottery/sessions/{sid}/draw", json={"beacon": "other"}, headers=staff)
    assert again.json() == drawn.json(), "a second draw answers the first"

    data = (await client.get(f"/api/v1/public/{brand.tenant.slug}/lottery/{sid}/draw")).json()
    assert hashlib.sha256(bytes.fromhex(data["server_seed"])).hexdigest() == published["server_seed_sha256"]
    expected_root, expected_seed, expected_winners = _recompute(data)
    assert (expected_root, expected_seed) == (data["entries_root"], data["draw_seed"])
    published_winners = {(w["entry_id"], w["store_id"], w["product_id"], w["rank"]) for w in data["winners"]}
    assert published_winners == expected_winners
    assert sorted(Counter_of(w[1] for w in published_winners).items()) == sorted(
        [(str(bj), 2), (str(sh), 1), (str(gz), 1)]
    )
    assert draw_verify.verify(data).ok
    assert str(members[0][0].id) not in json.dumps(data), "no consumer ids in public data"

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        wins = list(await session.scalars(select(LotteryWin)))
    assert len(wins) == 4
    assert {str(w.entry_id) for w in wins} == {w[0] for w in published_winners}
    assert all(w.status == "pending_payment" and w.notified_at is None for w in wins)
    assert {w.payment_due_at for w in wins} == {wins[0].payment_due_at}
    await _run_jobs(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        sms = list(await session.scalars(select(SandboxMessage.body).where(SandboxMessage.body.contains("中签"))))
        assert len(sms) == 4
        assert all(w.notified_at is not None for w in await session.scalars(select(LotteryWin)))
    winner_entry = next(iter(published_winners))[0]
    winner_token = next(t for (_c, t), r in zip(members, receipts, strict=True) if r["entry_id"] == winner_entry)
    mine = (await client.get(f"/api/v1/consumer/lottery/entries/{winner_entry}", headers=bearer(winner_token))).json()
    assert (mine["result"], mine["win"]["status"]) == ("won", "pending_payment")

    # Unpaid wins are forfeited when the deadline passes (the job was queued by the draw).
    from zhongtai.core import clock

    clock.advance(24 * 3600 + 5)
    await _run_jobs(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert {w.status for w in await session.scalars(select(LotteryWin))} == {"forfeited"}


def Counter_of(values: Any) -> dict[str, int]:  # noqa: N802
    counted: dict[str, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return counted


async def test_excluded_entries_are_published_with_reasons(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    lottery = await make_lottery(runtime, brand, quantities=(10,))
    sid, product, store = lottery.session_id, lottery.product_ids[0], lottery.store_ids[0]
    first, first_token = await make_consumer(runtime, brand)
    second, second_token = await make_consumer(runtime, brand)
    third, third_token = await make_consumer(runtime, brand)
    await verify_consumer(runtime, brand, first.id, adult_id(1))
    await verify_consumer(runtime, brand, third.id, adult_id(3))
    open_window()
    assert (await _enter(client, first_token, sid, product, store)).status_code == 201
    assert (await _enter(client, third_token, sid, product, store)).status_code == 201
    # The identity moves to another account during the window (e.g. an account sold on): the first
    # account is no longer verified, and the second is the same person entering again.
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await session.execute(delete(MemberIdentity).where(MemberIdentity.consumer_id == first.id))
    await verify_consumer(runtime, brand, second.id, adult_id(1))
    assert (await _enter(client, second_token, sid, product, store)).status_code == 201
    end_window()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        closed = await service.do_close(session, await service.get_session(session, sid))
        assert (closed.entries_count, closed.excluded_count) == (3, 2)
        drawn = await service.do_draw(session, runtime.crypto, closed, beacon=None)
        assert drawn.winners_count == 1
        data = await service.draw_data(session, drawn)
    reasons = {e["entry_id"]: e["excluded_reason"] for e in data["entries"]}
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        by_consumer = {e.consumer_id: str(e.id) for e in await session.scalars(select(LotteryEntry))}
    assert reasons == {
        by_consumer[first.id]: "not_verified",
        by_consumer[second.id]: "duplicate_identity",
        by_consumer[third.id]: None,
    }
    assert [w["entry_id"] for w in data["winners"]] == [by_consumer[third.id]]
    receipt = (
        await client.get(f"/api/v1/consumer/lottery/entries/{by_consumer[second.id]}", headers=bearer(second_token))
    ).json()
    assert (receipt["result"], receipt["excluded_reason"]) == ("excluded", "duplicate_identity")
    assert draw_verify.verify(data).ok


async def test_one_entry_per_member_under_concurrency(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    lottery = await make_lottery(runtime, brand)
    consumer, token = await make_consumer(runtime, brand)
    await verify_consumer(runtime, brand, consumer.id, adult_id(5))
    open_window()
    product = lottery.product_ids[0]
    answers = await asyncio.gather(
        *(_enter(client, token, lottery.session_id, product, lottery.store_ids[i % 3]) for i in range(9))
    )
    created = [a for a in answers if a.status_code == 201]
    assert len(created) == 1, [a.text for a in answers]
    winner_store = created[0].json()["store_id"]
    for answer in answers:
        if answer.status_code == 200:  # a retry with the same store
            assert answer.json()["entry_id"] == created[0].json()["entry_id"]
        elif answer.status_code != 201:
            assert (answer.status_code, answer.json()["error"]) == (409, "lottery_already_entered")
            assert winner_store.encode() not in answer.request.content
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(LotteryEntry)) == 1


async def test_receipts_prove_inclusion_in_large_lists(runtime: Runtime) -> None:
    """More than one stored block (1,024 leaves): proofs mix stored nodes and recomputed leaves."""
    brand = await make_brand(runtime)
    lottery = await make_lottery(runtime, brand, quantities=(5,))
    consumer, _ = await make_consumer(runtime, brand)
    await verify_consumer(runtime, brand, consumer.id, adult_id(9))
    n = 2_600
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        session.add_all(
            LotteryEntry(
                session_id=lottery.session_id,
                product_id=uuid.uuid4(),  # the unique key is per product: one consumer, many rows
                store_id=lottery.store_ids[0],
                consumer_id=consumer.id,
                identity_hash=f"{i:064x}",
                entrant=f"{i:032x}",
            )
            for i in range(n)
        )
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        entries = list(await session.scalars(select(LotteryEntry).order_by(LotteryEntry.id)))
    open_window()
    end_window()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        lottery_row = await service.do_close(session, await service.get_session(session, lottery.session_id))
        root = bytes.fromhex(lottery_row.entries_root or "")
        for index in (0, 1, 1023, 1024, 2047, 2048, 2599):
            entry = entries[index]
            found_index, proof = await service.inclusion_proof(session, lottery_row, entry)
            leaf = merkle.leaf_hash(
                f"zt-lottery-v1|{entry.id}|{entry.product_id}|{entry.store_id}|{entry.entrant}|".encode()
            )
            assert found_index == index
            assert merkle.verify_inclusion(leaf, index, n, proof, root), index


@pytest.mark.parametrize("tier", ["embedded"], indirect=True)
async def test_verify_detects_tampering_and_cli(runtime: Runtime, client: httpx.AsyncClient, tmp_path: Path) -> None:
    brand = await make_brand(runtime)
    lottery = await make_lottery(runtime, brand, quantities=(1, 1))
    open_window()
    for i in range(6):
        consumer, token = await make_consumer(runtime, brand)
        await verify_consumer(runtime, brand, consumer.id, adult_id(i))
        entered = await _enter(client, token, lottery.session_id, lottery.product_ids[0], lottery.store_ids[i % 2])
        assert entered.status_code == 201
    end_window()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        lottery_row = await service.do_close(session, await service.get_session(session, lottery.session_id))
        lottery_row = await service.do_draw(session, runtime.crypto, lottery_row, beacon="beacon-42")
        data = await service.draw_data(session, lottery_row)
    assert draw_verify.verify(data).ok

    def tampered(change: Any) -> dict[str, Any]:
        copy = json.loads(json.dumps(data))
        change(copy)
        return copy

    loser = next(e for e in data["entries"] if e["entry_id"] not in {w["entry_id"] for w in data["winners"]})
    cases = {
        "an entry dropped": lambda d: d["entries"].pop(0),
        "an entry moved to another store": lambda d: d["entries"][0].update(
            store_id=d["entries"][1]["store_id"]
            if d["entries"][0]["store_id"] != d["entries"][1]["store_id"]
            else d["entries"][2]["store_id"]
        ),
        "an entry added": lambda d: d["entries"].append(
            {**d["entries"][0], "entry_id": "ffffffff-0000-7000-8000-000000000000"}
        ),
        "a loser listed as winner": lambda d: d["winners"][0].update(
            entry_id=loser["entry_id"], store_id=loser["store_id"]
        ),
        "a hidden exclusion": lambda d: (
            d["entries"][0].update(excluded_reason=None)
            if d["entries"][0]["excluded_reason"]
            else d["entries"][0].update(excluded_reason="not_verified")
        ),
        "another server seed": lambda d: d.update(server_seed="00" * 32),
        "another beacon": lambda d: d.update(beacon="beacon-43"),
    }
    for name, change in cases.items():
        report = draw_verify.verify(tampered(change))
        assert not report.ok, name

    good, bad = tmp_path / "draw.json", tmp_path / "tampered.json"
    good.write_text(json.dumps(data))
    bad.write_text(json.dumps(tampered(cases["an entry dropped"])))
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["lottery", "verify", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "matches" in ok.output
    refused = runner.invoke(cli_app, ["lottery", "verify", str(bad)])
    assert refused.exit_code == 1
    assert "entries root" in refused.output


async def test_permissions_and_states(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    lottery = await make_lottery(runtime, brand, commit=False)
    sid = lottery.session_id
    viewer = await make_user(runtime, brand, "viewer")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        issued = await accounts.do_create_token(
            session, _principal_of(brand.id, viewer), name="viewer", scopes=["lottery.read"]
        )
    reader = bearer(issued.secret)
    assert (await client.get(f"/api/v1/lottery/sessions/{sid}", headers=reader)).status_code == 200
    for method, path in (("post", "commit"), ("post", "close")):
        refused = await client.request(method, f"/api/v1/lottery/sessions/{sid}/{path}", headers=reader)
        assert (refused.status_code, refused.json()["data"]["permission"]) == (403, "lottery.write")
    # Nothing is public before the commitment.
    assert (await client.get(f"/api/v1/public/{brand.tenant.slug}/lottery/{sid}/commitment")).status_code == 404
    staff = bearer(await make_token(runtime, brand))
    committed = await client.post(f"/api/v1/lottery/sessions/{sid}/commit", headers=staff)
    assert committed.json()["status"] == "committed"
    locked = await client.put(
        f"/api/v1/lottery/sessions/{sid}/stock",
        json={
            "items": [{"store_id": str(lottery.store_ids[0]), "product_id": str(lottery.product_ids[0]), "quantity": 9}]
        },
        headers=staff,
    )
    assert (locked.status_code, locked.json()["error"]) == (409, "lottery_wrong_state")
    _, consumer_token = await make_consumer(runtime, brand)
    assert (await client.get("/api/v1/lottery/sessions", headers=bearer(consumer_token))).status_code == 403
    staff_entry = await _enter(
        client, (await make_token(runtime, brand)), sid, lottery.product_ids[0], lottery.store_ids[0]
    )
    assert staff_entry.status_code == 403
    bad_window = await client.post(
        "/api/v1/lottery/sessions",
        json={"title": "x", "opens_at": "2030-01-01T10:00:00+08:00", "closes_at": "2030-01-01T09:00:00+08:00"},
        headers=staff,
    )
    assert (bad_window.status_code, bad_window.json()["data"]["field"]) == (422, "closes_at")
    other = await make_brand(runtime)
    assert (await client.get(f"/api/v1/public/{other.tenant.slug}/lottery/{sid}/commitment")).status_code == 404
    assert utcnow()  # the clock was not moved here


def _principal_of(tenant_id: uuid.UUID, user: Any) -> Any:
    from zhongtai.core.permissions import permissions_for_role
    from zhongtai.core.principals import Principal, PrincipalKind

    return Principal(
        kind=PrincipalKind.OPERATOR,
        id=user.id,
        tenant_id=tenant_id,
        label=user.email,
        permissions=permissions_for_role(user.role, is_platform_tenant=False),
        role=user.role,
    )


async def test_standalone_script_in_the_docs(runtime: Runtime, client: httpx.AsyncClient, tmp_path: Path) -> None:
    """The script of docs/lottery.md, run as a separate Python process, agrees with the platform."""
    import re
    import sys

    async def run_script() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "verify_draw.py", "draw.json", cwd=tmp_path, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        return int(process.returncode or 0), out.decode()

    brand = await make_brand(runtime)
    lottery = await make_lottery(runtime, brand, quantities=(1, 2))
    open_window()
    for i in range(5):
        consumer, token = await make_consumer(runtime, brand)
        await verify_consumer(runtime, brand, consumer.id, adult_id(i))
        assert (
            await _enter(client, token, lottery.session_id, lottery.product_ids[0], lottery.store_ids[i % 2])
        ).status_code == 201
    end_window()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await service.do_close(session, await service.get_session(session, lottery.session_id))
        row = await service.do_draw(session, runtime.crypto, row, beacon=None)
        data = await service.draw_data(session, row)
    docs = (Path(__file__).parents[1] / "docs" / "lottery.md").read_text(encoding="utf-8")
    script = re.search(r"```python\n(.*?)```", docs, re.DOTALL)
    assert script is not None
    (tmp_path / "verify_draw.py").write_text(script.group(1))
    (tmp_path / "draw.json").write_text(json.dumps(data))
    code, out = await run_script()
    assert (code, out.splitlines()[-1]) == (0, "MATCHES"), out
    data["winners"][0]["rank"] = 9
    (tmp_path / "draw.json").write_text(json.dumps(data))
    code, out = await run_script()
    assert (code, out.splitlines()[-1]) == (1, "DOES NOT MATCH"), out
