"""Import of dealers and stores from CSV and XLSX: the per-row report, all-or-nothing versus the
valid rows, re-import updating by code, unknown dealers, and columns the file does not have."""

from __future__ import annotations

import io
from typing import Any

import httpx
from openpyxl import Workbook
from sqlalchemy import select

from tests.factories import bearer, make_brand, make_token
from zhongtai.channel.models import Dealer, Store
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime

API = "/api/v1/channel"


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], kind: str, name: str, content: bytes, **form: str
) -> httpx.Response:
    return await client.post(f"{API}/import/{kind}", files={"file": (name, content)}, data=form, headers=headers)


DEALERS_CSV = (
    "经销商编码,经销商名称,联系人,手机,经营区域\n"
    "GZ01,广州华南,王经理,13800000001,440100\n"
    "SZ01,深圳南山,李经理,,440305;440304\n"
    "BAD 1,坏编码,,,\n"
    "XX01,,,12345,4403\n"
    "GZ01,重复,,,\n"
)


async def test_dealer_import_report_all_or_nothing_then_valid_rows(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    content = DEALERS_CSV.encode("gb18030")
    refused = await _upload(client, headers, "dealers", "dealers.csv", content)
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "import_has_errors"
    assert body["detail"] == "3 of 5 rows have errors; nothing was imported. Fix them, or import only the valid rows."
    report = body["data"]
    assert (report["rows"], report["valid_rows"], report["invalid_rows"], report["imported"]) == (5, 2, 3, False)
    assert [(e["row"], e["column"], e["message"]) for e in report["errors"]] == [
        (4, "经销商编码", "A code has 1 to 40 letters, digits, dots, hyphens or underscores; 'BAD 1' does not."),
        (5, "经销商名称", "Enter a name."),
        (5, "手机", "This phone number is not valid; check the digits."),
        (5, "经营区域", "'4403' is not an administrative region code: use 6 digits such as 440300 (深圳市)."),
        (6, "经销商编码", "Code GZ01 is also on row 2."),
    ]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert list(await session.scalars(select(Dealer))) == []

    accepted = await _upload(client, headers, "dealers", "dealers.csv", content, mode="valid_rows")
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["created"], accepted.json()["imported"]) == (2, True)
    dealers = (await client.get(f"{API}/dealers", headers=headers)).json()["items"]
    assert [(d["code"], d["name"], d["phone_masked"]) for d in dealers] == [
        ("GZ01", "广州华南", "138****0001"),
        ("SZ01", "深圳南山", None),
    ]
    assert [r["code"] for r in dealers[1]["territory_regions"]] == ["440305", "440304"]

    # Again with a change: matched by code, updated in place; the file without region column keeps them.
    again = await _upload(client, headers, "dealers", "d.csv", "code,name\nGZ01,广州华南商贸\nSZ01,深圳南山\n".encode())
    assert (again.json()["created"], again.json()["updated"], again.json()["unchanged"]) == (0, 1, 1)
    dealers = (await client.get(f"{API}/dealers", headers=headers)).json()["items"]
    assert dealers[0]["name"] == "广州华南商贸"
    assert dealers[0]["phone_masked"] == "138****0001"
    assert [r["code"] for r in dealers[0]["territory_regions"]] == ["440100"]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("channel.%"))))
    assert actions == ["channel.dealers.import", "channel.dealers.import"]


async def test_store_import_from_xlsx(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    assert (
        await client.post(
            f"{API}/dealers", json={"code": "GZ01", "name": "x", "region_codes": ["440100"]}, headers=headers
        )
    ).status_code == 201
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    rows: list[list[Any]] = [
        ["门店编码", "门店名称", "经销商编码", "门店地址", "纬度", "经度"],
        ["S001", "天河店", "GZ01", "天河路 1 号", 23.1291, 113.2644],
        ["S002", "南山店", "GZ01", "", 22.5333, 113.9305],
        ["S003", "无名经销", "NOPE", "", None, None],
        ["S004", "坏坐标", "GZ01", "", "north", 113.1],
        ["S005", "半坐标", "GZ01", "", 23.1, None],
    ]
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    refused = await _upload(client, headers, "stores", "stores.xlsx", buffer.getvalue())
    assert refused.status_code == 422
    report = refused.json()["data"]
    assert report["file_format"] == "xlsx"
    assert [(e["row"], e["column"], e["message"]) for e in report["errors"]] == [
        (4, "经销商编码", "No dealer has the code NOPE."),
        (5, "纬度", "Not a number: 'north'."),
        (6, "经度", "Give both latitude and longitude, or neither."),
    ]
    dry = await _upload(client, headers, "stores", "stores.xlsx", buffer.getvalue(), mode="valid_rows", dry_run="true")
    assert (dry.status_code, dry.json()["imported"], dry.json()["valid_rows"]) == (200, False, 2)
    accepted = await _upload(client, headers, "stores", "stores.xlsx", buffer.getvalue(), mode="valid_rows")
    assert accepted.json()["created"] == 2
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        stores = {s.code: s for s in await session.scalars(select(Store))}
    assert stores["S001"].region_codes == ["440000", "440100", "440104"]
    assert stores["S002"].city_code == "440300"
    listed = (await client.get(f"{API}/stores", headers=headers)).json()["items"]
    assert [(s["code"], s["in_dealer_territory"]) for s in listed] == [("S001", True), ("S002", False)]


async def test_missing_columns_and_unreadable_files(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    missing = await _upload(client, headers, "stores", "s.csv", b"code,name\nS1,x\n")
    assert missing.status_code == 422
    assert missing.json()["detail"] == "The first row must name the columns; missing: dealer_code."
    broken = await _upload(client, headers, "dealers", "d.xlsx", b"PK\x03\x04 not really a workbook")
    assert broken.json()["detail"] == "The XLSX file cannot be read; save it again from Excel or export CSV."
    viewer = bearer(await make_token(runtime, brand, ["channel.read"]))
    assert (await _upload(client, viewer, "dealers", "d.csv", b"code,name\nD,x\n")).status_code == 403
