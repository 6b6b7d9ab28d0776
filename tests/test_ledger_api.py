"""Ledger API and console pages: read-only views of accounts, balances and entries; permissions and
tenant scoping — on both tiers."""

from __future__ import annotations

import uuid

import httpx

from tests.factories import bearer, console_login, make_brand, make_token, make_user
from tests.ledger_factories import assert_books_balance, make_books
from zhongtai.core.runtime import Runtime
from zhongtai.ledger import service as ledger
from zhongtai.ledger.service import EntryDraft, Line


async def test_accounts_lines_and_entries_through_the_api(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=10_000)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        reward = await ledger.post(
            session,
            EntryDraft(
                "reward:c1",
                "reward",
                [Line(books.pool, -888), Line(books.wallet, 888)],
                memo="red packet",
                reference_type="code",
                reference_id="c1",
            ),
        )
    token = await make_token(runtime, brand, ["ledger.read"])

    listed = await client.get("/api/v1/ledger/accounts", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["total"] == 3
    assert {(a["key"], a["kind"], a["balance"], a["floor"]) for a in body["items"]} == {
        ("funding", "brand_funding", -10_000, None),
        ("pool:spring", "fee_pool", 9_112, 0),
        ("wallet:consumer:1", "consumer_wallet", 888, 0),
    }
    wallets = await client.get(
        "/api/v1/ledger/accounts", params={"owner_type": "consumer", "owner_id": "1"}, headers=bearer(token)
    )
    assert [a["id"] for a in wallets.json()["items"]] == [str(books.wallet)]
    pools = await client.get("/api/v1/ledger/accounts", params={"kind": "fee_pool"}, headers=bearer(token))
    assert [a["key"] for a in pools.json()["items"]] == ["pool:spring"]

    one = await client.get(f"/api/v1/ledger/accounts/{books.wallet}", headers=bearer(token))
    assert (one.json()["balance"], one.json()["currency"]) == (888, "CNY")

    lines = await client.get(f"/api/v1/ledger/accounts/{books.pool}/lines", headers=bearer(token))
    assert lines.status_code == 200
    assert [(x["amount"], x["kind"], x["reference_id"]) for x in lines.json()["items"]] == [
        (-888, "reward", "c1"),
        (10_000, "funding", None),
    ]
    entry = await client.get(f"/api/v1/ledger/entries/{reward.entry.id}", headers=bearer(token))
    assert entry.status_code == 200
    assert entry.json()["idempotency_key"] == "reward:c1"
    assert entry.json()["lines"] == [
        {"account_id": str(books.pool), "amount": -888},
        {"account_id": str(books.wallet), "amount": 888},
    ]
    for path in (f"/api/v1/ledger/accounts/{uuid.uuid4()}", f"/api/v1/ledger/entries/{uuid.uuid4()}"):
        missing = await client.get(path, headers=bearer(token))
        assert missing.status_code == 404
        assert missing.json()["error"] in ("account_not_found", "entry_not_found")
    bad = await client.get("/api/v1/ledger/accounts/not-a-uuid", headers=bearer(token))
    assert bad.status_code == 422
    await assert_books_balance(runtime, brand.id)


async def test_ledger_read_permission_and_tenant_scope(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id)
    other = await make_brand(runtime)
    await make_books(runtime, other.id)
    no_scope = await make_token(runtime, brand, ["codes.read"])
    denied = await client.get("/api/v1/ledger/accounts", headers=bearer(no_scope))
    assert denied.status_code == 403
    assert (await client.get("/api/v1/ledger/accounts")).status_code == 401
    foreign = await make_token(runtime, other, ["ledger.read"])
    assert (await client.get(f"/api/v1/ledger/accounts/{books.pool}", headers=bearer(foreign))).status_code == 404
    assert (await client.get(f"/api/v1/ledger/accounts/{books.pool}/lines", headers=bearer(foreign))).status_code == 404
    theirs = await client.get("/api/v1/ledger/accounts", headers=bearer(foreign))
    assert str(books.pool) not in theirs.text
    assert theirs.json()["total"] == 3


async def test_console_pages_list_accounts_and_movements(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=123_450)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await ledger.post(
            session,
            EntryDraft("reward:c7", "reward", [Line(books.pool, -88), Line(books.wallet, 88)], memo="red packet"),
        )
    await console_login(client, brand.owner.email)
    page = await client.get("/console/ledger/accounts", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "账本" in page.text
    assert "费用池" in page.text
    assert "Spring pool" in page.text
    assert "¥1,233.62" in page.text
    assert "-¥1,234.50" in page.text
    assert 'data-currency="CNY">¥0.00' in page.text  # the books balance
    filtered = await client.get("/console/ledger/accounts?kind=consumer_wallet", headers={"accept": "text/html"})
    assert "Consumer 1" in filtered.text
    assert "Spring pool" not in filtered.text
    detail = await client.get(f"/console/ledger/accounts/{books.pool}", headers={"accept": "text/html"})
    assert detail.status_code == 200
    assert "red packet" in detail.text
    assert "reward:c7" in detail.text
    assert "-¥0.88" in detail.text
    client.cookies.set("zt_lang", "en")
    english = await client.get(f"/console/ledger/accounts/{books.pool}", headers={"accept": "text/html"})
    assert "Balance" in english.text
    assert "余额" not in english.text


async def test_console_ledger_needs_the_permission(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    viewer = await make_user(runtime, brand, "viewer")
    await console_login(client, viewer.email)
    page = await client.get("/console/ledger/accounts", headers={"accept": "text/html"})
    assert page.status_code == 403
    home = await client.get("/console", headers={"accept": "text/html"})
    assert "/console/ledger/accounts" not in home.text


def test_format_amount() -> None:
    assert ledger.format_amount(123_450, "CNY") == "¥1,234.50"
    assert ledger.format_amount(-88, "CNY") == "-¥0.88"
    assert ledger.format_amount(0, "CNY") == "¥0.00"
    assert ledger.format_amount(1200, "PTS") == "1,200"
