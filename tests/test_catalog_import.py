"""Master-data import: per-row report, all-or-nothing versus valid rows only, idempotent by GTIN,
XLSX and GB18030 CSV, size limits."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from openpyxl import Workbook
from sqlalchemy import select

from tests.factories import Brand, bearer, make_brand, make_token
from zhongtai.catalog import importer
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime

IMPORT = "/api/v1/catalog/import"

MIXED_CSV = (
    "gtin,name,specification,price,items_per_case,cases_per_pallet,colour\n"
    "6901234567892,Green tea,500 ml,12.50,24,40,green\n"
    "6901234567893,Bad digit,,abc,0,,red\n"
    "\n"
    "96385074,Black tea,,3,,,black\n"
    "06901234567892,Same GTIN again,,,,,\n"
    "4006381333931,,,,,5,\n"
)

EXPECTED_ERRORS = [
    {"row": 3, "column": "price", "message": "Not a price: 'abc'."},
    {"row": 3, "column": "gtin", "message": "Wrong check digit in GTIN 6901234567893: expected 2, got 3."},
    {"row": 3, "column": "items_per_case", "message": "Enter a whole number from 1 to 1000000."},
    {"row": 6, "column": "gtin", "message": "GTIN 06901234567892 is also on row 2."},
    {"row": 7, "column": "name", "message": "This field is required."},
    {"row": 7, "column": "cases_per_pallet", "message": "A pallet holds cases: set the items per case first."},
]


async def _setup(runtime: Runtime) -> tuple[Brand, dict[str, str]]:
    brand = await make_brand(runtime)
    return brand, bearer(await make_token(runtime, brand))


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, content: bytes, **form: str
) -> httpx.Response:
    return await client.post(IMPORT, files={"file": (name, content)}, data=form, headers=headers)


async def _products(client: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[Any, ...]]:
    listed = (await client.get("/api/v1/catalog/products", params={"per_page": 200}, headers=headers)).json()
    return [(p["gtin"], p["name"], p["price"], p["items_per_case"], p["cases_per_pallet"]) for p in listed["items"]]


async def test_errors_import_nothing_by_default(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, headers = await _setup(runtime)
    response = await _upload(client, headers, "products.csv", MIXED_CSV.encode())
    assert response.status_code == 422
    assert response.json() == {
        "error": "import_has_errors",
        "detail": "3 of 5 rows have errors; nothing was imported. Fix them, or import only the valid rows.",
        "data": {
            "file_format": "csv",
            "mode": "all",
            "rows": 5,
            "valid_rows": 2,
            "invalid_rows": 3,
            "imported": False,
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "ignored_columns": ["colour"],
            "error_count": 6,
            "errors": EXPECTED_ERRORS,
        },
    }
    assert await _products(client, headers) == []
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "catalog.import"))) == []


async def test_valid_rows_only_then_reimport_updates(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand, headers = await _setup(runtime)
    response = await _upload(client, headers, "products.csv", MIXED_CSV.encode(), mode="valid_rows")
    assert response.status_code == 200, response.text
    report = response.json()
    assert {k: report[k] for k in ("imported", "rows", "valid_rows", "invalid_rows", "created", "updated")} == {
        "imported": True,
        "rows": 5,
        "valid_rows": 2,
        "invalid_rows": 3,
        "created": 2,
        "updated": 0,
    }
    assert report["errors"] == EXPECTED_ERRORS
    assert await _products(client, headers) == [
        ("00000096385074", "Black tea", "3.00", None, None),
        ("06901234567892", "Green tea", "12.50", 24, 40),
    ]

    again = (
        "gtin,name,price,items_per_case,cases_per_pallet\n6901234567892,Green tea,13.00,24,40\n96385074,Black tea,3,,\n"
    )
    second = await _upload(client, headers, "again.csv", again.encode())
    assert second.status_code == 200, second.text
    assert (second.json()["created"], second.json()["updated"], second.json()["unchanged"]) == (0, 1, 1)
    assert await _products(client, headers) == [
        ("00000096385074", "Black tea", "3.00", None, None),
        ("06901234567892", "Green tea", "13.00", 24, 40),
    ]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        events = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == "catalog.import")))
    assert sorted((e.data["created"], e.data["updated"], e.data["skipped_rows"]) for e in events) == [
        (0, 1, 0),
        (2, 0, 3),
    ]


async def test_dry_run_writes_nothing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _setup(runtime)
    response = await _upload(client, headers, "p.csv", MIXED_CSV.encode(), dry_run="true")
    assert response.status_code == 200
    assert (response.json()["imported"], response.json()["error_count"]) == (False, 6)
    assert await _products(client, headers) == []


async def test_xlsx_with_chinese_headers_and_numeric_gtins(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _setup(runtime)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["商品条码", "商品名称", "规格", "单价", "箱规", "每托箱数"])
    sheet.append([6901234567892, "绿茶", "500ml", 12.5, 24, 40])
    sheet.append([36000291452, "红茶", None, None, None, None])  # a GTIN-12 whose leading zero Excel dropped
    sheet.append([4006381333932, "乌龙", None, None, None, None])
    buffer = io.BytesIO()
    book.save(buffer)

    refused = await _upload(client, headers, "products.xlsx", buffer.getvalue())
    assert refused.status_code == 422
    assert refused.json()["data"]["file_format"] == "xlsx"
    assert refused.json()["data"]["errors"] == [
        {"row": 4, "column": "商品条码", "message": "Wrong check digit in GTIN 4006381333932: expected 1, got 2."}
    ]
    accepted = await _upload(client, headers, "products.xlsx", buffer.getvalue(), mode="valid_rows")
    assert accepted.status_code == 200
    assert sorted(await _products(client, headers)) == [
        ("00036000291452", "红茶", None, None, None),
        ("06901234567892", "绿茶", "12.50", 24, 40),
    ]


async def test_gb18030_csv_from_chinese_excel(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _brand, headers = await _setup(runtime)
    text = "条码,名称,价格\r\n6901234567892,绿茶,¥1,200.00\r\n"
    response = await _upload(client, headers, "erp.csv", text.encode("gb18030"))
    assert response.status_code == 422  # the unquoted comma split the price into two cells
    assert response.json()["data"]["errors"] == [
        {"row": 2, "column": "", "message": "This row has 4 cells but the first row names 3 columns."}
    ]
    text = '条码,名称,价格\r\n6901234567892,绿茶,"¥1,200.00"\r\n'
    response = await _upload(client, headers, "erp.csv", text.encode("gb18030"))
    assert response.status_code == 200, response.text
    assert await _products(client, headers) == [("06901234567892", "绿茶", "1200.00", None, None)]


async def test_unreadable_and_oversized_files(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _brand, headers = await _setup(runtime)
    missing = await _upload(client, headers, "p.csv", b"code,title\n1,2\n")
    assert missing.status_code == 422
    assert missing.json()["error"] == "import_unreadable"
    assert missing.json()["detail"] == "The first row must name the columns; missing: gtin, name."
    empty = await _upload(client, headers, "p.csv", b"")
    assert empty.json()["detail"] == "The file is empty; the first row must name the columns."
    broken = await _upload(client, headers, "p.xlsx", b"PK\x03\x04 not really a zip")
    assert broken.json()["detail"] == "The XLSX file cannot be read; save it again from Excel or export CSV."

    too_big = await _upload(client, headers, "p.csv", b"gtin,name\n" + b"x" * importer.MAX_BYTES)
    assert too_big.status_code == 413
    assert too_big.json() == {
        "error": "import_too_large",
        "detail": "The file is larger than 5 MB; split it into smaller files.",
        "data": {},
    }
    monkeypatch.setattr(importer, "MAX_ROWS", 2)
    too_long = await _upload(client, headers, "p.csv", b"gtin,name\n96385074,a\n4006381333931,b\n6901234567892,c\n")
    assert too_long.status_code == 413
    assert too_long.json()["detail"] == "The file has more than 2 rows; split it into smaller files."
    assert await _products(client, headers) == []
