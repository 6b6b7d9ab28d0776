"""Partner accounts: password and one-time-code sign-in, lockout after repeated failures, the
partner's own data and nothing of another dealer's."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from tests.factories import Brand, bearer, make_brand, make_token
from zhongtai.core.models import SandboxMessage
from zhongtai.core.runtime import Runtime

API = "/api/v1/channel"
PASSWORD = "store clerk secret"
CODE_RE = re.compile(r"验证码 (\d{6})")


async def _post(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{API}{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _channel(client: httpx.AsyncClient, runtime: Runtime) -> tuple[Brand, dict[str, str], dict[str, Any]]:
    """Two dealers with a store each; accounts for dealer 1, store 1 and a guide of store 1."""
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    ids: dict[str, Any] = {}
    for n in (1, 2):
        ids[f"dealer{n}"] = await _post(client, headers, "/dealers", {"code": f"D{n}", "name": f"Dealer {n}"})
        ids[f"store{n}"] = await _post(
            client, headers, "/stores", {"code": f"S{n}", "name": f"Store {n}", "dealer_code": f"D{n}"}
        )
    ids["store1b"] = await _post(client, headers, "/stores", {"code": "S1B", "name": "Store 1b", "dealer_code": "D1"})
    guide = await _post(client, headers, f"/stores/{ids['store1']['id']}/guides", {"name": "G", "phone": "13700000003"})
    for role, target, phone in (
        ("dealer", ids["dealer1"]["id"], "13700000001"),
        ("store", ids["store1"]["id"], "13700000002"),
        ("guide", guide["id"], "13700000003"),
    ):
        ids[f"{role}_account"] = await _post(
            client,
            headers,
            "/partners",
            {"role": role, "target_id": target, "phone": phone, "display_name": role.title(), "password": PASSWORD},
        )
    return brand, headers, ids


async def _sign_in(client: httpx.AsyncClient, brand: Brand, phone: str, **secret: str) -> httpx.Response:
    return await client.post(f"{API}/public/{brand.tenant.slug}/partner/sessions", json={"phone": phone, **secret})


async def test_password_sign_in_and_partner_scope(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, _headers, ids = await _channel(client, runtime)
    signed = await _sign_in(client, brand, "13700000002", password=PASSWORD)
    assert signed.status_code == 201, signed.text
    token = signed.json()["token"]
    assert token.startswith("ztp_")
    assert signed.json()["partner"]["role"] == "store"
    clerk = bearer(token)

    me = (await client.get(f"{API}/partner/me", headers=clerk)).json()
    assert (me["dealer"]["code"], me["store"]["code"], me["partner"]["phone_masked"]) == ("D1", "S1", "137****0002")
    own = (await client.get(f"{API}/partner/stores", headers=clerk)).json()
    assert [s["code"] for s in own["items"]] == ["S1"]
    # The clerk sees neither the other dealer's store nor a sibling store, and no operator endpoint.
    other = await client.get(f"{API}/partner/stores/{ids['store2']['id']}", headers=clerk)
    assert (other.status_code, other.json()["error"]) == (404, "store_not_found")
    sibling = await client.get(f"{API}/partner/stores/{ids['store1b']['id']}", headers=clerk)
    assert sibling.status_code == 404
    for path in (f"/dealers/{ids['dealer2']['id']}", "/dealers", "/stores", f"/stores/{ids['store2']['id']}"):
        refused = await client.get(f"{API}{path}", headers=clerk)
        assert refused.status_code == 403, path
        assert refused.json()["detail"] == "This needs an operator account or an API token."

    dealer = bearer((await _sign_in(client, brand, "13700000001", password=PASSWORD)).json()["token"])
    stores = (await client.get(f"{API}/partner/stores", headers=dealer)).json()
    assert sorted(s["code"] for s in stores["items"]) == ["S1", "S1B"]
    assert (await client.get(f"{API}/partner/stores/{ids['store1b']['id']}", headers=dealer)).status_code == 200
    assert (await client.get(f"{API}/partner/stores/{ids['store2']['id']}", headers=dealer)).status_code == 404

    guide = bearer((await _sign_in(client, brand, "13700000003", password=PASSWORD)).json()["token"])
    assert (await client.get(f"{API}/partner/me", headers=guide)).json()["store"]["code"] == "S1"

    # Another brand's partner token is of no use here and vice versa.
    out = await client.delete(f"{API}/partner/session", headers=clerk)
    assert out.status_code == 204
    assert (await client.get(f"{API}/partner/me", headers=clerk)).status_code == 401


async def test_wrong_password_locks_the_account(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, _headers, _ids = await _channel(client, runtime)
    for _ in range(5):
        wrong = await _sign_in(client, brand, "13700000002", password="not the password")
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "Phone number or password is wrong, or the account is disabled."
    locked = await _sign_in(client, brand, "13700000002", password=PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["error"] == "partner_locked"
    assert locked.json()["detail"] == "This account is temporarily locked after repeated failed sign-ins."
    assert locked.json()["data"]["retry_after_seconds"] > 0
    # Other partners are not affected.
    assert (await _sign_in(client, brand, "13700000001", password=PASSWORD)).status_code == 201
    # Unknown numbers answer like wrong passwords.
    unknown = await _sign_in(client, brand, "13700000009", password=PASSWORD)
    assert unknown.status_code == 401


async def test_disabled_account_cannot_sign_in_and_loses_its_sessions(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    brand, headers, ids = await _channel(client, runtime)
    token = (await _sign_in(client, brand, "13700000001", password=PASSWORD)).json()["token"]
    disabled = await client.patch(
        f"{API}/partners/{ids['dealer_account']['id']}", json={"is_active": False}, headers=headers
    )
    assert disabled.json()["is_active"] is False
    assert (await client.get(f"{API}/partner/me", headers=bearer(token))).status_code == 401
    assert (await _sign_in(client, brand, "13700000001", password=PASSWORD)).status_code == 401


async def test_one_time_code_sign_in_and_own_password(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, headers, _ids = await _channel(client, runtime)
    await _post(client, headers, "/dealers", {"code": "D3", "name": "Dealer 3"})
    dealer3 = (await client.get(f"{API}/dealers", params={"q": "D3"}, headers=headers)).json()["items"][0]
    await _post(
        client,
        headers,
        "/partners",
        {"role": "dealer", "target_id": dealer3["id"], "phone": "13700000004", "display_name": "No password"},
    )
    sent = await client.post(f"{API}/public/{brand.tenant.slug}/partner/otp", json={"phone": "13700000004"})
    assert sent.status_code == 202
    assert sent.json()["phone_masked"] == "137****0004"
    # A number without an account gets the same answer and no message.
    stranger = await client.post(f"{API}/public/{brand.tenant.slug}/partner/otp", json={"phone": "13700000099"})
    assert (stranger.status_code, stranger.json()["phone_masked"]) == (202, "137****0099")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        bodies = list(await session.scalars(select(SandboxMessage.body)))
    assert len(bodies) == 1
    match = CODE_RE.search(bodies[0])
    assert match
    # The password route does not work for an account without password; the code does.
    assert (await _sign_in(client, brand, "13700000004", password="anything at all")).status_code == 401
    wrong = await _sign_in(client, brand, "13700000004", code="000000" if match.group(1) != "000000" else "111111")
    assert wrong.json()["error"] == "otp_wrong"
    signed = await _sign_in(client, brand, "13700000004", code=match.group(1))
    assert signed.status_code == 201, signed.text
    partner = bearer(signed.json()["token"])
    weak = await client.put(f"{API}/partner/password", json={"password": "short"}, headers=partner)
    assert weak.status_code == 422
    assert weak.json()["detail"] == "Password refused: Use at least 10 characters."
    assert (
        await client.put(f"{API}/partner/password", json={"password": PASSWORD}, headers=partner)
    ).status_code == 204
    assert (await client.get(f"{API}/partner/me", headers=partner)).status_code == 200  # this session stays
    assert (await _sign_in(client, brand, "13700000004", password=PASSWORD)).status_code == 201
    both = await _sign_in(client, brand, "13700000004", password=PASSWORD, code="123456")
    assert both.json()["detail"] == "Send either a password or a one-time code."


async def test_partner_accounts_refusals(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers, ids = await _channel(client, runtime)
    same_phone = await client.post(
        f"{API}/partners",
        json={"role": "store", "target_id": ids["store2"]["id"], "phone": "13700000002", "display_name": "X"},
        headers=headers,
    )
    assert (same_phone.status_code, same_phone.json()["detail"]) == (
        409,
        "A partner account with this phone number already exists.",
    )
    bad_role = await client.post(
        f"{API}/partners",
        json={"role": "boss", "target_id": ids["store2"]["id"], "phone": "13700000008", "display_name": "X"},
        headers=headers,
    )
    assert bad_role.json()["detail"] == "A partner is a dealer, store or guide account; got 'boss'."
    wrong_kind = await client.post(
        f"{API}/partners",
        json={"role": "dealer", "target_id": ids["store2"]["id"], "phone": "13700000008", "display_name": "X"},
        headers=headers,
    )
    assert (wrong_kind.status_code, wrong_kind.json()["error"]) == (404, "dealer_not_found")
    listed = (await client.get(f"{API}/partners", params={"store_id": ids["store1"]["id"]}, headers=headers)).json()
    assert sorted(p["role"] for p in listed["items"]) == ["guide", "store"]


async def test_partner_h5_pages(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    client.cookies.set("zt_lang", "zh-CN")
    page = await client.get(f"/h5/{brand.tenant.slug}/partner", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "经销商、门店和导购登录" in page.text
    assert 'data-tenant="' + brand.tenant.slug + '"' in page.text
    assert "/static/h5-partner.js" in page.text
    me = await client.get(f"/h5/{brand.tenant.slug}/partner/me", headers={"accept": "text/html"})
    assert me.status_code == 200
    assert 'id="partner-me"' in me.text
    assert (await client.get("/h5/no-such-brand/partner", headers={"accept": "text/html"})).status_code == 404
    script = await client.get("/static/h5-partner.js")
    assert script.status_code == 200
    assert "/partner/sessions" in script.text
