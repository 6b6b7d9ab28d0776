"""Print-file lines: the fast PIN loop agrees with `rules.pin_for`, indices follow ids, and the link file
the database writes equals the lines built in Python (both tiers)."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.factories import make_brand, system_actor
from zhongtai.catalog import service as catalog
from zhongtai.catalog.rules import ProductDraft
from zhongtai.codes import export, generation, rules, serials, service
from zhongtai.codes.models import Code
from zhongtai.core.runtime import Runtime

GTIN = "06901234567892"


def plan(kind: str, *, first_id: int = 1_000, key: bytes | None = None) -> export.ExportPlan:
    return export.ExportPlan(
        tenant_id=uuid.uuid4(),
        batch_id=uuid.uuid4(),
        batch_number="20261122-ABCDEF",
        first_id=first_id,
        count=10,
        kind=kind,
        gtin=GTIN,
        resolver_base="https://id.brand.example",
        scheme="serial",
        pin_key=key,
    )


def some_serials(count: int) -> list[str]:
    made = serials.SerialKeyRing({1: os.urandom(32)}).serials(1, 1, count).decode("ascii")
    return [made[i : i + 16] for i in range(0, len(made), 16)]


@pytest.mark.parametrize("key_length", [0, 1, 32, 64, 65, 200])
def test_pins_equal_pin_for_for_every_key_length(key_length: int) -> None:
    key = os.urandom(key_length)
    serials = some_serials(500)

    assert list(export._pins(key, serials)) == [rules.pin_for(key, serial) for serial in serials]


def test_pin_lines_carry_position_serial_and_pin() -> None:
    key = hashlib.sha256(b"bench").digest()
    serials = some_serials(3)

    text = export._lines(plan("pins", key=key), [(1_000 + i, serial) for i, serial in enumerate(serials)])

    assert text == "".join(f"{i + 1},{s},{rules.pin_for(key, s)}\r\n" for i, s in enumerate(serials))


def test_link_lines_number_rows_by_id_also_across_gaps() -> None:
    serials = some_serials(4)
    ids = [1_001, 1_002, 1_005, 1_006]  # not contiguous: positions follow the ids

    text = export._lines(plan("links"), list(zip(ids, serials, strict=True)))

    prefix = "https://id.brand.example/01/06901234567892/21/"
    assert text == "".join(f"{position},{prefix}{s},{s}\r\n" for position, s in zip([2, 3, 6, 7], serials, strict=True))
    assert export._lines(plan("links"), []) == ""


# The second resolver holds a character that PostgreSQL's COPY text format would escape: the rows path.
@pytest.mark.parametrize("resolver_base", ["https://id.brand.example", "https://odd\\host"])
async def test_link_file_written_by_the_database_equals_the_python_lines(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, resolver_base: str
) -> None:
    brand = await make_brand(runtime)
    actor = system_actor(brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        product = await catalog.do_create_product(session, actor, ProductDraft(gtin=GTIN, name="Bottle"))
        batch, _ = await service.do_request_batch(
            session,
            runtime.crypto,
            actor,
            service.BatchRequest(product_id=product.id, level="item", quantity=2_500),
            public_url="https://id.brand.example",
        )
    await generation.generate_batch(runtime.db, brand.id, batch.id, chunk_size=1_000)
    monkeypatch.setattr(export, "READ_CHUNK", 700)
    link_plan = replace(
        plan("links", first_id=batch.first_code_id),
        tenant_id=brand.id,
        count=batch.quantity,
        lot="L 1/ä'",
        resolver_base=resolver_base,
    )

    written = b"".join([part async for part in export.stream_csv(runtime.db, link_plan)])

    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        rows = (await session.execute(select(Code.id, Code.serial).order_by(Code.id))).all()
    expected = export.header(link_plan) + export._lines(link_plan, [tuple(row) for row in rows])
    assert written == expected.encode()
    assert written.count(b"\r\n") == 2_501
    assert "/10/L%201%2F%C3%A4%27/21/" in expected
