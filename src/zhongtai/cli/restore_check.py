"""`zhongtai verify-restore`: check a restored database (docs/operations.md) before it takes traffic.

For every brand (or one, `--tenant`):

- **ledger** — every balance is rebuilt from the journal and compared (`ledger.service.recompute_balances`),
  and every entry sums to zero;
- **trace log** — every signed checkpoint kept verifies with the brand's public key of its version, and the
  root it signs equals the root recomputed from the restored log at that size (so the log was restored
  whole and unchanged under every head published);
- **personal data** — a sample of the encrypted columns (consumers' phones, members' ID numbers and names,
  the log's signing keys) decrypts with the configured `ZT_PII_KEYS`. A runtime with other keys fails here:
  a backup is only as good as the keys kept with it.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core.consumers import PHONE_PURPOSE
from zhongtai.core.crypto import Crypto, DecryptionFailed
from zhongtai.core.models import Consumer, Tenant
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.ledger import service as ledger
from zhongtai.members.models import MemberIdentity
from zhongtai.members.service import ID_PURPOSE, NAME_PURPOSE
from zhongtai.trace import checkpoint as checkpoints
from zhongtai.trace import log
from zhongtai.trace.log_models import TraceCheckpoint, TraceLogKey

DEFAULT_SAMPLE = 1000


@dataclass
class TenantCheck:
    tenant: str
    ledger_ok: bool = True
    ledger_accounts: int = 0
    ledger_lines: int = 0
    journal_totals: dict[str, int] = field(default_factory=dict)
    log_size: int = 0
    checkpoints: int = 0
    checkpoints_verified: int = 0
    pii_checked: int = 0
    pii_failed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def _ledger(session: AsyncSession, check: TenantCheck) -> None:
    report = await ledger.recompute_balances(session, check_entries=True)
    check.ledger_ok = report.ok
    check.ledger_accounts = report.accounts
    check.ledger_lines = report.lines
    check.journal_totals = report.journal_totals
    if report.mismatches:
        check.problems.append(f"ledger: {len(report.mismatches)} balance(s) differ from the journal")
    if report.unbalanced_entries:
        check.problems.append(f"ledger: {len(report.unbalanced_entries)} entr(ies) do not sum to zero")
    if any(total != 0 for total in report.journal_totals.values()):
        check.problems.append(f"ledger: the journal does not sum to zero per currency: {report.journal_totals}")


async def _log(session: AsyncSession, tenant_id: uuid.UUID, check: TenantCheck) -> None:
    check.log_size = await log.size(session, tenant_id)
    keys = {key.version: key for key in await checkpoints.public_keys(session, tenant_id)}
    signed = await session.scalars(
        select(TraceCheckpoint).where(TraceCheckpoint.tenant_id == tenant_id).order_by(TraceCheckpoint.tree_size)
    )
    for head in signed:
        check.checkpoints += 1
        key = keys.get(head.key_version)
        try:
            if key is None:
                raise checkpoints.CheckpointInvalid(f"key version {head.key_version} is missing")
            parsed = checkpoints.verify_checkpoint(head.note, key.public_key, key.key_name)
            if parsed.tree_size > check.log_size:
                raise checkpoints.CheckpointInvalid(f"the restored log has only {check.log_size} entries")
            if await log.tree_head(session, tenant_id, parsed.tree_size) != parsed.root_hash:
                raise checkpoints.CheckpointInvalid("the restored log's root differs from the signed root")
        except Exception as exc:  # any failure of one head is reported; the others are still checked
            check.problems.append(f"trace log: checkpoint of size {head.tree_size}: {exc}")
            continue
        check.checkpoints_verified += 1


async def _pii(session: AsyncSession, crypto: Crypto, check: TenantCheck, sample: int) -> None:
    columns: list[tuple[str, str, list[str]]] = [
        ("consumer phone", PHONE_PURPOSE, list(await session.scalars(select(Consumer.phone_ciphertext).limit(sample)))),
        (
            "member ID number",
            ID_PURPOSE,
            list(await session.scalars(select(MemberIdentity.id_ciphertext).limit(sample))),
        ),
        (
            "member name",
            NAME_PURPOSE,
            list(await session.scalars(select(MemberIdentity.name_ciphertext).limit(sample))),
        ),
        (
            "trace log key",
            checkpoints.KEY_PURPOSE,
            list(await session.scalars(select(TraceLogKey.private_key_ciphertext).limit(sample))),
        ),
    ]
    for what, purpose, tokens in columns:
        failed = 0
        for token in tokens:
            check.pii_checked += 1
            try:
                crypto.pii.decrypt(token, purpose=purpose)
            except DecryptionFailed:
                failed += 1
        if failed:
            check.pii_failed += failed
            check.problems.append(f"personal data: {failed} of {len(tokens)} {what}(s) do not decrypt with ZT_PII_KEYS")


async def check_tenant(session: AsyncSession, crypto: Crypto, tenant: Tenant, *, sample: int) -> TenantCheck:
    """The three checks of one brand, in a session scoped to it."""
    check = TenantCheck(tenant=tenant.slug)
    await _ledger(session, check)
    await _log(session, tenant.id, check)
    await _pii(session, crypto, check, sample)
    return check


async def verify_restore(
    settings: Settings, *, tenant_slug: str | None = None, sample: int = DEFAULT_SAMPLE
) -> dict[str, Any]:
    """Check every brand (or one) of the database `settings` point at; `ok` is false on any problem."""
    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            query = select(Tenant).order_by(Tenant.slug)
            if tenant_slug is not None:
                query = query.where(Tenant.slug == tenant_slug)
            tenants = list(await session.scalars(query))
        if tenant_slug is not None and not tenants:
            return {"ok": False, "tenants": [], "problems": [f"No tenant with code {tenant_slug!r}."]}
        results: list[TenantCheck] = []
        for tenant in tenants:
            async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
                results.append(await check_tenant(session, runtime.crypto, tenant, sample=sample))
        return {
            "ok": all(r.ok for r in results),
            "tenants": [{**asdict(r), "ok": r.ok} for r in results],
            "problems": [f"{r.tenant}: {p}" for r in results for p in r.problems],
        }
    finally:
        await runtime.stop()
