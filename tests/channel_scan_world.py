"""A small channel with packed goods for the scan tests: a Guangzhou dealer and a Beijing dealer, their
stores (one of the Guangzhou dealer's stores lies in Beijing), partner accounts signed in, and a
pallet of two cases of six bottles plus a loose case, all commissioned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.factories import bearer, make_brand, make_token
from tests.test_codes_api import make_product, request_batch, run_jobs
from tests.test_codes_custody import Line, _serials
from zhongtai.core.runtime import Runtime

API = "/api/v1/channel"
PASSWORD = "partner secret 2026"
GUANGZHOU = (23.1291, 113.2644)  # 天河
BEIJING = (39.9042, 116.4074)
BEIJING_WEST = (39.95, 116.30)  # 海淀


@dataclass
class World:
    line: Line
    ids: dict[str, Any]
    tokens: dict[str, dict[str, str]]

    @property
    def items(self) -> list[str]:
        return self.line.serials["item"]

    @property
    def cases(self) -> list[str]:
        return self.line.serials["case"]

    @property
    def pallets(self) -> list[str]:
        return self.line.serials["pallet"]


async def _post(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{API}{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _line(client: httpx.AsyncClient, runtime: Runtime, prefix: str) -> Line:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    await client.put("/api/v1/codes/settings", json={"gs1_company_prefix": prefix}, headers=bearer(token))
    product_id = await make_product(runtime, brand)  # 6 items a case, 4 cases a pallet
    batches = {
        "item": await request_batch(client, token, product_id, 20),
        "case": await request_batch(client, token, product_id, 4, "case"),
        "pallet": await request_batch(client, token, product_id, 2, "pallet"),
    }
    await run_jobs(runtime)
    serials = {level: await _serials(client, token, b["id"]) for level, b in batches.items()}
    for batch in batches.values():
        done = await client.post("/api/v1/codes/commission", json={"batch_id": batch["id"]}, headers=bearer(token))
        assert done.status_code == 200, done.text
    return Line(brand, token, product_id, batches, serials)


async def make_world(client: httpx.AsyncClient, runtime: Runtime, *, prefix: str = "6901234") -> World:
    """`prefix`: the brand's GS1 company prefix (SSCCs are unique across brands)."""
    line = await _line(client, runtime, prefix)
    items, cases, pallets = line.serials["item"], line.serials["case"], line.serials["pallet"]
    for parent, children in ((cases[0], items[0:6]), (cases[1], items[6:12]), (cases[2], items[12:18])):
        packed = await client.post(
            "/api/v1/codes/pack", json={"parent": parent, "children": children}, headers=line.auth
        )
        assert packed.status_code == 200, packed.text
    packed = await client.post(
        "/api/v1/codes/pack", json={"parent": pallets[0], "children": cases[:2]}, headers=line.auth
    )
    assert packed.status_code == 200, packed.text
    headers = line.auth
    ids: dict[str, Any] = {}
    ids["d1"] = await _post(client, headers, "/dealers", {"code": "GZ", "name": "广州商贸", "region_codes": ["440100"]})
    ids["d2"] = await _post(client, headers, "/dealers", {"code": "BJ", "name": "北京商贸", "region_codes": ["110000"]})
    for key, code, dealer, (lat, lon) in (
        ("s1", "S-GZ", "GZ", GUANGZHOU),
        ("s2", "S-BJ", "BJ", BEIJING),
        ("s3", "S-GZ-BJ", "GZ", BEIJING_WEST),
    ):
        ids[key] = await _post(
            client,
            headers,
            "/stores",
            {"code": code, "name": f"Store {code}", "dealer_code": dealer, "latitude": lat, "longitude": lon},
        )
    guide = await _post(client, headers, f"/stores/{ids['s1']['id']}/guides", {"name": "小李", "phone": "13700000012"})
    accounts = (
        ("dealer1", "dealer", ids["d1"]["id"], "13700000001"),
        ("dealer2", "dealer", ids["d2"]["id"], "13700000002"),
        ("store1", "store", ids["s1"]["id"], "13700000011"),
        ("guide1", "guide", guide["id"], "13700000012"),
        ("store2", "store", ids["s2"]["id"], "13700000021"),
        ("store3", "store", ids["s3"]["id"], "13700000031"),
    )
    tokens: dict[str, dict[str, str]] = {}
    for key, role, target, phone in accounts:
        ids[key] = await _post(
            client,
            headers,
            "/partners",
            {"role": role, "target_id": target, "phone": phone, "display_name": key, "password": PASSWORD},
        )
        signed = await client.post(
            f"{API}/public/{line.brand.tenant.slug}/partner/sessions", json={"phone": phone, "password": PASSWORD}
        )
        assert signed.status_code == 201, signed.text
        tokens[key] = bearer(signed.json()["token"])
    return World(line, ids, tokens)


async def scan(
    client: httpx.AsyncClient,
    world: World,
    who: str,
    action: str,
    codes: list[str],
    *,
    expect: int = 200,
    key: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    headers = dict(world.tokens[who])
    if key:
        headers["idempotency-key"] = key
    response = await client.post(
        f"{API}/partner/scans", json={"action": action, "codes": codes, **extra}, headers=headers
    )
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result
