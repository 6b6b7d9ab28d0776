"""Reliability under faults, on the PostgreSQL + Redis tier, with stores of the test's own.

A real deployment in miniature — `zhongtai serve` (granian, two workers), `zhongtai worker` (jobs),
`zhongtai flashsale worker` (orders from accepted buys), a PostgreSQL cluster and a Redis with AOF
(`appendfsync everysec`) started by the test in a temporary folder — takes mixed traffic (flash-sale
buys, consumer PIN verifications that pay a red packet on a bottle's first genuine check) while, one
after another: a web worker, the job worker and the persister are killed with SIGKILL (and started
again, as a supervisor would), Redis is restarted and PostgreSQL is restarted.

Afterwards, with everything drained: every buy answered 202 is exactly one order, every verification
answered 200 is a scan row (and no scan row was written twice), every first genuine verification paid
exactly one red packet, the ledger's balances equal its journal and sum to zero, and the trace log
extends its last signed checkpoint. Requests that failed while a store was down are not counted as
accepted — they were answered with an error, so their senders know to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.factories import bearer, make_brand, make_token
from tests.flashsale_factories import Sale, make_sale, sale_pass
from tests.rewards_factories import make_pool, make_rule
from tests.test_codes_api import make_product, request_batch, run_jobs
from tests.test_codes_custody import _serials
from zhongtai.authenticity.models import KIND_PIN_OK, Scan
from zhongtai.codes import service as codes_service
from zhongtai.codes.models import CodeBatch
from zhongtai.codes.rules import pin_for
from zhongtai.core import migrate
from zhongtai.core.clock import utcnow
from zhongtai.core.models import OutboxJob
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.flashsale.models import FlashSalePurchase
from zhongtai.ledger import service as ledger
from zhongtai.rewards.models import RewardGrant
from zhongtai.sales.models import SalesOrder
from zhongtai.trace import checkpoint, log, merkle

PG_BIN = Path("/usr/lib/postgresql/15/bin")
WAIT_SECONDS = 90.0
CODES = 400
IS_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.slow


def _have_binaries() -> bool:
    return (PG_BIN / "initdb").exists() and shutil.which("redis-server") is not None and os.geteuid() == 0


if not _have_binaries():
    if IS_CI:
        raise RuntimeError(
            "the fault suite needs PostgreSQL 15's binaries, redis-server and root (to run initdb as postgres)"
        )
    pytest.skip("PostgreSQL binaries, redis-server or root are missing", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Stores:
    folder: Path
    pg_port: int
    redis_port: int
    redis: subprocess.Popen[bytes] | None = None

    @property
    def pg_data(self) -> Path:
        return self.folder / "pg"

    def pg_ctl(self, *action: str) -> None:
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.pg_data),
                "-l",
                str(self.folder / "pg.log"),
                "-o",
                f"-p {self.pg_port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200",
                "-w",
                *action,
            ),
            check=True,
            capture_output=True,
        )

    def start_redis(self) -> None:
        log_file = (self.folder / "redis.log").open("ab")
        self.redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5):
                return
            time.sleep(0.05)
        raise AssertionError("the test's Redis did not start")

    def restart_redis(self) -> None:
        """SHUTDOWN (Redis flushes its AOF), then the same server again on the same folder."""
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "shutdown"], check=False, capture_output=True)
        assert self.redis is not None
        self.redis.wait(timeout=30)
        self.start_redis()


@pytest.fixture
def stores() -> Iterator[Stores]:
    # Not under pytest's temporary folder: the postgres user cannot enter root's.
    folder = Path(tempfile.mkdtemp(prefix="zt-faults-"))
    shutil.chown(folder, "postgres", "postgres")
    found = Stores(folder, _free_port(), _free_port())
    subprocess.run(
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(found.pg_data), "-A", "trust", "-U", "postgres", "--no-sync"),
        check=True,
        capture_output=True,
    )
    found.pg_ctl("start")
    found.start_redis()
    try:
        yield found
    finally:
        if found.redis is not None:
            found.redis.kill()
            found.redis.wait()
        with contextlib.suppress(subprocess.CalledProcessError):
            found.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def settings(stores: Stores, tmp_path: Path) -> Settings:
    """Overrides the suite's settings: this module's stores, one tier."""
    import asyncpg

    admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{stores.pg_port}/postgres")
    try:
        await admin.execute('CREATE DATABASE "zt_faults"')
    finally:
        await admin.close()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    chosen = Settings(
        env="test",
        data_dir=data_dir,
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{stores.pg_port}/zt_faults",
        redis_url=f"redis://127.0.0.1:{stores.redis_port}/0",
        redis_prefix="zt:faults:",
        log_json=False,
        in_process_worker=False,
    )
    await migrate.upgrade_async(chosen)
    return chosen


# --------------------------------------------------------------------------------------------- processes


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZT_")}
    env.update(
        ZT_ENV="test",
        ZT_DATA_DIR=str(settings.data_dir),
        ZT_DATABASE_URL=str(settings.database_url),
        ZT_REDIS_URL=str(settings.redis_url),
        ZT_REDIS_PREFIX=settings.redis_prefix,
        ZT_IN_PROCESS_WORKER="false",
        ZT_LOG_LEVEL="WARNING",
        ZT_FLASHSALE_REQUESTS_PER_SECOND_PER_ADDRESS="1000000",
        ZT_FLASHSALE_REQUESTS_PER_MINUTE_PER_MEMBER="1000000",
        ZT_WORKER_POLL_SECONDS="0.2",
        ZT_SCAN_REQUESTS_PER_MINUTE="1000000",
    )
    return env


@dataclass
class Process:
    name: str
    arguments: list[str]
    settings: Settings
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.popen = subprocess.Popen(
                [sys.executable, *self.arguments],
                env=_env(self.settings),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the process and everything it started."""
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        self.kills += 1

    def children(self) -> list[int]:
        assert self.popen is not None
        found = subprocess.run(["pgrep", "-P", str(self.popen.pid)], capture_output=True, text=True, check=False)
        return [int(pid) for pid in found.stdout.split()]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


async def _until(condition: Callable[[], Awaitable[bool]], what: str, *logs: Process) -> None:
    """Wait for a state the platform must reach by itself (nothing about its speed is asserted)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in logs)
            raise AssertionError(f"gave up waiting: {what}\n{tails}")
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------------------------- load


@dataclass
class Outcome:
    """What the clients were told."""

    buys: set[str] = field(default_factory=set)  # references answered 202
    verified: dict[str, list[int]] = field(default_factory=dict)  # serial → verification numbers answered
    refused: int = 0  # answered with an error or not at all (a store was down)
    errors: dict[int, int] = field(default_factory=dict)  # error answers by status

    def error(self, status: int) -> None:
        self.refused += 1
        self.errors[status] = self.errors.get(status, 0) + 1


async def _buyer(http: httpx.AsyncClient, runtime: Runtime, sale: Sale, outcome: Outcome, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            answer = await http.post(sale.buy_url, headers={"authorization": f"Bearer {sale_pass(runtime, sale)}"})
        except httpx.TransportError:
            outcome.refused += 1
            await asyncio.sleep(0.05)
            continue
        if answer.status_code == 202:
            outcome.buys.add(answer.json()["reference"])
        else:
            outcome.error(answer.status_code)
            await asyncio.sleep(0.05)


async def _verifier(
    http: httpx.AsyncClient, queue: list[tuple[str, str]], outcome: Outcome, stop: asyncio.Event
) -> None:
    while queue and not stop.is_set():
        serial, pin = queue.pop()
        try:
            answer = await http.post("/api/v1/authenticity/verify", json={"code": serial, "pin": pin})
        except httpx.TransportError:
            outcome.refused += 1
            continue
        if answer.status_code == 200:
            outcome.verified.setdefault(serial, []).append(int(answer.json()["verification_number"]))
        else:
            outcome.error(answer.status_code)


@dataclass
class World:
    sale: Sale
    brand_id: uuid.UUID
    pins: dict[str, str]
    pool_account: uuid.UUID
    signed: tuple[int, bytes]  # the log's head signed before the faults: size, root


async def _world(runtime: Runtime) -> World:
    from zhongtai.app import create_app

    brand = await make_brand(runtime)
    token = await make_token(runtime, brand)
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.put("/api/v1/codes/settings", json={"gs1_company_prefix": "6901234"}, headers=bearer(token))
        product_id = await make_product(runtime, brand)
        batch = await request_batch(client, token, product_id, CODES)
        await run_jobs(runtime)
        done = await client.post("/api/v1/codes/commission", json={"batch_id": batch["id"]}, headers=bearer(token))
        assert done.status_code == 200, done.text
        serials = await _serials(client, token, batch["id"])
    await run_jobs(runtime)  # the commissioning's trace events into the log, its checkpoint signed
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        row = await session.scalar(select(CodeBatch).where(CodeBatch.id == uuid.UUID(batch["id"])))
        assert row is not None
        key = await codes_service.pin_key(session, runtime.crypto, int(row.pin_key_version or 0))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        head = await checkpoint.do_sign_tree_head(
            session, runtime.crypto, brand.id, public_url=runtime.settings.public_url
        )
        signed = (head.tree_size, head.root_hash)
    assert signed[0] > 0  # the commissioning is in the log
    pool = await make_pool(runtime, brand.id, funded=10_000_000)
    await make_rule(runtime, brand.id, pool, amount_fen=88)
    sale = await make_sale(runtime, brand, stock=100_000, per_member_limit=1)
    return World(sale, brand.id, {s: pin_for(key, s) for s in serials}, pool.account_id, signed)


async def test_kills_and_restarts_lose_nothing_and_double_nothing(
    runtime: Runtime, settings: Settings, stores: Stores, tmp_path: Path
) -> None:
    world = await _world(runtime)
    port = _free_port()
    server = Process(
        "server",
        [
            "-m",
            "zhongtai.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-migrate",
        ],
        settings,
        tmp_path / "server.log",
    )
    worker = Process("worker", ["-m", "zhongtai.cli.main", "worker"], settings, tmp_path / "worker.log")
    persister = Process(
        "persister",
        ["-m", "zhongtai.cli.main", "flashsale", "worker", "--claim-idle-ms", "1000"],
        settings,
        tmp_path / "persister.log",
    )
    processes = [server, worker, persister]
    for process in processes:
        process.start()
    outcome = Outcome()
    rng = random.Random(7)
    queue = list(world.pins.items())
    queue += rng.sample(queue, 60)  # some bottles checked twice: "verified before"
    rng.shuffle(queue)
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def healthy() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get("/healthz")).status_code == 200
                return False

            await _until(healthy, "the server answers", server)
            load = [asyncio.create_task(_buyer(http, runtime, world.sale, outcome, stop)) for _ in range(4)]
            load += [asyncio.create_task(_verifier(http, queue, outcome, stop)) for _ in range(4)]

            async def progressed(buys: int, checks: int) -> None:
                async def enough() -> bool:
                    return len(outcome.buys) >= buys and sum(map(len, outcome.verified.values())) >= checks

                await _until(enough, f"{buys} buys and {checks} checks accepted", *processes)

            await progressed(20, 20)
            # 1. A web worker dies; granian starts another.
            [victim, *_] = server.children()
            os.kill(victim, signal.SIGKILL)
            await progressed(60, 60)
            # 2. The job worker dies mid-load; its supervisor starts it again.
            worker.kill()
            await progressed(100, 100)
            worker.start()
            # 3. The persister dies with buys in hand; another takes over the pending ones.
            persister.kill()
            await progressed(140, 140)
            persister.start()
            # 4. Redis restarts (its AOF flushed on SHUTDOWN).
            await asyncio.to_thread(stores.restart_redis)
            await progressed(len(outcome.buys) + 40, sum(map(len, outcome.verified.values())) + 40)
            # 5. PostgreSQL restarts.
            await asyncio.to_thread(stores.pg_ctl, "restart", "-m", "fast")
            await progressed(len(outcome.buys) + 40, sum(map(len, outcome.verified.values())) + 40)
            stop.set()
            await asyncio.gather(*load)
            await _settle(runtime, world, outcome, processes)
    finally:
        stop.set()
        for process in processes:
            with contextlib.suppress(AssertionError):
                process.kill()
    await runtime.stop()
    runtime = Runtime(settings)  # fresh connections: the test's own pool saw PostgreSQL restart too
    try:
        await _check(runtime, world, outcome)
    finally:
        await runtime.stop()


async def _settle(runtime: Runtime, world: World, outcome: Outcome, processes: list[Process]) -> None:
    """Wait until the platform has written down everything it accepted: buys as orders, checks as scan
    rows, their red packets paid, no job left."""
    fresh = Runtime(runtime.settings)
    try:

        async def drained() -> bool:
            try:
                async with fresh.db.unit_of_work(tenant_id=world.brand_id) as session:
                    references = set(
                        await session.scalars(
                            select(FlashSalePurchase.reference).where(FlashSalePurchase.sale_id == world.sale.id)
                        )
                    )
                    orders = await session.scalar(select(func.count()).select_from(SalesOrder))
                    scans = await session.scalar(select(func.count()).where(Scan.kind == KIND_PIN_OK))
                async with fresh.db.unit_of_work(all_tenants=True) as session:
                    # Jobs due now or held by a worker (a job scheduled for later — an order's payment
                    # deadline, the log's next signing — is not owed yet).
                    due = (
                        await session.execute(
                            select(OutboxJob.topic, OutboxJob.status, OutboxJob.attempts, OutboxJob.available_at).where(
                                OutboxJob.status.in_(("pending", "running")), OutboxJob.available_at <= utcnow()
                            )
                        )
                    ).all()
                    pending = len(due)
                    state["due_jobs"] = [tuple(map(str, row)) for row in due[:5]]
            except Exception:  # the stores may still be coming back
                return False
            accepted_checks = sum(map(len, outcome.verified.values()))
            state.update(
                missing_buys=len(outcome.buys - references),
                purchases=len(references),
                orders=orders,
                scans=scans,
                accepted_checks=accepted_checks,
                pending_jobs=pending,
            )
            return outcome.buys <= references and orders == len(references) and scans >= accepted_checks and not pending

        state: dict[str, object] = {}
        try:
            await _until(drained, "accepted buys, checks and their jobs written down", *processes)
        except AssertionError as exc:
            raise AssertionError(f"{state}\n{exc}") from None
    finally:
        await fresh.stop()


async def _check(runtime: Runtime, world: World, outcome: Outcome) -> None:
    accepted_checks = sum(map(len, outcome.verified.values()))
    # While a store was down the answer was 503 with Retry-After (nothing done, try again), never a 500.
    assert not {status for status in outcome.errors if status >= 500} - {503}, outcome.errors
    assert len(outcome.buys) >= 200
    assert accepted_checks >= 200
    async with runtime.db.unit_of_work(tenant_id=world.brand_id) as session:
        # Buys: every 202 is one purchase and one order; nothing twice.
        purchases = list(await session.scalars(select(FlashSalePurchase.reference)))
        assert outcome.buys <= set(purchases)
        assert len(purchases) == len(set(purchases))
        order_refs = list(await session.scalars(select(SalesOrder.source_ref).where(SalesOrder.source == "flashsale")))
        assert sorted(order_refs) == sorted(purchases)
        # Checks: every answered verification is a scan row with the number it was answered with.
        rows = (
            await session.execute(select(Scan.serial, Scan.verification_number).where(Scan.kind == KIND_PIN_OK))
        ).all()
        stored: dict[str, list[int]] = {}
        for serial, number in rows:
            stored.setdefault(serial, []).append(int(number))
        for serial, numbers in outcome.verified.items():
            assert set(numbers) <= set(stored.get(serial, [])), serial
        for serial, numbers in stored.items():
            assert sorted(numbers) == list(range(1, len(numbers) + 1)), serial  # no number twice, none skipped
        # Red packets: one per bottle with a first genuine check, none for a later one.
        paid = list(await session.scalars(select(RewardGrant.code_id).where(RewardGrant.event_kind == "consumer_open")))
        assert len(paid) == len(set(paid)) == len(stored)
        # The books: balances equal the journal, every currency sums to zero, the pool paid what was granted.
        report = await ledger.recompute_balances(session)
        assert report.ok, report
        granted = await session.scalar(
            select(func.sum(RewardGrant.amount_fen)).where(
                RewardGrant.event_kind == "consumer_open", RewardGrant.status != "refused"
            )
        )
        assert await ledger.balance_of(session, world.pool_account) == 10_000_000 - int(granted or 0)
        # The trace log extends the head signed before the faults, and a head signed now links to every
        # head signed since (signing refuses a head no consistency proof links to the previous one).
        size = await log.size(session, world.brand_id)
        head = await log.tree_head(session, world.brand_id, size)
        before_size, before_root = world.signed
        proof = await log.consistency_proof(session, world.brand_id, before_size, size)
        assert merkle.verify_consistency(before_size, size, before_root, head, proof)
        now = await checkpoint.do_sign_tree_head(
            session, runtime.crypto, world.brand_id, public_url=runtime.settings.public_url
        )
        assert (now.tree_size, now.root_hash) == (size, head)
