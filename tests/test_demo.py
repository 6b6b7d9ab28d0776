"""`zhongtai demo` loads a usable brand and is harmless to run again."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from tests.factories import bearer
from zhongtai.cli.demo import load_demo
from zhongtai.codes.models import Code, CodeBatch
from zhongtai.codes.rules import parse_code
from zhongtai.core.permissions import PERMISSIONS
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings


async def test_demo_is_idempotent_and_usable(settings: Settings, runtime: Runtime, client: httpx.AsyncClient) -> None:
    first = await load_demo(settings)
    again = await load_demo(settings)
    assert again == first
    assert (settings.data_dir / "demo-credentials.json").stat().st_mode & 0o777 == 0o600
    token = first["api_token"]["token"]
    assert set(first["api_token"]["scopes"]) == {p for p, perm in PERMISSIONS.items() if not perm.platform_only}
    me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    sample = first["sample_codes"]
    assert parse_code(sample["item_uri"]).serial == sample["item_serial"]
    looked = (
        await client.get("/api/v1/codes/lookup", params={"code": sample["item_uri"]}, headers=bearer(token))
    ).json()
    assert (looked["state"], looked["lot_number"]) == ("commissioned", "L20261101")
    case = (
        await client.get("/api/v1/codes/tree", params={"code": sample["packed_case_sscc"]}, headers=bearer(token))
    ).json()
    assert len(case["children"]) == 6
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        assert await session.scalar(select(func.count()).select_from(CodeBatch)) == 2
        assert await session.scalar(select(func.count()).select_from(Code)) == 110
