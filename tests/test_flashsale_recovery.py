"""Nothing the gate accepted is lost: a persister killed with a batch in hand, a persister that
committed but never acknowledged, and a server killed while it was accepting buys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import make_brand
from tests.flashsale_factories import Sale, make_sale, open_limits, sale_pass
from tests.test_flashsale import orders, persist_all, purchases
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.flashsale.fastpath import state_of
from zhongtai.flashsale.gate import STREAM_GROUP, RedisGate
from zhongtai.flashsale.models import FlashSale
from zhongtai.flashsale.persister import Persister

WAIT_SECONDS = 60.0


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZT_")}
    env.update(
        ZT_ENV="test",
        ZT_DATA_DIR=str(settings.data_dir),
        ZT_DATABASE_URL=str(settings.database_url),
        ZT_IN_PROCESS_WORKER="false",
        ZT_LOG_LEVEL="WARNING",
        ZT_FLASHSALE_REQUESTS_PER_SECOND_PER_ADDRESS="1000000",
    )
    if settings.redis_url:
        env.update(ZT_REDIS_URL=settings.redis_url, ZT_REDIS_PREFIX=settings.redis_prefix)
    return env


def _spawn(arguments: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A process in a session of its own, so that killing its group also kills its children (granian's
    workers)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, *arguments],
            env=_env(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


async def _until(condition: Callable[[], object], what: str, log: Path | None = None) -> None:
    """Wait for a condition that the system under test must reach (no timing is asserted)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await condition():  # type: ignore[misc]
        if time.monotonic() > deadline:
            tail = _tail(log) if log else ""
            raise AssertionError(f"gave up waiting: {what}\n{tail}")
        await asyncio.sleep(0.05)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextmanager
def _reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        _kill(process)


async def _fill(runtime: Runtime, client: httpx.AsyncClient, sale: Sale, count: int) -> set[str]:
    answers = await asyncio.gather(
        *(
            client.post(sale.buy_url, headers={"authorization": f"Bearer {sale_pass(runtime, sale)}"})
            for _ in range(count)
        )
    )
    assert {a.status_code for a in answers} == {202}
    return {a.json()["reference"] for a in answers}


def _pg_dsn(settings: Settings) -> str:
    return str(settings.database_url).replace("postgresql+asyncpg://", "postgresql://")


async def test_killed_persister_loses_nothing(
    runtime: Runtime, client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    if runtime.redis is None:
        pytest.skip("the embedded gate writes each purchase in the buy's own transaction: there is no stream")
    open_limits(runtime)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=300)
    accepted = await _fill(runtime, client, sale, 300)
    stream = state_of(runtime).gate.keys(sale.id).stream  # type: ignore[attr-defined]
    redis = runtime.redis

    async def pending_of(consumer: str) -> int:
        rows = await redis.xpending_range(stream, STREAM_GROUP, min="-", max="+", count=1000, consumername=consumer)
        return len(rows)

    # Hold the purchases table so that the first persister is stuck between reading a batch and its commit.
    blocker = await asyncpg.connect(_pg_dsn(settings))
    try:
        await blocker.execute("BEGIN; LOCK TABLE flashsale_purchases IN SHARE ROW EXCLUSIVE MODE")
        first = _spawn(
            ["-m", "zhongtai.cli.main", "flashsale", "worker", "--batch-size", "100", "--name", "first"],
            settings,
            tmp_path / "first.log",
        )
        with _reaped(first):
            await _until(
                lambda: _equals(pending_of("first"), 100), "the first persister reads a batch", tmp_path / "first.log"
            )
            _kill(first)
        await blocker.execute("ROLLBACK")
    finally:
        await blocker.close()
    assert await purchases(runtime, sale) == []
    assert await pending_of("first") == 100

    second = _spawn(
        [
            "-m",
            "zhongtai.cli.main",
            "flashsale",
            "worker",
            "--batch-size",
            "100",
            "--claim-idle-ms",
            "0",
            "--name",
            "second",
        ],
        settings,
        tmp_path / "second.log",
    )
    with _reaped(second):

        async def all_written() -> bool:
            return len(await purchases(runtime, sale)) == 300 and await pending_of("second") == 0

        await _until(all_written, "the second persister writes every accepted buy", tmp_path / "second.log")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    rows = await purchases(runtime, sale)
    assert sorted(r.reference for r in rows) == sorted(accepted)
    assert sorted(o.source_ref for o in await orders(runtime, sale)) == sorted(accepted)  # one order each
    assert await pending_of("first") == 0


async def _equals(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_persister_that_never_acknowledged_writes_nothing_twice(
    runtime: Runtime, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    if runtime.redis is None:
        pytest.skip("no stream on the embedded tier")
    open_limits(runtime)
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=50)
    accepted = await _fill(runtime, client, sale, 50)
    crashing = Persister(runtime.db, runtime.redis, runtime.settings.redis_prefix, name="crashing", block_ms=1)

    async def crash(*_args: object) -> None:
        raise ConnectionError("killed between the commit and XACK")

    monkeypatch.setattr(crashing.redis, "xack", crash)
    with pytest.raises(ConnectionError):
        await crashing.run_once()
    monkeypatch.undo()
    assert len(await purchases(runtime, sale)) == 50  # committed, never acknowledged
    assert await persist_all(runtime) == 50  # delivered again (claimed), inserted as no-ops
    rows = await purchases(runtime, sale)
    assert sorted(r.reference for r in rows) == sorted(accepted)
    assert sorted(o.source_ref for o in await orders(runtime, sale)) == sorted(accepted)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_killed_server_loses_no_accepted_buy(runtime: Runtime, settings: Settings, tmp_path: Path) -> None:
    brand = await make_brand(runtime)
    sale = await make_sale(runtime, brand, stock=150)
    port = _free_port()
    server = _spawn(
        [
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "zhongtai.app:app_factory",
        ],
        settings,
        tmp_path / "server.log",
    )
    accepted: set[str] = set()
    with _reaped(server):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await _until(healthy, "the server answers /healthz", tmp_path / "server.log")

            async def buyer() -> None:
                for _ in range(20):
                    try:
                        answer = await http.post(
                            sale.buy_url, headers={"authorization": f"Bearer {sale_pass(runtime, sale)}"}
                        )
                    except httpx.TransportError:
                        return  # the server is gone
                    if answer.status_code == 202:
                        accepted.add(answer.json()["reference"])
                    elif answer.json()["error"] == "sold_out":
                        return

            buyers = [asyncio.create_task(buyer()) for _ in range(30)]

            async def enough() -> bool:
                return len(accepted) >= 40

            await _until(enough, "the server accepts buys")
            _kill(server)  # mid-sale, with requests in flight: the master and its workers at once
            await asyncio.gather(*buyers)
    assert len(accepted) >= 40
    await persist_all(runtime)
    rows = await purchases(runtime, sale)
    persisted = {r.reference for r in rows}
    assert accepted <= persisted  # every buy answered 202 is in the database
    assert {o.source_ref for o in await orders(runtime, sale)} == persisted  # and is an order
    config = await state_of(runtime).sale(sale.id)
    assert config is not None
    left = await state_of(runtime).gate.stock_left(config)
    assert len(persisted) == sale.stock - left  # and nothing taken from stock is missing from it
    if isinstance(state_of(runtime).gate, RedisGate):
        assert runtime.redis is not None
        assert await runtime.redis.xlen(state_of(runtime).gate.keys(sale.id).stream) == len(persisted)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        assert await session.scalar(select(func.count()).select_from(FlashSale)) == 1
