"""Consumer sign-in by phone and SMS code (core/consumers.py) over HTTP, on both tiers."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import httpx
from sqlalchemy import select, text

from tests.factories import Brand, bearer, make_brand, make_token
from zhongtai.core import clock
from zhongtai.core.consumers import PHONE_PURPOSE
from zhongtai.core.models import Consumer, OtpChallenge, SandboxMessage
from zhongtai.core.runtime import Runtime

PHONE = "13812345678"
E164 = "+8613812345678"
CODE_RE = re.compile(r"验证码 (\d{6})")


async def _request_code(client: httpx.AsyncClient, brand: Brand, phone: str = PHONE) -> httpx.Response:
    return await client.post(f"/api/v1/public/{brand.tenant.slug}/otp", json={"phone": phone})


async def _sent_codes(runtime: Runtime, brand: Brand) -> list[str]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        bodies = await session.scalars(select(SandboxMessage.body).order_by(SandboxMessage.created_at))
        return [match.group(1) for body in bodies if (match := CODE_RE.search(body))]


async def _sign_in(client: httpx.AsyncClient, brand: Brand, code: str, phone: str = PHONE) -> httpx.Response:
    return await client.post(f"/api/v1/public/{brand.tenant.slug}/sessions", json={"phone": phone, "code": code})


async def _allow_resend(runtime: Runtime, phone_e164: str = E164) -> None:
    """Stands in for the minute between two codes (the limiter keeps its own clock)."""
    await runtime.limiter.reset(f"otp:phone:{runtime.crypto.lookup_hash(phone_e164, purpose=PHONE_PURPOSE)}")


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_otp_sign_in_end_to_end(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    sent = await _request_code(client, brand)
    assert sent.status_code == 202, sent.text
    assert sent.json()["expires_in_seconds"] == 300
    assert sent.json()["phone_masked"] == "138****5678"
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        message = await session.scalar(select(SandboxMessage))
    assert message is not None
    assert (message.channel, message.recipient) == ("sms", "138****5678")
    assert message.body.startswith(f"【{brand.tenant.name}】验证码 ")
    [code] = await _sent_codes(runtime, brand)

    signed = await _sign_in(client, brand, code)
    assert signed.status_code == 201, signed.text
    body = signed.json()
    assert body["is_new"] is True
    assert body["token"].startswith("ztc_")
    assert body["consumer"]["phone_masked"] == "138****5678"
    me = await client.get("/api/v1/consumer/me", headers=bearer(body["token"]))
    assert (me.status_code, me.json()["id"]) == (200, body["consumer"]["id"])
    # A consumer is not staff.
    assert (await client.get("/api/v1/users", headers=bearer(body["token"]))).status_code == 403
    # The code is single-use.
    reused = await _sign_in(client, brand, code)
    assert (reused.status_code, reused.json()["error"]) == (400, "otp_missing")

    await _allow_resend(runtime)
    assert (await _request_code(client, brand, "+86 138-1234-5678")).status_code == 202
    second_code = (await _sent_codes(runtime, brand))[-1]
    again = await _sign_in(client, brand, second_code, "8613812345678")
    assert again.status_code == 201
    assert (again.json()["is_new"], again.json()["consumer"]["id"]) == (False, body["consumer"]["id"])

    out = await client.delete("/api/v1/consumer/session", headers=bearer(body["token"]))
    assert out.status_code == 204
    assert (await client.get("/api/v1/consumer/me", headers=bearer(body["token"]))).status_code == 401
    assert (await client.get("/api/v1/consumer/me", headers=bearer(again.json()["token"]))).status_code == 200


async def test_wrong_codes_are_counted_and_exhaust_the_challenge(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    await _request_code(client, brand)
    [code] = await _sent_codes(runtime, brand)
    for attempts_left in (4, 3, 2, 1, 0):
        wrong = await _sign_in(client, brand, _wrong(code))
        assert wrong.status_code == 401
        assert wrong.json() == {
            "error": "otp_wrong",
            "detail": "The code is wrong.",
            "data": {"attempts_left": attempts_left},
        }
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            attempts = await session.scalar(select(OtpChallenge.attempts))
        assert attempts == 5 - attempts_left, "the failed request kept its counted attempt"
    exhausted = await _sign_in(client, brand, code)
    assert (exhausted.status_code, exhausted.json()["error"]) == (400, "otp_exhausted")
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        challenge = await session.scalar(select(OtpChallenge))
        consumers = list(await session.scalars(select(Consumer)))
    assert challenge is not None
    assert (challenge.attempts, challenge.consumed_at) == (5, None)
    assert consumers == []


async def test_parallel_guesses_cannot_exceed_the_cap(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    await _request_code(client, brand)
    [code] = await _sent_codes(runtime, brand)
    responses = await asyncio.gather(*(_sign_in(client, brand, _wrong(code)) for _ in range(12)))
    assert Counter(r.status_code for r in responses) == Counter({401: 5, 400: 7})
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(OtpChallenge.attempts)) == 5


async def test_a_code_signs_in_once_even_in_parallel(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    await _request_code(client, brand)
    [code] = await _sent_codes(runtime, brand)
    responses = await asyncio.gather(*(_sign_in(client, brand, code) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [201, 400, 400, 400, 400, 400]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        consumers = list(await session.scalars(select(Consumer)))
        sessions = (await session.execute(text("SELECT count(*) FROM consumer_sessions"))).scalar_one()
    assert len(consumers) == 1
    assert sessions == 1


async def test_expired_code_is_refused(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    await _request_code(client, brand)
    [code] = await _sent_codes(runtime, brand)
    clock.advance(runtime.settings.otp_ttl_seconds + 1)
    expired = await _sign_in(client, brand, code)
    assert expired.status_code == 400
    assert expired.json() == {
        "error": "otp_missing",
        "detail": "No valid code for this number; request a new one.",
        "data": {},
    }


async def test_phone_is_encrypted_masked_and_found_by_keyed_hash(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    await _request_code(client, brand)
    [code] = await _sent_codes(runtime, brand)
    signed = await _sign_in(client, brand, code)
    assert signed.status_code == 201
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        raw = (
            await session.execute(
                text("SELECT phone_ciphertext, phone_hash, phone_masked FROM consumers WHERE tenant_id = :t"),
                {"t": brand.id if runtime.db.dialect == "postgresql" else brand.id.hex},
            )
        ).one()
        otp_hashes = (await session.execute(text("SELECT phone_hash, code_hash FROM otp_challenges"))).one()
    ciphertext, phone_hash, masked = raw
    assert PHONE not in ciphertext
    assert ciphertext.startswith(f"v{runtime.crypto.pii.current_version}.")
    assert runtime.crypto.pii.decrypt(ciphertext, purpose=PHONE_PURPOSE) == E164
    assert phone_hash == runtime.crypto.lookup_hash(E164, purpose=PHONE_PURPOSE)
    assert PHONE not in phone_hash
    assert masked == "138****5678"
    assert otp_hashes[0] == phone_hash
    assert code not in otp_hashes[1]
    # Staff see the mask only.
    listed = await client.get("/api/v1/consumers", headers=bearer(await make_token(runtime, brand)))
    assert [c["phone_masked"] for c in listed.json()["items"]] == ["138****5678"]
    assert PHONE not in listed.text


async def test_same_phone_in_two_brands_is_two_consumers(runtime: Runtime, client: httpx.AsyncClient) -> None:
    first, second = await make_brand(runtime), await make_brand(runtime)
    ids = []
    for brand in (first, second):
        await _allow_resend(runtime)
        assert (await _request_code(client, brand)).status_code == 202
        [code] = await _sent_codes(runtime, brand)
        signed = await _sign_in(client, brand, code)
        assert (signed.status_code, signed.json()["is_new"]) == (201, True)
        ids.append(signed.json()["consumer"]["id"])
    assert ids[0] != ids[1]
    for brand, consumer_id in zip((first, second), ids, strict=True):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            assert [str(c.id) for c in await session.scalars(select(Consumer))] == [consumer_id]
        listed = await client.get("/api/v1/consumers", headers=bearer(await make_token(runtime, brand)))
        assert [c["id"] for c in listed.json()["items"]] == [consumer_id]
    # A code sent for one brand does not sign in at the other.
    await _allow_resend(runtime)
    await _request_code(client, first)
    first_code = (await _sent_codes(runtime, first))[-1]
    crossed = await _sign_in(client, second, first_code)
    assert (crossed.status_code, crossed.json()["error"]) == (400, "otp_missing")


async def test_resend_is_limited_to_one_a_minute(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    assert (await _request_code(client, brand)).status_code == 202
    again = await _request_code(client, brand, "+8613812345678")
    assert again.status_code == 429
    assert again.json()["error"] == "rate_limited"
    assert again.json()["detail"] == "A code was just sent to this number; wait a minute."
    retry_after = int(again.headers["retry-after"])
    assert 55 <= retry_after <= 60
    assert again.json()["data"] == {"retry_after_seconds": retry_after}
    # Another number is not affected.
    assert (await _request_code(client, brand, "13912345678")).status_code == 202
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        challenges = list(await session.scalars(select(OtpChallenge)))
    assert len(challenges) == 2
    assert len(await _sent_codes(runtime, brand)) == 2


async def test_bad_phone_and_unknown_brand(runtime: Runtime, client: httpx.AsyncClient) -> None:
    brand = await make_brand(runtime)
    bad = await _request_code(client, brand, "12345")
    assert (bad.status_code, bad.json()["data"]) == (422, {"field": "phone"})
    unknown = await client.post("/api/v1/public/no-such-brand/otp", json={"phone": PHONE})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    platform = await client.post("/api/v1/public/platform/otp", json={"phone": PHONE})
    assert platform.status_code == 404
