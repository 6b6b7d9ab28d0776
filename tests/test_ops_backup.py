"""The backup and restore drill of docs/operations.md, on real data.

A brand is filled through the services — a funded rewards pool and ledger postings, EPCIS events under two
signed checkpoints (and an error declaration), a consumer with an encrypted phone and a member identity —
then backed up and restored the way an operator does it: `pg_dump --format=custom` → `pg_restore` into a
new database (PostgreSQL tier), `sqlite3 … ".backup …"` → a new data directory (embedded tier). Against
the restored copy, `zhongtai verify-restore`'s checks pass: the ledger recomputes to the same figures,
every signed checkpoint verifies against the restored log, and personal data decrypts with the keys — and
does not with other keys.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import _pg_admin
from tests.factories import Brand, make_brand, make_token
from tests.ledger_factories import make_books
from tests.members_factories import adult_id, make_consumer, verify_consumer
from tests.rewards_factories import make_pool
from tests.test_trace_epcis_capture import capture_ok, document, object_event
from tests.test_trace_log import sign
from zhongtai.cli.main import app
from zhongtai.cli.restore_check import verify_restore
from zhongtai.core.consumers import PHONE_PURPOSE
from zhongtai.core.crypto import DecryptionFailed
from zhongtai.core.models import Consumer
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.ledger import service as ledger
from zhongtai.ledger.service import EntryDraft, Line

PHONE = "+8613900001234"


async def _fill(client: httpx.AsyncClient, runtime: Runtime) -> tuple[Brand, uuid.UUID]:
    brand = await make_brand(runtime)
    await make_pool(runtime, brand.id, funded=50_000)
    books = await make_books(runtime, brand.id, pool_amount=2_000)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        for n, amount in enumerate((300, 150, 25)):
            await ledger.post(
                session, EntryDraft(f"payout:{n}", "payout", [Line(books.pool, -amount), Line(books.wallet, amount)])
            )
    token = await make_token(runtime, brand)
    await capture_ok(client, token, document(object_event("BK1"), object_event("BK2")))
    await sign(runtime, brand.id)
    await capture_ok(client, token, document(object_event("BK3")))
    declared = object_event(
        "BK2", errorDeclaration={"declarationTime": "2024-05-02T00:00:00Z", "reason": "incorrect_data"}
    )
    await capture_ok(client, token, document(declared))
    await sign(runtime, brand.id)
    consumer, _token = await make_consumer(runtime, brand, PHONE)
    await verify_consumer(runtime, brand, consumer.id, adult_id(7))
    return brand, consumer.id


def _other_keys() -> str:
    return "1:" + base64.b64encode(secrets.token_bytes(32)).decode()


def _restored_settings(settings: Settings, *, database_url: str, data_dir: Path, pii_keys: str | None) -> Settings:
    return Settings(
        env="test",
        data_dir=data_dir,
        database_url=database_url,
        log_json=False,
        in_process_worker=False,
        **({"pii_keys": pii_keys} if pii_keys else {}),
    )


async def _run(*command: str) -> None:
    done = await asyncio.to_thread(subprocess.run, list(command), capture_output=True, text=True)
    assert done.returncode == 0, (command[0], done.stderr)


@asynccontextmanager
async def _backup_and_restore(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """Back the test database up and restore it as a new one: (its URL, a data directory with the keys)."""
    if settings.is_sqlite:
        source = settings.data_dir / "zhongtai.db"
        backup = tmp_path / "backup" / "zhongtai.db"
        backup.parent.mkdir()
        await _run("sqlite3", str(source), f".backup '{backup}'")
        restored_dir = tmp_path / "restored"
        restored_dir.mkdir()
        shutil.copyfile(backup, restored_dir / "zhongtai.db")
        # The keys are kept apart from the data (here: the development secrets file; in production ZT_PII_KEYS).
        shutil.copyfile(settings.data_dir / "secrets.json", restored_dir / "secrets.json")
        yield f"sqlite+aiosqlite:///{restored_dir / 'zhongtai.db'}", restored_dir
        return
    parts = urlsplit(str(settings.database_url).replace("postgresql+asyncpg://", "postgresql://"))
    source_name = parts.path.lstrip("/")
    dump = tmp_path / "zhongtai.dump"
    await _run("pg_dump", "--format=custom", "--no-owner", f"--file={dump}", f"--dbname={parts.geturl()}")
    restored = f"{source_name}_restored"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)', f'CREATE DATABASE "{restored}"')
    try:
        target = parts._replace(path=f"/{restored}").geturl()
        await _run("pg_restore", "--no-owner", "--exit-on-error", f"--dbname={target}", str(dump))
        yield target.replace("postgresql://", "postgresql+asyncpg://"), settings.data_dir
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


async def test_backup_and_restore_drill(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    tool = "sqlite3" if settings.is_sqlite else "pg_restore"
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    brand, consumer_id = await _fill(client, runtime)
    before = await verify_restore(settings, tenant_slug=brand.tenant.slug)
    assert before["ok"], before["problems"]
    [original] = before["tenants"]
    assert (original["checkpoints"], original["checkpoints_verified"]) == (2, 2)
    assert original["log_size"] == 4  # three events and one error declaration
    assert original["ledger_lines"] >= 10
    assert original["pii_checked"] >= 4  # the phone, the ID number, the name, the log's signing key

    async with _backup_and_restore(settings, tmp_path) as (url, data_dir):
        with_keys = _restored_settings(settings, database_url=url, data_dir=data_dir, pii_keys=None)
        after = await verify_restore(with_keys)
        assert after["ok"], after["problems"]
        [restored] = [t for t in after["tenants"] if t["tenant"] == brand.tenant.slug]
        assert restored == original, "the ledger, the log and the personal data are restored exactly"

        restored_runtime = Runtime(with_keys)
        try:
            async with restored_runtime.db.unit_of_work(tenant_id=brand.id) as session:
                ciphertext = await session.scalar(select(Consumer.phone_ciphertext).where(Consumer.id == consumer_id))
                assert ciphertext is not None
                assert restored_runtime.crypto.pii.decrypt(ciphertext, purpose=PHONE_PURPOSE) == PHONE
        finally:
            await restored_runtime.stop()

        other_keys = _restored_settings(settings, database_url=url, data_dir=data_dir, pii_keys=_other_keys())
        without = await verify_restore(other_keys, tenant_slug=brand.tenant.slug)
        assert not without["ok"]
        [check] = without["tenants"]
        assert check["ledger_ok"] is True
        assert check["checkpoints_verified"] == 2, "checkpoints verify with the public keys alone"
        assert check["pii_failed"] == check["pii_checked"] == original["pii_checked"]
        assert all(problem.startswith(f"{brand.tenant.slug}: personal data") for problem in without["problems"])
        with pytest.raises(DecryptionFailed):
            Runtime(other_keys).crypto.pii.decrypt(ciphertext, purpose=PHONE_PURPOSE)


async def test_verify_restore_reports_a_damaged_copy(runtime: Runtime, settings: Settings) -> None:
    """A balance edited around the service and a checkpoint whose log lost entries are both reported."""
    from sqlalchemy import delete, update

    from zhongtai.ledger.models import LedgerBalance
    from zhongtai.trace.log_models import TraceLogNode

    brand = await make_brand(runtime)
    books = await make_books(runtime, brand.id, pool_amount=500)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        from zhongtai.trace import log

        await log.append(session, brand.id, [f"ni:///sha-256;{n:064x}?ver=CBV2.0".encode() for n in range(3)])
    await sign(runtime, brand.id)
    assert (await verify_restore(settings, tenant_slug=brand.tenant.slug))["ok"]
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        await session.execute(update(LedgerBalance).where(LedgerBalance.account_id == books.wallet).values(balance=7))
        await session.execute(delete(TraceLogNode).where(TraceLogNode.tenant_id == brand.id))
    damaged = await verify_restore(settings, tenant_slug=brand.tenant.slug)
    assert not damaged["ok"]
    [check] = damaged["tenants"]
    assert check["ledger_ok"] is False
    assert check["checkpoints_verified"] == 0
    assert any("ledger" in p for p in check["problems"])
    assert any("checkpoint of size 3" in p for p in check["problems"])
    missing = await verify_restore(settings, tenant_slug="no-such-brand")
    assert (missing["ok"], missing["problems"]) == (False, ["No tenant with code 'no-such-brand'."])


async def test_verify_restore_command(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`zhongtai verify-restore` prints the checks as JSON and exits 1 when the keys do not decrypt."""
    brand, _consumer = await _fill(client, runtime)
    monkeypatch.setenv("ZT_ENV", "test")
    monkeypatch.setenv("ZT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ZT_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("ZT_LOG_JSON", "false")
    args = ["verify-restore", "--tenant", brand.tenant.slug]
    passed = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert passed.exit_code == 0, passed.output
    report = json.loads(passed.output)
    assert report["ok"] is True
    assert report["tenants"][0]["checkpoints_verified"] == 2
    monkeypatch.setenv("ZT_PII_KEYS", _other_keys())
    failed = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert failed.exit_code == 1, failed.output
    assert json.loads(failed.output)["ok"] is False
