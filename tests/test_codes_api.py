"""Code batches over the API on both tiers: request, generate, export, void, look up."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
import zipfile

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.factories import Brand, bearer, make_brand, make_token, system_actor
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import ProductDraft
from zhongtai.codes import generation, rules, serials, service
from zhongtai.codes.models import Code, CodeBatch, LegacySerial
from zhongtai.core.jobs import Worker
from zhongtai.core.models import AuditEvent, OutboxJob
from zhongtai.core.runtime import Runtime

GTIN = "06901234567892"


async def make_product(runtime: Runtime, brand: Brand, *, items_per_case: int | None = 6) -> uuid.UUID:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        product = await catalog.do_create_product(
            session,
            system_actor(brand.id),
            ProductDraft(
                gtin=GTIN,
                name="飞天 53%vol 500ml",
                items_per_case=items_per_case,
                cases_per_pallet=4 if items_per_case else None,
            ),
        )
    return product.id


async def run_jobs(runtime: Runtime) -> None:
    worker = Worker(runtime.db)
    while await worker.run_once():
        pass


async def request_batch(
    client: httpx.AsyncClient, token: str, product_id: uuid.UUID, quantity: int, level: str = "item"
) -> dict:
    response = await client.post(
        "/api/v1/codes/batches",
        json={"product_id": str(product_id), "level": level, "quantity": quantity},
        headers=bearer(token),
    )
    assert response.status_code == 202, response.text
    return response.json()


async def test_batch_generates_exports_and_is_audited(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    product_id = await make_product(runtime, brand)
    batch = await request_batch(client, token, product_id, 2500)
    assert batch["status"] == "requested"
    assert batch["generated_count"] == 0
    await run_jobs(runtime)

    detail = (await client.get(f"/api/v1/codes/batches/{batch['id']}", headers=bearer(token))).json()
    assert detail["status"] == "generated"
    assert detail["generated_count"] == 2500
    assert detail["state_counts"] == {"generated": 2500}

    links = await client.get(f"/api/v1/codes/batches/{batch['id']}/export?kind=links", headers=bearer(token))
    assert links.status_code == 200
    assert links.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(links.text)))
    assert rows[0] == ["index", "uri", "serial"]
    assert len(rows) == 2501
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 2501))
    for _, uri, serial in rows[1:50]:
        assert rules.parse_code(uri) == rules.ParsedCode(serial=serial, gtin=GTIN)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        stored = set(await session.scalars(select(Code.serial)))
    assert stored == {r[2] for r in rows[1:]}

    pins = await client.get(f"/api/v1/codes/batches/{batch['id']}/export?kind=pins", headers=bearer(token))
    assert pins.status_code == 200
    pin_rows = list(csv.reader(io.StringIO(pins.text)))[1:]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        key = await service.pin_key(session, runtime.crypto, 1)
    assert all(rules.pin_for(key, serial) == pin for _, serial, pin in pin_rows)

    zipped = await client.get(
        f"/api/v1/codes/batches/{batch['id']}/export?kind=links&part_size=1000", headers=bearer(token)
    )
    archive = zipfile.ZipFile(io.BytesIO(zipped.content))
    names = archive.namelist()
    assert [n.rsplit("-", 1)[1] for n in names] == ["0001.csv", "0002.csv", "0003.csv"]
    sizes = [len(archive.read(n).decode().strip().splitlines()) - 1 for n in names]
    assert sizes == [1000, 1000, 500]

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        exports = (
            await session.scalars(select(AuditEvent.data).where(AuditEvent.action == "codes.batch.export"))
        ).all()
        stored_batch = await session.get(CodeBatch, uuid.UUID(batch["id"]))
    assert sorted(e["kind"] for e in exports) == ["links", "links", "pins"]
    assert stored_batch is not None
    assert stored_batch.export_count == 3
    assert stored_batch.status == "exported"


async def test_pin_files_need_their_own_permission(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    product_id = await make_product(runtime, brand)
    owner_token = await make_token(runtime, brand)
    batch = await request_batch(client, owner_token, product_id, 10)
    await run_jobs(runtime)
    operator_token = await make_token(runtime, brand, scopes=["codes.read", "codes.export"])
    refused = await client.get(f"/api/v1/codes/batches/{batch['id']}/export?kind=pins", headers=bearer(operator_token))
    assert refused.status_code == 403
    assert refused.json()["data"]["permission"] == "codes.export_pins"
    allowed = await client.get(f"/api/v1/codes/batches/{batch['id']}/export?kind=links", headers=bearer(operator_token))
    assert allowed.status_code == 200


async def test_export_refused_until_generated(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    batch = await request_batch(client, token, await make_product(runtime, brand), 5)
    response = await client.get(f"/api/v1/codes/batches/{batch['id']}/export", headers=bearer(token))
    assert response.status_code == 409
    assert response.json()["error"] == "batch_not_ready"


async def test_idempotency_key_makes_retries_safe(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    product_id = await make_product(runtime, brand)
    body = {"product_id": str(product_id), "quantity": 7}
    headers = {**bearer(token), "idempotency-key": "line3-2026-11-22-0001"}
    first = await client.post("/api/v1/codes/batches", json=body, headers=headers)
    again = await client.post("/api/v1/codes/batches", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(CodeBatch)) == 1
        assert await session.scalar(select(func.count()).select_from(OutboxJob)) == 1


async def test_batch_request_refusals(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    product_id = await make_product(runtime, brand, items_per_case=None)
    cases = await client.post(
        "/api/v1/codes/batches",
        json={"product_id": str(product_id), "level": "case", "quantity": 3},
        headers=bearer(token),
    )
    assert cases.status_code == 422
    assert cases.json()["data"]["field"] == "level"
    unknown = await client.post(
        "/api/v1/codes/batches", json={"product_id": str(uuid.uuid4()), "quantity": 3}, headers=bearer(token)
    )
    assert unknown.status_code == 422
    assert unknown.json()["data"]["field"] == "product_id"
    too_many = await client.post(
        "/api/v1/codes/batches", json={"product_id": str(product_id), "quantity": 10_000_001}, headers=bearer(token)
    )
    assert too_many.status_code == 422


async def test_void_range_then_whole_batch(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    batch = await request_batch(client, token, await make_product(runtime, brand), 50)
    await run_jobs(runtime)
    url = f"/api/v1/codes/batches/{batch['id']}/void"
    partial = await client.post(
        url, json={"reason": "misprint", "from_index": 10, "to_index": 20}, headers=bearer(token)
    )
    assert partial.status_code == 200
    assert partial.json()["voided"] == 11
    counts = (await client.get(f"/api/v1/codes/batches/{batch['id']}", headers=bearer(token))).json()["state_counts"]
    assert counts == {"generated": 39, "voided": 11}
    bad = await client.post(url, json={"reason": "x", "from_index": 40, "to_index": 51}, headers=bearer(token))
    assert bad.status_code == 422
    whole = await client.post(url, json={"reason": "leaked"}, headers=bearer(token))
    assert whole.json()["voided"] == 39
    assert whole.json()["batch"]["status"] == "voided"
    export = await client.get(f"/api/v1/codes/batches/{batch['id']}/export", headers=bearer(token))
    assert export.status_code == 409
    assert export.json()["error"] == "batch_voided"


async def test_lookup_by_uri_serial_and_sscc(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    product_id = await make_product(runtime, brand)
    settings = await client.put(
        "/api/v1/codes/settings",
        json={"gs1_company_prefix": "6901234", "resolver_base": "https://id.brand.example"},
        headers=bearer(token),
    )
    assert settings.status_code == 200
    items = await request_batch(client, token, product_id, 3)
    cases = await request_batch(client, token, product_id, 2, "case")
    more_cases = await request_batch(client, token, product_id, 2, "case")
    assert cases["scheme"] == more_cases["scheme"] == "sscc"
    await run_jobs(runtime)
    rows = list(
        csv.reader(
            io.StringIO((await client.get(f"/api/v1/codes/batches/{items['id']}/export", headers=bearer(token))).text)
        )
    )
    uri, serial = rows[1][1], rows[1][2]
    assert uri == f"https://id.brand.example/01/{GTIN}/21/{serial}"
    by_uri = (await client.get("/api/v1/codes/lookup", params={"code": uri}, headers=bearer(token))).json()
    assert by_uri["serial"] == serial
    assert by_uri["state"] == "generated"
    assert by_uri["index_in_batch"] == 1
    assert by_uri["level"] == "item"
    by_serial = await client.get("/api/v1/codes/lookup", params={"code": serial}, headers=bearer(token))
    assert by_serial.json()["uri"] == uri
    case_rows = list(
        csv.reader(
            io.StringIO(
                (await client.get(f"/api/v1/codes/batches/{more_cases['id']}/export", headers=bearer(token))).text
            )
        )
    )
    ssccs = [r[2] for r in case_rows[1:]]
    assert ssccs == [rules.sscc(0, "6901234", 3), rules.sscc(0, "6901234", 4)], "references continue across batches"
    by_sscc = (await client.get("/api/v1/codes/lookup", params={"code": ssccs[0]}, headers=bearer(token))).json()
    assert by_sscc["level"] == "case"
    assert by_sscc["uri"] == f"https://id.brand.example/00/{ssccs[0]}"
    missing = await client.get("/api/v1/codes/lookup", params={"code": "A" * 16}, headers=bearer(token))
    assert missing.status_code == 404
    unreadable = await client.get("/api/v1/codes/lookup", params={"code": "not a code"}, headers=bearer(token))
    assert unreadable.status_code == 400
    assert unreadable.json()["error"] == "code_unreadable"
    other = await make_brand(runtime)
    foreign = await client.get(
        "/api/v1/codes/lookup", params={"code": serial}, headers=bearer(await make_token(runtime, other))
    )
    assert foreign.status_code == 404


async def test_concurrent_generation_keeps_codes_unique_and_exact(runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    product_id = await make_product(runtime, brand)
    batches = []
    for quantity in (3000, 2000):
        async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
            batch, _ = await service.do_request_batch(
                session,
                runtime.crypto,
                system_actor(brand.id),
                service.BatchRequest(product_id, "item", quantity),
                public_url="https://id.brand.example",
            )
            batches.append(batch)
    # Two batches at once, and one of them run twice at the same time (a duplicated job).
    await asyncio.gather(
        generation.generate_batch(runtime.db, brand.id, batches[0].id, chunk_size=500),
        generation.generate_batch(runtime.db, brand.id, batches[0].id, chunk_size=500),
        generation.generate_batch(runtime.db, brand.id, batches[1].id, chunk_size=700),
    )
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        total = await session.scalar(select(func.count()).select_from(Code))
        distinct = await session.scalar(select(func.count(func.distinct(Code.serial))))
        ids = list(await session.scalars(select(Code.id).order_by(Code.id)))
        done = list(await session.scalars(select(CodeBatch.generated_count).order_by(CodeBatch.quantity.desc())))
    assert total == distinct == 5000
    expected = list(range(batches[0].first_code_id, batches[0].first_code_id + 3000)) + list(
        range(batches[1].first_code_id, batches[1].first_code_id + 2000)
    )
    assert ids == sorted(expected)
    assert done == [3000, 2000]


async def test_pin_key_rotation_keeps_old_batches_verifiable(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    product_id = await make_product(runtime, brand)
    old = await request_batch(client, token, product_id, 5)
    rotated = await client.post("/api/v1/codes/pin-keys/rotate", headers=bearer(token))
    assert rotated.json()["pin_key_version"] == 2
    new = await request_batch(client, token, product_id, 5)
    assert (old["pin_key_version"], new["pin_key_version"]) == (1, 2)
    await run_jobs(runtime)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        key1 = await service.pin_key(session, runtime.crypto, 1)
        key2 = await service.pin_key(session, runtime.crypto, 2)
    assert key1 != key2
    for batch, key in ((old, key1), (new, key2)):
        text = (await client.get(f"/api/v1/codes/batches/{batch['id']}/export?kind=pins", headers=bearer(token))).text
        for _, serial, pin in list(csv.reader(io.StringIO(text)))[1:]:
            assert rules.check_pin(key, serial, pin)


async def test_serials_are_the_encrypted_ids_and_only_the_exact_serial_finds_a_code(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    product_id = await make_product(runtime, brand)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        batch, _ = await service.do_request_batch(
            session,
            runtime.crypto,
            system_actor(brand.id),
            service.BatchRequest(product_id, "item", 6),
            public_url="https://id.brand.example",
        )
    await generation.generate_batch(runtime.db, brand.id, batch.id, chunk_size=4)
    ring = serials.keyring_for(runtime.settings.secrets.pii_keys)
    assert batch.serial_key_version == ring.current_version
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = [(row.id, row.serial) for row in await session.execute(select(Code.id, Code.serial).order_by(Code.id))]
    assert [code_id for code_id, _ in rows] == list(range(batch.first_code_id, batch.first_code_id + 6))
    assert [serial for _, serial in rows] == [ring.serial(ring.current_version, code_id) for code_id, _ in rows]
    # Another key version's serial of an existing id is not that code.
    other_version = serials.SerialKeyRing({2: b"x" * 32})
    forged = other_version.serial(2, rows[0][0])
    for text in (forged, "B" + forged[1:]):
        missing = await client.get("/api/v1/codes/lookup", params={"code": text}, headers=bearer(token))
        assert missing.status_code == 404, text
    found = await client.get("/api/v1/codes/lookup", params={"code": rows[0][1]}, headers=bearer(token))
    assert found.status_code == 200
    assert found.json()["serial"] == rows[0][1]


async def test_random_serials_made_before_encrypted_ids_are_still_found(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    product_id = await make_product(runtime, brand)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        batch, _ = await service.do_request_batch(
            session,
            runtime.crypto,
            system_actor(brand.id),
            service.BatchRequest(product_id, "item", 2),
            public_url="https://id.brand.example",
        )
    await generation.generate_batch(runtime.db, brand.id, batch.id)
    # What the migration leaves for a code printed with a random serial.
    legacy = "QZ3RANDOMLEGACY7"
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await session.execute(update(Code).where(Code.id == batch.first_code_id).values(serial=legacy))
        session.add(LegacySerial(serial=legacy, code_id=batch.first_code_id))
    found = await client.get("/api/v1/codes/lookup", params={"code": legacy}, headers=bearer(token))
    assert found.status_code == 200
    assert found.json()["serial"] == legacy
    other = await make_brand(runtime, slug="other-legacy")
    foreign = await client.get(
        "/api/v1/codes/lookup", params={"code": legacy}, headers=bearer(await make_token(runtime, other))
    )
    assert foreign.status_code == 404


async def test_a_generation_that_gives_up_marks_the_batch_failed(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    batch = await request_batch(client, token, await make_product(runtime, brand), 10)

    async def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(generation, "generate_batch", broken)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        job = await session.scalar(select(OutboxJob))
        assert job is not None
        job.attempts = job.max_attempts - 2
    await run_jobs(runtime)  # one more failure: retried later, the batch still waits
    detail = (await client.get(f"/api/v1/codes/batches/{batch['id']}", headers=bearer(token))).json()
    assert detail["status"] == "requested"
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        job = await session.scalar(select(OutboxJob))
        assert job is not None
        job.available_at = job.created_at
    await run_jobs(runtime)  # the last attempt
    detail = (await client.get(f"/api/v1/codes/batches/{batch['id']}", headers=bearer(token))).json()
    assert detail["status"] == "failed"
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        stored = await session.get(CodeBatch, uuid.UUID(batch["id"]))
        job = await session.scalar(select(OutboxJob))
    assert stored is not None
    assert stored.last_error == "OSError: disk full"
    assert job is not None
    assert job.status == "dead"
