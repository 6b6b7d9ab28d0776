"""Member imports: every documented layout from a real-looking file (GB18030 and UTF-8-BOM CSV, XLSX),
matching into OneID (a marketplace's hashed phone and a CRM's plain phone are one member), the per-row
report, all or nothing, idempotent re-import, points only when asked, brand isolation, permission."""

from __future__ import annotations

import io
from typing import Any

import httpx
from openpyxl import Workbook
from sqlalchemy import func, select

from tests.factories import Brand, bearer, console_login, make_brand, make_token, system_actor
from zhongtai.core.models import AuditEvent
from zhongtai.core.runtime import Runtime
from zhongtai.members import loyalty, oneid, points, touches
from zhongtai.members.import_models import MemberImport, MemberImportRow
from zhongtai.members.models import Member, MemberIdentifier
from zhongtai.members.segment_models import MemberFacts, MemberTouch

API = "/api/v1/members/imports"
PHONE = "13800138000"


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], layout: str, name: str, content: bytes, **form: str
) -> httpx.Response:
    return await client.post(f"{API}/{layout}", files={"file": (name, content)}, data=form, headers=headers)


def _xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def _members(runtime: Runtime, brand: Brand) -> list[tuple[str, list[tuple[str, bool]]]]:
    """Active members with their identifiers (type, verified), each sorted."""
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        members = list(await session.scalars(select(Member).where(Member.status == "active")))
        found = []
        for member in members:
            ids = await oneid.identifiers_of(session, member.id)
            found.append((str(member.id), sorted((i.type, i.verified) for i in ids)))
    return sorted(found, key=lambda item: item[1])


async def _counts(runtime: Runtime, brand: Brand) -> tuple[int, int, int, int]:
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        return (
            int(await session.scalar(select(func.count()).select_from(Member)) or 0),
            int(await session.scalar(select(func.count()).select_from(MemberIdentifier)) or 0),
            int(await session.scalar(select(func.count()).select_from(MemberTouch)) or 0),
            int(await session.scalar(select(func.count()).select_from(MemberImportRow)) or 0),
        )


async def test_tmall_member_and_crm_member_with_one_phone_are_one_member(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    hashed = oneid.marketplace_phone_hash(runtime.crypto, PHONE)
    tmall = f"OUID,会员昵称,手机号(加密),等级,生日\nAAEk9Xr1tmallOUID01,t***1,{hashed},V2,1990-05-01\n"
    first = await _upload(client, headers, "tmall_members", "天猫会员.csv", tmall.encode("gb18030"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["rows"], body["created"], body["updated"], body["unchanged"]) == (1, 1, 0, 0)
    assert body["ignored_columns"] == ["会员昵称", "等级"]

    crm = "手机号,姓名,生日,性别,城市,地址,会员号\n"
    crm += "138 0013 8000,张三,1990/5/1,女,上海,上海市徐汇区漕溪北路 1 号,VIP0001\n"
    second = await _upload(client, headers, "crm_members", "crm.csv", crm.encode("utf-8-sig"))
    assert second.status_code == 200, second.text
    assert (second.json()["created"], second.json()["updated"]) == (0, 1)
    members = await _members(runtime, brand)
    assert [ids for _id, ids in members] == [
        [("marketplace_phone_hash", False), ("phone", False), ("pos_member_no", True), ("tmall_ouid", True)]
    ]
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        (member,) = await oneid.find_by_phone(session, runtime.crypto, PHONE)
        profile = dict(member.profile)
    assert profile["gender"]["value"] == "female"
    assert profile["birthday"]["value"] == "1990-05-01"
    assert profile["name"]["masked"] == "张*"
    assert profile["address"]["masked"] == "上海市徐汇区***"


async def test_marketplace_orders_record_purchases_once_and_earn_no_points(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await loyalty.do_set_rules(session, system_actor(brand.id), [loyalty.RuleDraft("purchase", 1)])
    jd = '订单号,下单帐号,下单时间,应付金额,商品名称\n300012345678,jd_buyer_01,2024-05-01 10:00:00,"¥1,299.00",礼盒\n'
    jd += "300012345679,jd_buyer_01,2024/5/3 09:30,59.9,单瓶\n"
    response = await _upload(client, headers, "jd_orders", "jd.csv", jd.encode("gb18030"))
    assert response.status_code == 200, response.text
    assert (response.json()["created"], response.json()["valid_rows"]) == (2, 2)
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        touch = await touches.touch_by_ref(session, "purchase", "import:jd_orders:300012345678")
        assert (touch.amount_fen, touch.channel, touch.at.isoformat()) == (129900, "jd", "2024-05-01T02:00:00+00:00")
        facts = await session.scalar(select(MemberFacts).where(MemberFacts.member_id == touch.member_id))
        assert facts is not None
        assert (facts.purchases, facts.spend_fen) == (2, 135890)
        assert await points.balance_of(session, touch.member_id) == 0

    before = await _counts(runtime, brand)
    again = await _upload(client, headers, "jd_orders", "jd-again.csv", jd.encode("gb18030"))
    assert (again.json()["created"], again.json()["updated"], again.json()["unchanged"]) == (0, 0, 2)
    assert await _counts(runtime, brand) == before

    douyin = _xlsx(
        [
            ["主订单编号", "openid", "订单提交时间", "订单应付金额", "选购商品"],
            ["6919000000000001", "dy_open_01", "2024-06-18 20:00:00", 88, "礼盒"],
        ]
    )
    earned = await _upload(client, headers, "douyin_orders", "douyin.xlsx", douyin, earns_points="true")
    assert (earned.status_code, earned.json()["file_format"], earned.json()["created"]) == (200, "xlsx", 1)
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        touch = await touches.touch_by_ref(session, "purchase", "import:douyin_orders:6919000000000001")
        assert await points.balance_of(session, touch.member_id) == 88


async def test_row_errors_all_or_nothing_then_valid_rows(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    pos = (
        "门店编码,会员号,手机号,小票号,时间,金额\n"
        "SH001,M0001,,R0001,2024-05-01 12:00:00,100.00\n"
        "SH001,,12345,R0002,2024-05-01 12:05:00,20\n"
        "SH001,M0002,,R0003,yesterday,20\n"
        "SH001,M0003,,R0004,2024-05-01 12:10:00,-5\n"
        "SH001,,,R0005,2024-05-01 12:15:00,5\n"
        "SH001,M0004,,R0001,2024-05-01 12:20:00,5\n"
    )
    content = pos.encode("gb18030")
    refused = await _upload(client, headers, "pos_orders", "pos.csv", content)
    assert refused.status_code == 422
    report = refused.json()["data"]
    assert (report["rows"], report["valid_rows"], report["invalid_rows"], report["imported"]) == (6, 1, 5, False)
    assert [(e["row"], e["column"], e["message"]) for e in report["errors"]] == [
        (3, "手机号", "This phone number is not valid; check the digits."),
        (4, "时间", "Not a date and time: 'yesterday'; use 2024-05-01 12:30:00."),
        (5, "金额", "An amount is never negative: '-5'."),
        (6, "会员号", "Give a member number or a phone."),
        (7, "小票号", "This row repeats row 2."),
    ]
    assert await _counts(runtime, brand) == (0, 0, 0, 0)

    accepted = await _upload(client, headers, "pos_orders", "pos.csv", content, mode="valid_rows")
    assert (accepted.status_code, accepted.json()["created"], accepted.json()["imported"]) == (200, 1, True)
    assert await _counts(runtime, brand) == (1, 1, 1, 1)
    again = await _upload(client, headers, "pos_orders", "pos.csv", content, mode="valid_rows")
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 1)

    changed = "门店编码,会员号,小票号,时间,金额\nSH001,M0001,R0001,2024-05-01 12:00:00,90\n".encode()
    refused_change = await _upload(client, headers, "pos_orders", "pos2.csv", changed)
    assert refused_change.json()["data"]["errors"][0]["message"] == (
        "Order R0001 was imported before with other values; corrections of orders are not imported."
    )
    async with runtime.db.read_session(tenant_id=brand.id) as session:
        logs = list(await session.scalars(select(MemberImport).order_by(MemberImport.created_at)))
        logged = [(x.layout, x.rows, x.created, x.unchanged, x.invalid_rows) for x in logs]
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.action == "members.import")))
    assert logged == [
        ("pos_orders", 6, 1, 0, 5),
        ("pos_orders", 6, 0, 1, 5),
    ]
    assert len(actions) == 2


async def test_member_layouts_and_a_write_time_refusal(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    jd = "用户PIN,手机号,性别\njd_pin_001,139****0001,男\njd_pin_002,,unknown-gender\n"
    report = (await _upload(client, headers, "jd_members", "jd.csv", jd.encode(), mode="valid_rows")).json()
    assert (report["created"], [(e["row"], e["column"]) for e in report["errors"]]) == (1, [(3, "性别")])
    douyin = "openid,手机号\ndy_open_a,13800138001\n"
    assert (await _upload(client, headers, "douyin_members", "dy.csv", douyin.encode("utf-8-sig"))).json()[
        "created"
    ] == 1
    members = await _members(runtime, brand)
    assert [ids for _id, ids in members] == [[("douyin_openid", True), ("phone", False)], [("jd_pin", True)]]

    # Two verified member numbers of one CRM file land on one member past its cap: refused while linking.
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await oneid.do_set_caps(session, system_actor(brand.id), {"pos_member_no": 1})
    crm = "手机号,手机已验证,会员号\n13800138002,是,C1\n13800138002,是,C2\n"
    refused = await _upload(client, headers, "crm_members", "crm.csv", crm.encode())
    assert refused.status_code == 422
    errors = refused.json()["data"]["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(3, "")]
    assert "review the member" in errors[0]["message"]
    assert len(await _members(runtime, brand)) == 2


async def test_missing_columns_permission_and_brand_isolation(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    other = await make_brand(runtime)
    headers = bearer(await make_token(runtime, brand))
    missing = await _upload(client, headers, "tmall_orders", "t.csv", "订单编号,OUID\n1,a\n".encode())
    assert missing.status_code == 422
    assert missing.json()["detail"] == "The first row must name the columns; missing: ordered_at, amount."
    reader = bearer(await make_token(runtime, brand, ["members.read"]))
    denied = await _upload(client, reader, "crm_members", "c.csv", b"phone\n13800138000\n")
    assert denied.status_code == 403
    assert (await client.post(f"{API}/nope", files={"file": ("x.csv", b"a\n")}, headers=headers)).status_code in (
        404,
        405,
    )

    tmall = "OUID,手机号\nshared_ouid,13800138000\n".encode()
    assert (await _upload(client, headers, "tmall_members", "t.csv", tmall)).json()["created"] == 1
    other_headers = bearer(await make_token(runtime, other))
    elsewhere = await _upload(client, other_headers, "tmall_members", "t.csv", tmall)
    assert (elsewhere.json()["created"], elsewhere.json()["unchanged"]) == (1, 0)
    assert len(await _members(runtime, brand)) == len(await _members(runtime, other)) == 1
    listed = (await client.get(API, headers=other_headers)).json()
    assert [(x["layout"], x["created"]) for x in listed] == [("tmall_members", 1)]


async def test_console_import_page(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    csrf = await console_login(client, brand.owner.email)
    page = await client.get("/console/members/import", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "tmall_members" in page.text
    assert "买家OUID" in page.text
    content = "手机号,姓名\n13800138000,李四\n12,王五\n".encode("gb18030")
    response = await client.post(
        "/console/members/import",
        files={"file": ("crm.csv", content)},
        data={"layout": "crm_members", "mode": "all", "csrf_token": csrf},
        headers={"accept": "text/html", "x-csrf-token": csrf},
    )
    assert response.status_code == 422
    assert 'id="import-report"' in response.text
    assert await _counts(runtime, brand) == (0, 0, 0, 0)
