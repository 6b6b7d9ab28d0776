"""Rewards over HTTP: an operator sets up a pool and rules (expected-value preview first), a scan pays,
a held reward is released, a store clerk sees the wallet and withdraws, an administrator approves the
batch, exports it and imports the bank's result file; permissions per endpoint and 4xx on bad input."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx

from tests.factories import PASSWORD, bearer, make_brand, make_token, make_user
from tests.ledger_factories import assert_books_balance
from tests.rewards_factories import item_event, publish
from zhongtai.core.clock import utcnow
from zhongtai.core.runtime import Runtime
from zhongtai.rewards.permissions import REWARDS_READ, REWARDS_REVIEW

API = "/api/v1/rewards"


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_operator_partner_and_payout_round_trip(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    admin = bearer(await make_token(runtime, brand))
    # a dealer, a store and the store clerk's partner account
    dealer = await _ok(
        await client.post("/api/v1/channel/dealers", json={"code": "D1", "name": "经销商"}, headers=admin), 201
    )
    store = await _ok(
        await client.post(
            "/api/v1/channel/stores", json={"code": "S1", "name": "门店", "dealer_code": "D1"}, headers=admin
        ),
        201,
    )
    await _ok(
        await client.post(
            "/api/v1/channel/partners",
            json={
                "role": "store",
                "target_id": store["id"],
                "phone": "13700000002",
                "display_name": "店员",
                "password": PASSWORD,
            },
            headers=admin,
        ),
        201,
    )

    pool = await _ok(
        await client.post(
            f"{API}/pools", json={"code": "SPRING", "name": "春节", "daily_cap_fen": 100_000}, headers=admin
        ),
        201,
    )
    fund = {"amount_fen": 50_000}
    for _ in range(2):  # the same Idempotency-Key funds once
        funded = await _ok(
            await client.post(
                f"{API}/pools/{pool['id']}/fund", json=fund, headers={**admin, "Idempotency-Key": "fund-0001"}
            )
        )
    assert (funded["funded_fen"], funded["balance_fen"]) == (50_000, 50_000)
    missing_key = await client.post(f"{API}/pools/{pool['id']}/fund", json=fund, headers=admin)
    assert missing_key.status_code == 422

    tiers = {"type": "tiers", "tiers": [{"amount_fen": 100, "weight": 3}, {"amount_fen": 500, "weight": 1}]}
    preview = await _ok(
        await client.post(
            f"{API}/rules/preview", json={"pool_id": pool["id"], "mode": "random", "distribution": tiers}, headers=admin
        )
    )
    assert preview == {
        "expected_fen": 200.0,
        "expected_yuan": "2.00",
        "min_fen": 100,
        "max_fen": 500,
        "pool_balance_fen": 50_000,
        "funds_rewards": 250,
    }
    bad = await client.post(
        f"{API}/rules/preview",
        json={"mode": "random", "distribution": {"type": "tiers", "tiers": [{"amount_fen": 1.5, "weight": 1}]}},
        headers=admin,
    )
    assert bad.status_code == 422
    assert bad.json()["data"]["field"] == "distribution.tiers[0].amount_fen"
    period = {
        "valid_from": (utcnow() - timedelta(hours=1)).isoformat(),
        "valid_to": (utcnow() + timedelta(days=9)).isoformat(),
    }
    await _ok(
        await client.post(
            f"{API}/rules",
            json={
                "name": "开瓶红包",
                "event_kind": "consumer_open",
                "role": "consumer",
                "pool_id": pool["id"],
                "mode": "random",
                "distribution": tiers,
                **period,
            },
            headers=admin,
        ),
        201,
    )
    store_rule = await _ok(
        await client.post(
            f"{API}/rules",
            json={
                "name": "门店开瓶",
                "event_kind": "consumer_open",
                "role": "store",
                "pool_id": pool["id"],
                "mode": "fixed",
                "amount_fen": 300,
                **period,
            },
            headers=admin,
        ),
        201,
    )
    assert store_rule["expected_fen"] == 300
    wrong_kind = await client.post(
        f"{API}/rules",
        json={"name": "x", "event_kind": "teleport", "role": "store", "pool_id": pool["id"], "amount_fen": 1, **period},
        headers=admin,
    )
    assert (wrong_kind.status_code, wrong_kind.json()["data"]["field"]) == (422, "event_kind")

    # scans: the store's reward is paid; with a velocity of 1 per hour the second is held
    patched = await _ok(await client.patch(f"{API}/settings", json={"velocity_per_hour": 1}, headers=admin))
    assert patched["velocity_per_hour"] == 1
    store_id = uuid.UUID(store["id"])
    await publish(
        runtime, item_event(brand.id, 1, consumer_id=uuid.uuid4(), store_id=store_id, dealer_id=uuid.UUID(dealer["id"]))
    )
    second = await publish(runtime, item_event(brand.id, 2, consumer_id=uuid.uuid4(), store_id=store_id))
    assert [(g["role"], g["status"]) for g in second] == [("consumer", "paid"), ("store", "held")]
    queue = await _ok(await client.get(f"{API}/review", headers=admin))
    assert queue["total"] == 1
    held_id = queue["items"][0]["id"]

    # an operator reviews; a viewer may read but not decide
    viewer = await make_user(runtime, brand, "viewer")
    viewer_token = bearer(await make_token_for(runtime, brand, viewer.role))
    assert (await client.get(f"{API}/review", headers=viewer_token)).status_code == 200
    assert (await client.post(f"{API}/grants/{held_id}/release", json={}, headers=viewer_token)).status_code == 403
    released = await _ok(await client.post(f"{API}/grants/{held_id}/release", json={"note": "门店核实"}, headers=admin))
    assert (released["status"], released["review_note"]) == ("released", "门店核实")
    again = await client.post(f"{API}/grants/{held_id}/reject", json={}, headers=admin)
    assert (again.status_code, again.json()["error"]) == (409, "not_held")

    # the store clerk's wallet and a withdrawal
    signed = await client.post(
        f"/api/v1/channel/public/{brand.tenant.slug}/partner/sessions",
        json={"phone": "13700000002", "password": PASSWORD},
    )
    clerk = bearer(signed.json()["token"])
    wallet = await _ok(await client.get(f"{API}/partner/wallet", headers=clerk))
    assert (wallet["balance_fen"], wallet["held_fen"], wallet["party"]) == (600, 0, f"store:{store_id}")
    assert [g["status"] for g in wallet["recent"]] == ["released", "paid"]
    assert (await client.get(f"{API}/pools", headers=clerk)).status_code == 403
    body = {"amount_fen": 500, "payee_name": "门店", "payee_account": "6222020000004321"}
    small = await client.post(
        f"{API}/partner/withdrawals", json={**body, "amount_fen": 50}, headers={**clerk, "Idempotency-Key": "wd-00001"}
    )
    assert (small.status_code, small.json()["error"]) == (422, "below_minimum")
    too_much = await client.post(
        f"{API}/partner/withdrawals", json={**body, "amount_fen": 700}, headers={**clerk, "Idempotency-Key": "wd-00002"}
    )
    assert (too_much.status_code, too_much.json()["error"]) == (409, "not_enough_in_wallet")
    for _ in range(2):
        withdrawal = await _ok(
            await client.post(
                f"{API}/partner/withdrawals", json=body, headers={**clerk, "Idempotency-Key": "wd-00003"}
            ),
            201,
        )
    assert withdrawal["payee_account"] == "****4321"
    assert (await _ok(await client.get(f"{API}/partner/wallet", headers=clerk)))["balance_fen"] == 100

    # the administrator approves a CSV batch, exports it, imports the bank's results
    batch = await _ok(await client.post(f"{API}/batches", json={"provider": "csv"}, headers=admin), 201)
    assert (batch["count"], batch["total_fen"]) == (1, 500)
    exported = await client.get(f"{API}/batches/{batch['id']}/export.csv", headers=admin)
    assert exported.status_code == 200
    assert "6222020000004321" in exported.text
    result = f"withdrawal_id,status,provider_ref,reason\n{withdrawal['id']},失败,BANK-9,户名不符\n"
    done = await _ok(
        await client.post(
            f"{API}/batches/{batch['id']}/results",
            files={"file": ("r.csv", result.encode(), "text/csv")},
            headers=admin,
        )
    )
    assert (done["failed"], done["failed_fen"]) == (1, 500)
    wallet = await _ok(await client.get(f"{API}/partner/wallet", headers=clerk))
    assert wallet["balance_fen"] == 600  # failed: back in the wallet
    assert wallet["withdrawals"][0]["failure_reason"] == "户名不符"
    garbage = await client.post(
        f"{API}/batches/{batch['id']}/results", files={"file": ("r.csv", b"\xff\xfe", "text/csv")}, headers=admin
    )
    assert (garbage.status_code, garbage.json()["error"]) == (422, "bad_result_file")
    await assert_books_balance(runtime, brand.id)


async def make_token_for(runtime: Runtime, brand: Any, role: str) -> str:
    """A token with what the role may do (a viewer: read, not review)."""
    from zhongtai.core.permissions import Role, permissions_for_role

    scopes = sorted(permissions_for_role(Role(role), is_platform_tenant=False))
    assert REWARDS_READ in scopes
    assert REWARDS_REVIEW not in scopes
    return await make_token(runtime, brand, scopes)


async def test_operator_permissions_per_endpoint(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    operator = bearer(await make_token_for_operator(runtime, brand))
    created = await client.post(f"{API}/pools", json={"code": "P1", "name": "池"}, headers=operator)
    assert created.status_code == 201
    pool_id = created.json()["id"]
    fund = await client.post(
        f"{API}/pools/{pool_id}/fund", json={"amount_fen": 100}, headers={**operator, "Idempotency-Key": "k-000001"}
    )
    assert fund.status_code == 403  # operators do not move the brand's budget
    assert (await client.post(f"{API}/batches", json={}, headers=operator)).status_code == 403
    assert (await client.patch(f"{API}/settings", json={"velocity_per_hour": 5}, headers=operator)).status_code == 403
    assert (await client.get(f"{API}/pools", headers={})).status_code == 401
    admin = bearer(await make_token(runtime, brand))
    out_of_range = await client.patch(f"{API}/settings", json={"store_distance_km": 0}, headers=admin)
    assert (out_of_range.status_code, out_of_range.json()["data"]["field"]) == (422, "store_distance_km")
    unknown = await client.get(f"{API}/pools/{uuid.uuid4()}", headers=admin)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "pool_not_found")
    duplicate = await client.post(f"{API}/pools", json={"code": "P1", "name": "again"}, headers=admin)
    assert (duplicate.status_code, duplicate.json()["error"]) == (409, "duplicate_pool")


async def make_token_for_operator(runtime: Runtime, brand: Any) -> str:
    from zhongtai.core.permissions import Role, permissions_for_role

    return await make_token(runtime, brand, sorted(permissions_for_role(Role.OPERATOR, is_platform_tenant=False)))
