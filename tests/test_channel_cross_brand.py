"""A partner of one brand reaches nothing of another brand: its token names its own brand, and the
other brand's store ids answer 404 like ids that do not exist."""

from __future__ import annotations

import httpx

from tests.factories import bearer, make_brand, make_token
from zhongtai.core.runtime import Runtime

API = "/api/v1/channel"
PASSWORD = "clerk password 12"


async def _brand_with_clerk(client: httpx.AsyncClient, runtime: Runtime, phone: str) -> tuple[str, str, str]:
    """(brand slug, store id, clerk token) of a new brand with one dealer, store and clerk."""
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    await client.post(f"{API}/dealers", json={"code": "D1", "name": "Dealer"}, headers=headers)
    store = (
        await client.post(f"{API}/stores", json={"code": "S1", "name": "Store", "dealer_code": "D1"}, headers=headers)
    ).json()
    created = await client.post(
        f"{API}/partners",
        json={"role": "store", "target_id": store["id"], "phone": phone, "display_name": "Clerk", "password": PASSWORD},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    signed = await client.post(
        f"{API}/public/{brand.tenant.slug}/partner/sessions", json={"phone": phone, "password": PASSWORD}
    )
    assert signed.status_code == 201, signed.text
    return brand.tenant.slug, store["id"], signed.json()["token"]


async def test_partner_tokens_are_bound_to_their_brand(client: httpx.AsyncClient, runtime: Runtime) -> None:
    # The same phone number may be a partner of two brands; each account is its own.
    slug_a, store_a, token_a = await _brand_with_clerk(client, runtime, "13600000001")
    slug_b, store_b, token_b = await _brand_with_clerk(client, runtime, "13600000001")
    assert slug_a != slug_b
    assert (await client.get(f"{API}/partner/stores/{store_a}", headers=bearer(token_a))).status_code == 200
    for store, token in ((store_b, token_a), (store_a, token_b)):
        refused = await client.get(f"{API}/partner/stores/{store}", headers=bearer(token))
        assert (refused.status_code, refused.json()["error"]) == (404, "store_not_found")
    me_a = (await client.get(f"{API}/partner/me", headers=bearer(token_a))).json()
    assert me_a["store"]["id"] == store_a
    # Brand B's sign-in does not accept brand A's password for another number.
    wrong = await client.post(
        f"{API}/public/{slug_b}/partner/sessions", json={"phone": "13600000002", "password": PASSWORD}
    )
    assert wrong.status_code == 401
