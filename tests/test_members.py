"""Real-name verification (members): ID number rules, the API, one identity per account and one account
per identity under concurrency, masking, permissions and rate limits — on both tiers."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pytest
from sqlalchemy import func, select
from stdnum.cn import ric

from tests.factories import bearer, console_login, make_brand, make_token, make_user
from tests.members_factories import adult_id, make_consumer, resident_id
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.runtime import Runtime
from zhongtai.members import rules
from zhongtai.members import service as members_service
from zhongtai.members.models import MemberIdentity
from zhongtai.members.service import ID_PURPOSE, NAME_PURPOSE

TODAY = date(2026, 11, 22)
VALID = "11010519491231002X"  # the standard's own example: Chaoyang, Beijing, born 1949-12-31


def test_valid_number_gives_birth_date_and_region() -> None:
    found = rules.check_resident_id(" 11010519491231002x ", today=TODAY)
    assert (found.number, found.birth_date, found.region_code, found.province) == (
        VALID,
        date(1949, 12, 31),
        "110105",
        "北京市",
    )


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("110105194912310021", "The ID number's check digit is wrong; check the digits."),
        ("11010519491231002", "An ID number has 18 characters."),
        ("1101051949123100AX", "An ID number has 17 digits and then a digit or X."),
        (resident_id(date(2099, 1, 1)), "The ID number's birth date is in the future."),
        (
            "11010519490230002" + ric.calc_check_digit("110105194902300020"),
            "The ID number has no valid birth date or region.",
        ),  # 30 February
        (resident_id(date(1990, 1, 1), region="990101"), "The ID number has no valid birth date or region."),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(number: str, problem: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        rules.check_resident_id(number, today=TODAY)
    assert (refused.value.message, refused.value.data) == (problem, {"field": "id_number"})


def test_age_and_masks() -> None:
    assert rules.age_on(date(2008, 11, 22), TODAY) == 18
    assert rules.age_on(date(2008, 11, 23), TODAY) == 17
    assert rules.age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert rules.age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18
    assert rules.mask_id_number(VALID) == "1101**********002X"
    assert (rules.mask_name("张三"), rules.mask_name("欧阳娜娜")) == ("张*", "欧***")


async def _submit(client: httpx.AsyncClient, token: str, number: str, name: str = "张三") -> httpx.Response:
    return await client.post(
        "/api/v1/consumer/identity", json={"name": name, "id_number": number}, headers=bearer(token)
    )


async def test_verify_end_to_end(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    consumer, token = await make_consumer(runtime, brand)
    assert (await client.get("/api/v1/consumer/identity", headers=bearer(token))).status_code == 404
    created = await _submit(client, token, VALID.lower(), name=" 张三 ")
    assert created.status_code == 201, created.text
    identity = created.json()["identity"]
    assert created.json()["is_new"] is True
    assert {k: identity[k] for k in ("consumer_id", "name_masked", "id_masked", "birth_year", "region_code")} == {
        "consumer_id": str(consumer.id),
        "name_masked": "张*",
        "id_masked": "1101**********002X",
        "birth_year": 1949,
        "region_code": "110105",
    }
    assert identity["meets_alcohol_age"] is True
    assert identity["verifier"] == "sandbox"
    # Retrying the same identity is safe and answers the same record.
    again = await _submit(client, token, VALID)
    assert (again.status_code, again.json()["is_new"], again.json()["identity"]["id"]) == (200, False, identity["id"])
    mine = await client.get("/api/v1/consumer/identity", headers=bearer(token))
    assert mine.json()["id"] == identity["id"]
    # Stored encrypted; the keyed hash finds it.
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(MemberIdentity))
    assert row is not None
    assert VALID not in row.id_ciphertext
    assert "张三" not in row.name_ciphertext
    assert runtime.crypto.pii.decrypt(row.id_ciphertext, purpose=ID_PURPOSE) == VALID
    assert runtime.crypto.pii.decrypt(row.name_ciphertext, purpose=NAME_PURPOSE) == "张三"
    assert row.id_hash == runtime.crypto.lookup_hash(VALID, purpose=ID_PURPOSE)

    other = await _submit(client, token, adult_id(7))
    assert (other.status_code, other.json()["error"]) == (409, "already_verified")
    _, second_token = await make_consumer(runtime, brand)
    taken = await _submit(client, second_token, VALID)
    assert (taken.status_code, taken.json()["error"]) == (409, "identity_in_use")
    mismatch = await _submit(client, second_token, adult_id(8), name="不符")
    assert (mismatch.status_code, mismatch.json()["error"]) == (422, "identity_mismatch")
    bad = await _submit(client, second_token, "110105194912310021")
    assert (bad.status_code, bad.json()["data"]["field"]) == (422, "id_number")
    # The same person may verify with another brand: uniqueness is per brand.
    other_brand = await make_brand(runtime)
    _, foreign = await make_consumer(runtime, other_brand)
    assert (await _submit(client, foreign, VALID)).status_code == 201


async def test_minor_is_verified_but_flagged(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    _, token = await make_consumer(runtime, brand)
    minor = resident_id(date(members_service.today().year - 16, 1, 1))
    created = await _submit(client, token, minor)
    assert created.status_code == 201, created.text
    assert (created.json()["identity"]["age"], created.json()["identity"]["meets_alcohol_age"]) == (16, False)


async def test_one_account_per_identity_under_concurrency(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    tokens = [(await make_consumer(runtime, brand))[1] for _ in range(6)]
    answers = await asyncio.gather(*(_submit(client, token, VALID) for token in tokens))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409, 409, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"identity_in_use"}
    # And one identity per account: one account racing two numbers gets exactly one.
    _, token = await make_consumer(runtime, brand)
    raced = await asyncio.gather(_submit(client, token, adult_id(1)), _submit(client, token, adult_id(2)))
    assert sorted(a.status_code for a in raced) == [201, 409]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(MemberIdentity)) == 2


async def test_attempts_are_rate_limited_per_account(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    _, token = await make_consumer(runtime, brand)
    for _ in range(5):
        assert (await _submit(client, token, "110105194912310021")).status_code == 422
    limited = await _submit(client, token, VALID)
    assert (limited.status_code, limited.json()["error"]) == (429, "rate_limited")
    assert "retry-after" in limited.headers


async def test_staff_list_is_masked_and_needs_the_permission(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    _, consumer_token = await make_consumer(runtime, brand)
    assert (await _submit(client, consumer_token, VALID)).status_code == 201
    token = await make_token(runtime, brand)
    listed = await client.get("/api/v1/members/identities", headers=bearer(token))
    assert listed.status_code == 200
    assert [(i["name_masked"], i["id_masked"]) for i in listed.json()["items"]] == [("张*", "1101**********002X")]
    assert VALID not in listed.text
    # Consumers are not staff; staff tokens without the scope are refused; staff cannot verify.
    assert (await client.get("/api/v1/members/identities", headers=bearer(consumer_token))).status_code == 403
    narrow = await make_token(runtime, brand, scopes=["codes.read"])
    refused = await client.get("/api/v1/members/identities", headers=bearer(narrow))
    assert (refused.status_code, refused.json()["data"]["permission"]) == (403, "members.read")
    assert (await _submit(client, token, adult_id(3))).status_code == 403

    viewer = await make_user(runtime, brand, "viewer")
    operator = await make_user(runtime, brand, "operator")
    await console_login(client, viewer.email)
    assert (await client.get("/console/members/identities", headers={"accept": "text/html"})).status_code == 403
    transport = client._transport  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as second:
        await console_login(second, operator.email)
        page = await second.get("/console/members/identities", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "1101**********002X" in page.text
    assert VALID not in page.text
    assert "张三" not in page.text
