"""The draw over groups of many entries, on both tiers: on PostgreSQL the scores are computed and
ranked inside the database, only each group's candidates under a bound are ranked, and a group whose
candidates fall short is ranked again over all its entries. Whatever the path, the winners are those
an independent implementation of the published algorithm finds, and `zhongtai lottery verify` agrees."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import make_brand
from tests.lottery_factories import end_window, make_lottery, open_window
from tests.test_lottery import _recompute
from zhongtai.bench.lottery import ENTRY_COLUMNS, Loader, _members
from zhongtai.core.ids import new_id
from zhongtai.core.runtime import Runtime
from zhongtai.lottery import service
from zhongtai.lottery import verify as draw_verify
from zhongtai.lottery.models import LotteryWin


async def _drawn_session(runtime: Runtime, per_store: tuple[int, ...], quantities: tuple[int, ...]) -> dict[str, Any]:
    brand = await make_brand(runtime)
    lottery = await make_lottery(runtime, brand, quantities=quantities)
    loader = Loader(runtime.settings, runtime)
    total = sum(per_store)
    consumer_ids, _ = await _members(loader, brand.id, total, 0, with_tokens=False)
    stores = [store for store, n in zip(lottery.store_ids, per_store, strict=True) for _ in range(n)]
    now = datetime.now(UTC)
    rows = [
        (
            new_id(),
            brand.id,
            lottery.session_id,
            lottery.product_ids[0],
            store,
            cid,
            f"{i:064x}",
            hashlib.sha256(cid.bytes).hexdigest()[:32],
            now,
        )
        for i, (cid, store) in enumerate(zip(consumer_ids, stores, strict=True))
    ]
    await loader.load("lottery_entries", ENTRY_COLUMNS, iter(rows))
    open_window()
    end_window()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        closed = await service.do_close(session, await service.get_session(session, lottery.session_id))
        drawn = await service.do_draw(session, runtime.crypto, closed, beacon=None)
        data = await service.draw_data(session, drawn)
        stored = list(await session.scalars(select(LotteryWin).where(LotteryWin.session_id == lottery.session_id)))
    return {"data": data, "wins": stored, "store_ids": lottery.store_ids, "session": drawn}


async def test_many_entries_per_group_give_the_published_algorithms_winners(runtime: Runtime) -> None:
    # 300 entries for 3 bottles (a bound: ~44 candidates), 60 for 20 (no bound: 4·20 + 32 ≥ 60),
    # 4 for 6 (everyone wins).
    result = await _drawn_session(runtime, per_store=(300, 60, 4), quantities=(3, 20, 6))
    data = result["data"]
    root, seed, winners = _recompute(data)
    assert (root, seed) == (data["entries_root"], data["draw_seed"])
    published = {(w["entry_id"], w["store_id"], w["product_id"], w["rank"]) for w in data["winners"]}
    assert published == winners
    assert len(winners) == 3 + 20 + 4
    assert draw_verify.verify(data).ok
    by_entry = {str(w.entry_id): w for w in result["wins"]}
    assert len(by_entry) == len(result["wins"]) == result["session"].winners_count == 27
    entries = {e["entry_id"]: e for e in data["entries"]}
    for entry_id, store_id, _product_id, rank in winners:
        win = by_entry[entry_id]
        assert (str(win.store_id), win.rank, win.status) == (store_id, rank, "pending_payment")
        assert entries[entry_id]["excluded_reason"] is None


async def test_a_group_short_of_candidates_is_ranked_again_over_all_its_entries(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no margin the bound leaves about 32 candidates for 60 bottles among 300 entries: too few,
    # so that group is ranked again without a bound (on PostgreSQL; SQLite ranks every entry anyway).
    monkeypatch.setattr(service, "CANDIDATES_PER_GROUP", 0)
    result = await _drawn_session(runtime, per_store=(300, 250), quantities=(60, 2))
    data = result["data"]
    _root, _seed, winners = _recompute(data)
    published = {(w["entry_id"], w["store_id"], w["product_id"], w["rank"]) for w in data["winners"]}
    assert published == winners
    assert len(winners) == 62
    assert draw_verify.verify(data).ok
    assert sorted(w.rank for w in result["wins"] if w.store_id == result["store_ids"][0]) == list(range(1, 61))


def test_the_bound_keeps_about_the_wanted_share_of_uniform_scores() -> None:
    assert service._score_bound(10, 72) is None  # 4·10 + 32 = 72: every entry is ranked
    bound = service._score_bound(10, 7_200)
    assert bound is not None
    assert len(bound) == 32
    assert int.from_bytes(bound, "big") == (72 << 256) // 7_200  # 1 % of the score space
