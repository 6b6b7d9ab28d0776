"""`zhongtai`: serve, worker, migrate, demo, tenant/user/token administration, ledger checks, bench, verify,
verify-restore."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from zhongtai.core.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="zhongtai 中台 — the brand's platform for codes, trace, channel, members and sales.",
)
tenant_app = typer.Typer(no_args_is_help=True, help="Brand tenants.")
user_app = typer.Typer(no_args_is_help=True, help="Operator users.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens for integrations.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
lottery_app = typer.Typer(no_args_is_help=True, help="Reservation lotteries.")
app.add_typer(lottery_app, name="lottery")
ledger_app = typer.Typer(no_args_is_help=True, help="The double-entry ledger.")
app.add_typer(ledger_app, name="ledger")
members_app = typer.Typer(no_args_is_help=True, help="Members: points and tiers, lifecycle, tags and segments.")
app.add_typer(members_app, name="members")
flashsale_app = typer.Typer(no_args_is_help=True, help="Flash sales.")
app.add_typer(flashsale_app, name="flashsale")

out = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    return Settings()


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


@app.command()
def migrate(
    check: Annotated[bool, typer.Option(help="only check that models and migrations agree")] = False,
) -> None:
    """Bring the database schema up to date (or check it for drift)."""
    from zhongtai.core import migrate as migrations

    settings = _settings()
    if check:
        try:
            migrations.check(settings)
        except Exception as exc:
            raise _fail(f"models and migrations disagree: {exc}") from exc
        out.print("models and migrations agree")
        return
    migrations.upgrade(settings)
    out.print("database is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (ZT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (ZT_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="processes (ZT_WORKERS)")] = None,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="migrate before serving")] = True,
) -> None:
    """Serve the platform over HTTP with granian."""
    from granian import Granian
    from granian.constants import Interfaces

    from zhongtai.core import migrate as migrations
    from zhongtai.core.settings import check_production_ready

    settings = _settings()
    check_production_ready(settings)
    if migrate_first:
        migrations.upgrade(settings)
    bind_host, bind_port = host or settings.host, port or settings.port
    out.print(f"zhongtai serving on http://{bind_host}:{bind_port}  (console: /console, API docs: /docs)")
    Granian(
        "zhongtai.app:app_factory",
        factory=True,
        address=bind_host,
        port=bind_port,
        interface=Interfaces.ASGI,
        workers=workers or settings.workers,
        log_access=False,
        respawn_failed_workers=True,
    ).serve()


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="run ready jobs once and exit")] = False,
) -> None:
    """Run background jobs from the outbox (any number of workers may run at once)."""
    from zhongtai.core.jobs import Worker
    from zhongtai.core.logs import configure_logging
    from zhongtai.core.runtime import Runtime
    from zhongtai.domains import load_all

    settings = _settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    load_all()

    async def main() -> int:
        runtime = Runtime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            if once:
                runner = Worker(runtime.db)
                total = 0
                while claimed := await runner.run_once():
                    total += claimed
                return total
            # The jobs and the background loops web processes run when `in_process_worker` is on (the
            # scan stream's persister among them): a deployment whose web processes run without them
            # relies on this process for both.
            await runtime.start(with_worker=True, worker_name=None)
            await stop.wait()
            return 0
        finally:
            await runtime.stop()

    processed = asyncio.run(main())
    if once:
        out.print(f"processed {processed} job(s)")


@app.command()
def demo(
    days: Annotated[
        int, typer.Option(min=0, max=365, help="days of the brand's life to generate up to now, once (0: none)")
    ] = 30,
) -> None:
    """Migrate and load demo data (idempotent); write the credentials to demo-credentials.json."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from zhongtai.cli.demo import load_demo

    settings = _settings()
    with Progress(
        TextColumn("  generating the demo month"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} steps"),
        TimeElapsedColumn(), console=out, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("month", total=0)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        credentials = asyncio.run(load_demo(settings, days=days, progress=step))
    path = settings.data_dir / "demo-credentials.json"
    out.print("[bold green]demo ready[/bold green]")
    out.print(f"  console   {settings.public_url}/console")
    out.print(f"  operator  {credentials['operator']['email']}  /  {credentials['operator']['password']}")
    out.print(f"  platform  {credentials['platform_admin']['email']}  /  {credentials['platform_admin']['password']}")
    out.print(f"  API token {credentials['api_token']['token'][:14]}…  (all scopes)")
    sample = credentials.get("sample_codes") or {}
    if sample:
        out.print(f"  a bottle  {sample['item_uri']}  PIN {sample['item_pin']}")
    month = credentials.get("month")
    if month:
        out.print(
            f"  a month   {month['dealers']} dealers, {month['stores']} stores, {month['guides']} guides,"
            f" {month['channel_scans']} channel scans, {month['verifications']} verifications,"
            f" {month['members']} members, ¥{month['rewards_paid_fen'] / 100:,.2f} rewards paid,"
            f" {month['diversion_alerts']} diversion and {month['clone_alerts']} clone alerts;"
            f" a lottery of {month['lottery_entries']} entries, {month['orders']} orders,"
            f" {month['pickups']} picked up"
        )
    out.print(f"  all credentials: {path}")


@tenant_app.command("create")
def tenant_create(
    slug: Annotated[str, typer.Argument(help="short code, e.g. 'moutai-demo'")],
    name: Annotated[str, typer.Option(help="brand name")],
    owner_email: Annotated[str, typer.Option(help="email of the first owner")],
    owner_password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Create a brand tenant with its first owner."""
    from zhongtai.cli.admin import create_tenant

    _run_admin(create_tenant(_settings(), slug=slug, name=name, owner_email=owner_email, owner_password=owner_password))


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument()],
    tenant: Annotated[str, typer.Option(help="tenant code")],
    role: Annotated[str, typer.Option(help="owner, admin, operator, auditor or viewer")] = "operator",
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Create an operator user in a tenant."""
    from zhongtai.cli.admin import create_user

    _run_admin(create_user(_settings(), tenant_slug=tenant, email=email, role=role, name=name, password=password))


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="what uses the token, e.g. 'line-3 printer'")],
    tenant: Annotated[str, typer.Option(help="tenant code")],
    scope: Annotated[list[str] | None, typer.Option(help="permission to grant; repeat; default all")] = None,
) -> None:
    """Create an API token and print it once."""
    from zhongtai.cli.admin import create_token

    _run_admin(create_token(_settings(), tenant_slug=tenant, name=name, scopes=scope))


def _run_admin(coro: Coroutine[Any, Any, dict[str, Any]]) -> None:
    from zhongtai.core.errors import AppError

    try:
        result = asyncio.run(coro)
    except AppError as exc:
        raise _fail(exc.message) from exc
    out.print_json(json.dumps(result, default=str))


@members_app.command("points-daily")
def members_points_daily(tenant: Annotated[str, typer.Option(help="tenant code")]) -> None:
    """Expire a brand's lapsed points and apply tier downgrades that are due (what the daily job does)."""
    from zhongtai.core.errors import AppError
    from zhongtai.members.cli import points_daily

    try:
        result = asyncio.run(points_daily(_settings(), tenant_slug=tenant))
    except AppError as exc:
        raise _fail(exc.message) from exc
    out.print_json(json.dumps(result))


@ledger_app.command("recompute")
def ledger_recompute(
    tenant: Annotated[str, typer.Option(help="tenant code")],
    repair: Annotated[bool, typer.Option(help="rewrite mismatching balances from the journal (audited)")] = False,
    check_entries: Annotated[bool, typer.Option(help="also check that every entry sums to zero")] = True,
) -> None:
    """Recompute a brand's balances from the journal; exit 1 when the books do not balance."""
    from zhongtai.core.errors import AppError
    from zhongtai.ledger.cli import recompute

    try:
        result = asyncio.run(recompute(_settings(), tenant_slug=tenant, repair=repair, check_entries=check_entries))
    except AppError as exc:
        raise _fail(exc.message) from exc
    out.print_json(json.dumps(result, default=str))
    if not result["ok"] and not result["repaired"]:
        raise typer.Exit(1)


@app.command("verify-restore")
def verify_restore(
    tenant: Annotated[str | None, typer.Option(help="check this brand only (default: every brand)")] = None,
    sample: Annotated[int, typer.Option(min=1, help="encrypted values decrypted per column and brand")] = 1000,
) -> None:
    """Check a restored database: ledger recompute, every signed log checkpoint, PII decryption; exit 1 on a problem."""
    from zhongtai.cli.restore_check import verify_restore as check

    result = asyncio.run(check(_settings(), tenant_slug=tenant, sample=sample))
    out.print_json(json.dumps(result, default=str))
    if not result["ok"]:
        raise typer.Exit(1)


@members_app.command("lifecycle")
def members_lifecycle(
    tenant: Annotated[
        str | None, typer.Option(help="run this brand's lifecycle now (else: schedule every brand)")
    ] = None,
) -> None:
    """Move members between lifecycle stages, score RFM, refresh tags and segments (once a day)."""
    from zhongtai.members.cli import run_lifecycle

    _run_admin(run_lifecycle(_settings(), tenant_slug=tenant))


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help="benchmark name; 'list' shows them")],
    seconds: Annotated[float, typer.Option(help="load duration of each measured phase")] = 5.0,
    connections: Annotated[int, typer.Option(help="concurrent client connections")] = 32,
    codes: Annotated[
        int | None, typer.Option(help="`bench codes`: codes per tier (default ZT_BENCH_CODES or 10,000,000)")
    ] = None,
    minutes: Annotated[float | None, typer.Option(help="`bench soak`: duration in minutes (default 30)")] = None,
) -> None:
    """Run a benchmark; print its figures as one JSON object and save them in bench/results/NAME.json;
    exit 1 when the benchmark reports `ok: false` (e.g. `bench soak` saw errors or memory growth)."""
    from zhongtai.bench import registry

    if name == "list":
        for bench_name, entry in sorted(registry.BENCHMARKS.items()):
            out.print(f"{bench_name:12} {entry.description}")
        return
    if name not in registry.BENCHMARKS:
        raise _fail(f"unknown benchmark {name!r}; known: {', '.join(sorted(registry.BENCHMARKS))}")
    options: dict[str, Any] = {"seconds": seconds, "connections": connections}
    if codes is not None:
        if name != "codes":
            raise _fail("--codes applies to `bench codes` only")
        options["codes"] = codes
    if minutes is not None:
        if name != "soak":
            raise _fail("--minutes applies to `bench soak` only")
        if minutes <= 0:
            raise _fail("--minutes must be more than 0")
        options["minutes"] = minutes
    figures = registry.run(name, **options)
    sys.stdout.write(json.dumps(figures, ensure_ascii=False) + "\n")
    if figures.get("ok") is False:
        raise typer.Exit(1)


@app.command()
def verify(
    proof: Annotated[Path, typer.Option(help="inclusion or consistency proof JSON, as the log endpoints return it")],
    key: Annotated[str, typer.Option(help="the brand's public key: verifier key, base64, or a file of either")],
    checkpoint: Annotated[
        Path | None, typer.Option(help="signed checkpoint file (default: the one inside the proof)")
    ] = None,
    entry: Annotated[str | None, typer.Option(help="the event's hash ID, ni:///sha-256;…?ver=CBV2.0")] = None,
    event: Annotated[
        Path | None,
        typer.Option(help="the EPCIS event JSON, or the EPCIS document it came in; its hash ID is computed"),
    ] = None,
    event_id: Annotated[
        str | None, typer.Option(help="with a document of several events: the event's eventID or hash ID")
    ] = None,
    consistency: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="OLDER NEWER: two checkpoint files; checks that NEWER extends OLDER"),
    ] = None,
) -> None:
    """Verify a trace log proof offline: the checkpoint's signature, then the inclusion (or consistency) proof."""
    from zhongtai.cli import verify as verifier

    try:
        if consistency is not None:
            verdict = verifier.verify_consistency(consistency[0], consistency[1], key, proof)
        else:
            verdict = verifier.verify_inclusion(
                checkpoint, key, proof, entry=entry, event_path=event, event_id=event_id
            )
    except verifier.VerifyInputError as exc:
        raise _fail(str(exc)) from exc
    if verdict.ok:
        out.print(f"[green]{verdict.message}[/green]")
        return
    err.print(f"[red]{verdict.message}[/red]")
    raise typer.Exit(code=1)


@lottery_app.command("verify")
def lottery_verify(
    source: Annotated[str, typer.Argument(help="the draw data: its public URL or a downloaded JSON file")],
) -> None:
    """Recompute a published lottery draw from its public data and say whether it matches."""
    from zhongtai.lottery import verify as draw_verify

    try:
        data = draw_verify.load(source)
    except draw_verify.DrawDataInvalid as exc:
        raise _fail(str(exc)) from exc
    report = draw_verify.verify(data)
    for name, passed, detail in report.checks:
        mark = "[green]ok[/green]  " if passed else "[red]FAIL[/red]"
        out.print(f"{mark} {name}" + (f" — {detail}" if detail else ""))
    if report.ok:
        out.print(f"[green]the draw of session {data.get('session_id')} matches its public data[/green]")
        return
    err.print("[red]the draw does NOT match its public data[/red]")
    raise typer.Exit(code=1)


@flashsale_app.command("worker")
def flashsale_worker(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="stream entries per transaction")] = 1000,
    claim_idle_ms: Annotated[
        int, typer.Option(min=0, help="take over entries another persister read this long ago and never acknowledged")
    ] = 30_000,
    name: Annotated[
        str | None, typer.Option(help="consumer name in the stream group (default: host-pid-random)")
    ] = None,
) -> None:
    """Turn accepted flash-sale buys into orders in batches: from the Redis streams, or from the
    purchases the embedded gate queued (any number may run)."""
    from zhongtai.core.logs import configure_logging
    from zhongtai.core.runtime import Runtime
    from zhongtai.domains import load_all
    from zhongtai.flashsale.persister import Persister, QueuedPersister

    settings = _settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    load_all()  # orders schedule their expiry jobs: every job topic must be known

    async def main() -> None:
        runtime = Runtime(settings)
        persister: Persister | QueuedPersister
        if runtime.redis is not None and settings.flashsale_gate != "database":
            persister = Persister(
                runtime.db,
                runtime.redis,
                settings.redis_prefix,
                name=name,
                batch_size=batch_size,
                claim_idle_ms=claim_idle_ms,
            )
        else:
            persister = QueuedPersister(runtime.db, batch_size=batch_size)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await persister.run_forever(stop)
        finally:
            await runtime.stop()

    asyncio.run(main())


if __name__ == "__main__":
    app()
