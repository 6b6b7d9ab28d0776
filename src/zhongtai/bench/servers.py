"""Real servers for benchmarks: a tier's environment, demo data, and granian as a child process.

Every context manager here cleans up in `finally` — the server is terminated, the temporary
PostgreSQL database dropped, the Redis keys deleted — also when the run is interrupted.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from redis import Redis

from zhongtai.core.permissions import Role, permissions_for_role
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.settings import Settings

PG_ADMIN_DSN = os.environ.get("ZT_BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ZT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
# Variables of the surrounding shell that would point a benchmark server at the wrong place.
_INHERITED_SETTINGS = ("ZT_DATA_DIR", "ZT_DATABASE_URL", "ZT_REDIS_URL", "ZT_REDIS_PREFIX", "ZT_ENV", "ZT_PORT")


@dataclass(frozen=True)
class Tier:
    name: str
    env: dict[str, str]
    data_dir: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_answers() -> bool:
    """PostgreSQL accepts connections at the admin DSN."""
    from urllib.parse import urlsplit

    pg = urlsplit(PG_ADMIN_DSN)
    return _answers(pg.hostname or "127.0.0.1", pg.port or 5432)


def services_answer() -> bool:
    """PostgreSQL and Redis both accept connections (the production tier can run)."""
    from urllib.parse import urlsplit

    pg, redis = urlsplit(PG_ADMIN_DSN), urlsplit(REDIS_URL)
    return _answers(pg.hostname or "127.0.0.1", pg.port or 5432) and _answers(
        redis.hostname or "127.0.0.1", redis.port or 6379
    )


def _base_env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _INHERITED_SETTINGS}
    env.update(ZT_DATA_DIR=str(data_dir), ZT_ENV="development", ZT_LOG_LEVEL="WARNING")
    return env


@contextmanager
def embedded_tier() -> Iterator[Tier]:
    """SQLite under a temporary data dir, no Redis."""
    data_dir = Path(tempfile.mkdtemp(prefix="zt-bench-embedded-"))
    try:
        yield Tier("embedded", _base_env(data_dir), data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A temporary, empty PostgreSQL database; yields its SQLAlchemy (asyncpg) URL, drops it afterwards."""
    database = f"zt_bench_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_DSN.rsplit("/", 1)[0]
    asyncio.run(_pg_admin(f'CREATE DATABASE "{database}"'))
    try:
        yield f"{admin.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@contextmanager
def postgres_tier() -> Iterator[Tier]:
    """A temporary PostgreSQL database and a unique Redis key prefix; both removed afterwards."""
    prefix = f"zt-bench-{uuid.uuid4().hex[:12]}:"
    data_dir = Path(tempfile.mkdtemp(prefix="zt-bench-postgres-"))
    env = _base_env(data_dir)
    try:
        with postgres_database() as database_url:
            env.update(ZT_DATABASE_URL=database_url, ZT_REDIS_URL=REDIS_URL, ZT_REDIS_PREFIX=prefix)
            yield Tier("postgres", env, data_dir)
    finally:
        _delete_redis_prefix(prefix)
        shutil.rmtree(data_dir, ignore_errors=True)


def _delete_redis_prefix(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def load_demo(tier: Tier) -> str:
    """Run `zhongtai demo` for the tier (migrations and demo data) and return its all-scopes API token."""
    log = tier.data_dir / "demo.log"
    with log.open("wb") as output:
        done = subprocess.run(
            [sys.executable, "-m", "zhongtai.cli.main", "demo", "--days", "0"],
            env=tier.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=300,
        )
    if done.returncode != 0:
        raise RuntimeError(f"`zhongtai demo` failed on the {tier.name} tier:\n{_tail(log)}")
    credentials = json.loads((tier.data_dir / "demo-credentials.json").read_text())
    token: str = credentials["api_token"]["token"]
    return token


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def granian_command(target: str, port: int, workers: int = 1) -> list[str]:
    """The same granian settings as `zhongtai serve`, with `workers` processes; `target` is a factory."""
    return [
        sys.executable,
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
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        target,
    ]


@dataclass(frozen=True)
class RunningServer:
    port: int
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server and its worker processes (Linux /proc)."""
        return sum(_process_cpu_seconds(pid) for pid in _process_tree(self.pid))


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_tree(root: int) -> list[int]:
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            queue += [int(child) for child in task.read_text().split()]
    return found


def _process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@contextmanager
def serve(tier: Tier, factory: str, *, label: str, workers: int = 1) -> Iterator[RunningServer]:
    """Start granian serving `factory` with the tier's environment; yield it once /healthz answers."""
    port = free_port()
    log = tier.data_dir / f"{label}.log"
    with log.open("wb") as output:
        # A session of its own: Ctrl-C reaches only us, and we stop the server in order.
        process = subprocess.Popen(  # noqa: S603 -- our own interpreter and arguments, no shell
            granian_command(factory, port, workers),
            env=tier.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _healthy(port):
            if process.poll() is not None:
                raise RuntimeError(f"{label} server exited with {process.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label} server did not answer /healthz in {START_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.1)
        yield RunningServer(port=port, pid=process.pid)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# Databases and actors for benchmarks that call the services directly.


def bench_settings(data_dir: Path, database_url: str | None) -> Settings:
    return Settings(
        env="development",
        data_dir=data_dir,
        database_url=database_url,
        redis_url=None,
        in_process_worker=False,
        log_level="WARNING",
        log_json=False,
    )


@contextmanager
def migrated_database(tier: str, name: str) -> Iterator[Settings]:
    """Settings of an empty, migrated database of the tier (a temporary SQLite file or a temporary
    PostgreSQL database), removed afterwards."""
    from zhongtai.core import migrate

    data_dir = Path(tempfile.mkdtemp(prefix=f"zt-bench-{name}-{tier}-"))
    try:
        if tier == "embedded":
            settings = bench_settings(data_dir, None)
            migrate.upgrade(settings)
            yield settings
        else:
            with postgres_database() as database_url:
                settings = bench_settings(data_dir, database_url)
                migrate.upgrade(settings)
                yield settings
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def kept_postgres_database(database: str, name: str) -> Iterator[Settings]:
    """Settings of a PostgreSQL database that outlives the run: created and migrated when missing,
    never dropped here (a benchmark reuses an expensive load; drop it by hand)."""
    from zhongtai.core import migrate

    if not database.replace("_", "").isalnum():
        raise ValueError(f"{database!r}: letters, digits and underscores only")

    async def create_if_missing() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    asyncio.run(create_if_missing())
    admin = PG_ADMIN_DSN.rsplit("/", 1)[0]
    data_dir = Path(tempfile.mkdtemp(prefix=f"zt-bench-{name}-kept-"))
    try:
        settings = bench_settings(data_dir, f"{admin.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}")
        migrate.upgrade(settings)
        yield settings
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def bench_actor(tenant_id: uuid.UUID) -> Principal:
    """The benchmark acts as the brand's owner."""
    return Principal(
        kind=PrincipalKind.SYSTEM,
        id=uuid.UUID(int=0),
        tenant_id=tenant_id,
        label="bench",
        permissions=permissions_for_role(Role.OWNER, is_platform_tenant=False),
        role=Role.OWNER.value,
        is_platform=False,
    )
