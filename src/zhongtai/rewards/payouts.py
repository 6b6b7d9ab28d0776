"""Withdrawals (提现), payout batches, payout providers and reconciliation.

Money path, every step one balanced ledger entry:
- a party requests a withdrawal: wallet → payouts in transit (the wallet's floor guard refuses more
  than it holds);
- an operator approves a batch: the requested withdrawals are marked in the batch (a conditional
  UPDATE, so one withdrawal joins one batch) and handed to a `PayoutProvider` or exported as CSV for
  the bank or payment platform;
- reconciliation, from the provider's results or its result file: paid → payouts in transit →
  payouts paid; failed → back to the wallet. Each withdrawal settles once (conditional UPDATE +
  ledger idempotency key), so importing a file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import audit
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.ids import new_id
from zhongtai.core.principals import Principal
from zhongtai.ledger import service as ledger
from zhongtai.ledger.errors import InsufficientFunds
from zhongtai.ledger.service import EntryDraft, Line
from zhongtai.rewards import rules, service
from zhongtai.rewards.errors import (
    BadResultFile,
    BatchNotFound,
    BelowMinimum,
    InvalidReward,
    NotEnoughInWallet,
    WithdrawalNotFound,
)
from zhongtai.rewards.models import (
    HELD,
    IN_BATCH,
    RECONCILED,
    REQUESTED,
    WD_FAILED,
    WD_PAID,
    PayoutBatch,
    RewardGrant,
    Withdrawal,
)

PAYEE_PURPOSE = "rewards.payee"


def mask_account(account: str) -> str:
    digits = account.strip()
    return ("*" * 4 + digits[-4:]) if len(digits) > 4 else "****"


# ------------------------------------------------------------------------------------------ providers


@dataclass(frozen=True)
class PayoutItem:
    withdrawal_id: uuid.UUID
    payee_name: str
    payee_account: str
    amount_fen: int


@dataclass(frozen=True)
class PayoutResult:
    withdrawal_id: uuid.UUID
    paid: bool
    provider_ref: str = ""
    reason: str = ""


class PayoutProvider(Protocol):
    """A payment platform or bank that pays withdrawals. `submit` hands a batch over; `results` reads
    what became of each item (a real provider answers later, by callback or result file)."""

    name: str

    async def submit(self, batch_id: uuid.UUID, items: Sequence[PayoutItem]) -> None: ...

    async def results(self, batch_id: uuid.UUID, items: Sequence[PayoutItem]) -> list[PayoutResult]: ...


class SandboxPayoutProvider:
    """Pays every item except those to an account ending in 0000 ("the account is closed"), so tests and
    demos see both outcomes. Moves no real money."""

    name = "sandbox"

    def __init__(self) -> None:
        self.submitted: dict[uuid.UUID, list[PayoutItem]] = {}

    async def submit(self, batch_id: uuid.UUID, items: Sequence[PayoutItem]) -> None:
        self.submitted[batch_id] = list(items)

    async def results(self, batch_id: uuid.UUID, items: Sequence[PayoutItem]) -> list[PayoutResult]:
        out = []
        for item in items:
            if item.payee_account.strip().endswith("0000"):
                out.append(PayoutResult(item.withdrawal_id, False, "", "account closed (sandbox)"))
            else:
                out.append(PayoutResult(item.withdrawal_id, True, f"SBX-{item.withdrawal_id.hex[:16]}"))
        return out


SANDBOX = SandboxPayoutProvider()
PROVIDERS: dict[str, PayoutProvider] = {"sandbox": SANDBOX}
CSV_PROVIDER = "csv"  # exported for upload; results come back as a file


# -------------------------------------------------------------------------------------------- request


async def do_request_withdrawal(
    session: AsyncSession,
    crypto: Crypto,
    *,
    party: str,
    amount_fen: int,
    payee_name: str,
    payee_account: str,
    request_key: str,
) -> tuple[Withdrawal, bool]:
    """Move `amount_fen` from the party's wallet to payouts in transit; the same `request_key` again
    returns the first withdrawal (created=False)."""
    tenant_id = service.tenant_of(session)
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen > ledger.MAX_LINE_AMOUNT:
        raise InvalidReward("The amount is a whole number of fen.", field="amount_fen")
    minimum = (await service.get_risk(session, tenant_id)).min_withdrawal_fen
    if amount_fen < minimum:
        raise BelowMinimum(
            f"The smallest withdrawal is {rules.yuan(minimum)} yuan.", field="amount_fen", minimum_fen=minimum
        )
    name = payee_name.strip() if isinstance(payee_name, str) else ""
    account = payee_account.strip() if isinstance(payee_account, str) else ""
    if not name or len(name) > 80:
        raise InvalidReward("The payee's name is required (at most 80 characters).", field="payee_name")
    if not 4 <= len(account) <= 64 or not all(c.isalnum() or c in "-_@." for c in account):
        raise InvalidReward(
            "The payee account is 4 to 64 letters, digits or - _ @ . (bank card, Alipay or WeChat id).",
            field="payee_account",
        )
    key = f"{party}:{request_key}"[:120]
    existing = await session.scalar(select(Withdrawal).where(Withdrawal.request_key == key))
    if existing is not None:
        return existing, False
    wallet = (await service.wallets(session, [party]))[party]
    in_transit = await service.system_account(session, service.IN_TRANSIT_KEY)
    row = Withdrawal(
        id=new_id(),
        request_key=key,
        party=party,
        wallet_account_id=wallet,
        amount_fen=amount_fen,
        payee_name=name,
        payee_account_ciphertext=crypto.pii.encrypt(account, purpose=PAYEE_PURPOSE),
        payee_account_masked=mask_account(account),
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        won = await session.scalar(select(Withdrawal).where(Withdrawal.request_key == key))
        if won is None:
            raise
        return won, False
    try:
        await ledger.post(
            session,
            EntryDraft(
                idempotency_key=f"withdraw:{row.id}",
                kind="withdrawal",
                lines=[Line(wallet, -amount_fen), Line(in_transit.id, amount_fen)],
                memo="提现 withdrawal",
                reference_type="withdrawal",
                reference_id=str(row.id),
            ),
            posted_by=party,
        )
    except InsufficientFunds as refused:
        raise NotEnoughInWallet(
            f"The wallet holds {rules.yuan(int(refused.data.get('balance', 0)))} yuan.",
            field="amount_fen",
            balance_fen=refused.data.get("balance"),
        ) from None
    return row, True


async def wallet_summary(session: AsyncSession, party: str) -> dict[str, int]:
    """The party's spendable balance, what is held for review, and what is on its way out."""
    account = await ledger.account_by_key(session, service.wallet_key(party))
    balance = 0 if account is None else await ledger.balance_of(session, account.id)
    held = await session.scalar(
        select(func.coalesce(func.sum(RewardGrant.amount_fen), 0)).where(
            RewardGrant.party == party, RewardGrant.status == HELD
        )
    )
    pending = await session.scalar(
        select(func.coalesce(func.sum(Withdrawal.amount_fen), 0)).where(
            Withdrawal.party == party, Withdrawal.status.in_((REQUESTED, IN_BATCH))
        )
    )
    return {"balance_fen": balance, "held_fen": int(held or 0), "withdrawing_fen": int(pending or 0)}


# ------------------------------------------------------------------------------------------- batches


async def get_batch(session: AsyncSession, batch_id: uuid.UUID) -> PayoutBatch:
    batch = await session.scalar(select(PayoutBatch).where(PayoutBatch.id == batch_id))
    if batch is None:
        raise BatchNotFound()
    return batch


def _item(crypto: Crypto, row: Withdrawal) -> PayoutItem:
    account = crypto.pii.decrypt(row.payee_account_ciphertext, purpose=PAYEE_PURPOSE)
    return PayoutItem(row.id, row.payee_name, account, int(row.amount_fen))


async def do_approve_batch(
    session: AsyncSession,
    actor: Principal,
    crypto: Crypto,
    *,
    provider: str,
    withdrawal_ids: Sequence[uuid.UUID] | None = None,
) -> PayoutBatch:
    """Put requested withdrawals (the given ones, or all) into a new batch and hand it to the provider
    ("sandbox") or keep it for CSV export ("csv")."""
    if provider not in (*PROVIDERS, CSV_PROVIDER):
        raise InvalidReward(f"The provider is one of {', '.join((*PROVIDERS, CSV_PROVIDER))}.", field="provider")
    batch = PayoutBatch(id=new_id(), provider=provider, approved_by=actor.label[:254])
    session.add(batch)
    await session.flush()
    query = update(Withdrawal).where(Withdrawal.status == REQUESTED)
    if withdrawal_ids is not None:
        query = query.where(Withdrawal.id.in_(list(withdrawal_ids)))
    taken = (
        await session.execute(
            query.values(status=IN_BATCH, batch_id=batch.id)
            .returning(Withdrawal.id, Withdrawal.amount_fen)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not taken:
        raise InvalidReward("No requested withdrawals to pay.", field="withdrawal_ids")
    batch.count = len(taken)
    batch.total_fen = sum(int(amount) for _, amount in taken)
    await session.flush()
    if provider in PROVIDERS:
        rows = await batch_withdrawals(session, batch.id)
        await PROVIDERS[provider].submit(batch.id, [_item(crypto, r) for r in rows])
    await audit.record(
        session,
        actor,
        "rewards.approve_batch",
        target_type="payout_batch",
        target_id=batch.id,
        data={"provider": provider, "count": batch.count, "total_fen": batch.total_fen},
    )
    return batch


async def batch_withdrawals(session: AsyncSession, batch_id: uuid.UUID) -> list[Withdrawal]:
    return list(
        await session.scalars(
            select(Withdrawal)
            .where(Withdrawal.batch_id == batch_id)
            .order_by(Withdrawal.created_at)
            .execution_options(populate_existing=True)
        )
    )


EXPORT_COLUMNS = ("withdrawal_id", "payee_name", "payee_account", "amount_yuan", "amount_fen", "memo")
RESULT_COLUMNS = ("withdrawal_id", "status", "provider_ref", "reason")


async def export_csv(session: AsyncSession, actor: Principal, crypto: Crypto, batch_id: uuid.UUID) -> str:
    """The batch as a CSV file for the bank or payment platform (UTF-8 with BOM, so spreadsheet programs
    open the Chinese names). It holds full payee accounts: exporting is audited."""
    batch = await get_batch(session, batch_id)
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for row in await batch_withdrawals(session, batch.id):
        item = _item(crypto, row)
        writer.writerow(
            [
                row.id,
                _cell(item.payee_name),
                _cell(item.payee_account),
                rules.yuan(item.amount_fen),
                item.amount_fen,
                f"提现 {str(row.id)[:8]}",
            ]
        )
    await audit.record(
        session,
        actor,
        "rewards.export_batch",
        target_type="payout_batch",
        target_id=batch.id,
        data={"count": batch.count},
    )
    return out.getvalue()


def _cell(value: str) -> str:
    """No spreadsheet formulas from user text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


PAID_WORDS = {"paid", "success", "succeeded", "成功", "已支付"}
FAILED_WORDS = {"failed", "fail", "failure", "失败", "退回"}


def parse_results(data: bytes) -> list[PayoutResult]:
    """A provider's result file: CSV with columns withdrawal_id, status (paid/failed, 成功/失败),
    provider_ref, reason. Every problem is listed with its line; nothing is applied when any."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadResultFile("The result file must be UTF-8 CSV.") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("withdrawal_id", "status") if c not in (reader.fieldnames or [])]
    if missing:
        raise BadResultFile(f"The result file needs the columns {', '.join(RESULT_COLUMNS)}.", missing=missing)
    results: list[PayoutResult] = []
    problems: list[dict[str, object]] = []
    for line, record in enumerate(reader, start=2):
        try:
            withdrawal_id = uuid.UUID((record.get("withdrawal_id") or "").strip())
        except ValueError:
            problems.append({"line": line, "problem": "withdrawal_id is not a withdrawal's id"})
            continue
        status = (record.get("status") or "").strip().lower()
        if status not in PAID_WORDS | FAILED_WORDS:
            problems.append({"line": line, "problem": "status must be paid or failed (成功/失败)"})
            continue
        results.append(
            PayoutResult(
                withdrawal_id,
                status in PAID_WORDS,
                (record.get("provider_ref") or "").strip()[:80],
                (record.get("reason") or "").strip()[:200],
            )
        )
        if len(results) > 100_000:
            raise BadResultFile("A result file has at most 100,000 lines.")
    if problems:
        raise BadResultFile(f"{len(problems)} lines cannot be read; nothing was applied.", errors=problems[:50])
    return results


@dataclass(frozen=True)
class Reconciled:
    paid: int
    failed: int
    already: int  # settled before with the same outcome (a file imported twice)
    paid_fen: int
    failed_fen: int


async def do_reconcile(
    session: AsyncSession, actor: Principal, batch_id: uuid.UUID, results: Sequence[PayoutResult]
) -> Reconciled:
    """Settle the batch's withdrawals from the provider's results: paid → payouts paid, failed → back
    to the wallet. Results for withdrawals outside the batch, or contradicting an earlier settlement,
    are refused before anything is written."""
    batch = await get_batch(session, batch_id)
    rows = {r.id: r for r in await batch_withdrawals(session, batch.id)}
    problems = []
    for result in results:
        row = rows.get(result.withdrawal_id)
        if row is None:
            problems.append({"withdrawal_id": str(result.withdrawal_id), "problem": "not in this batch"})
        elif row.status in (WD_PAID, WD_FAILED) and (row.status == WD_PAID) != result.paid:
            problems.append({"withdrawal_id": str(row.id), "problem": f"already settled as {row.status}"})
    if problems:
        raise BadResultFile("Some results do not match this batch; nothing was applied.", errors=problems[:50])
    in_transit = await service.system_account(session, service.IN_TRANSIT_KEY)
    paid_account = await service.system_account(session, service.PAID_KEY)
    paid = failed = already = paid_fen = failed_fen = 0
    now = utcnow()
    for result in results:
        row = rows[result.withdrawal_id]
        done = await session.execute(
            update(Withdrawal)
            .where(Withdrawal.id == row.id, Withdrawal.status == IN_BATCH)
            .values(
                status=WD_PAID if result.paid else WD_FAILED,
                provider_ref=result.provider_ref or None,
                failure_reason="" if result.paid else (result.reason or "failed"),
                settled_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            already += 1
            continue
        amount = int(row.amount_fen)
        target = paid_account.id if result.paid else row.wallet_account_id
        await ledger.post(
            session,
            EntryDraft(
                idempotency_key=f"payout:{row.id}",
                kind="payout_paid" if result.paid else "payout_failed",
                lines=[Line(in_transit.id, -amount), Line(target, amount)],
                memo="提现到账 paid" if result.paid else f"提现失败退回 failed: {result.reason}"[:200],
                reference_type="withdrawal",
                reference_id=str(row.id),
                data={"provider_ref": result.provider_ref, "batch_id": str(batch.id)},
            ),
            posted_by=actor.label,
        )
        if result.paid:
            paid, paid_fen = paid + 1, paid_fen + amount
        else:
            failed, failed_fen = failed + 1, failed_fen + amount
    await session.execute(
        update(PayoutBatch)
        .where(PayoutBatch.id == batch.id)
        .values(paid_fen=PayoutBatch.paid_fen + paid_fen, failed_fen=PayoutBatch.failed_fen + failed_fen)
        .execution_options(synchronize_session=False)
    )
    left = await session.scalar(
        select(func.count()).where(Withdrawal.batch_id == batch.id, Withdrawal.status == IN_BATCH)
    )
    await session.refresh(batch)
    if not left and batch.status != RECONCILED:
        batch.status = RECONCILED
        batch.reconciled_at = now
        await session.flush()
    await audit.record(
        session,
        actor,
        "rewards.reconcile",
        target_type="payout_batch",
        target_id=batch.id,
        data={"paid": paid, "failed": failed, "already": already, "paid_fen": paid_fen, "failed_fen": failed_fen},
    )
    return Reconciled(paid, failed, already, paid_fen, failed_fen)


async def do_reconcile_from_provider(
    session: AsyncSession, actor: Principal, crypto: Crypto, batch_id: uuid.UUID
) -> Reconciled:
    batch = await get_batch(session, batch_id)
    provider = PROVIDERS.get(batch.provider)
    if provider is None:
        raise InvalidReward("This batch was exported as CSV: import the provider's result file.", field="batch_id")
    rows = [r for r in await batch_withdrawals(session, batch.id) if r.status == IN_BATCH]
    results = await provider.results(batch.id, [_item(crypto, r) for r in rows])
    return await do_reconcile(session, actor, batch.id, results)


async def get_withdrawal(session: AsyncSession, withdrawal_id: uuid.UUID) -> Withdrawal:
    row = await session.scalar(select(Withdrawal).where(Withdrawal.id == withdrawal_id))
    if row is None:
        raise WithdrawalNotFound()
    return row


async def list_withdrawals(
    session: AsyncSession, *, status: str | None = None, party: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Withdrawal], int]:
    query = select(Withdrawal)
    if status:
        query = query.where(Withdrawal.status == status)
    if party:
        query = query.where(Withdrawal.party == party)
    total = await service.count(session, query)
    rows = await session.scalars(query.order_by(Withdrawal.created_at.desc()).limit(limit).offset(offset))
    return list(rows), total


async def list_batches(session: AsyncSession, *, limit: int = 100) -> list[PayoutBatch]:
    return list(await session.scalars(select(PayoutBatch).order_by(PayoutBatch.created_at.desc()).limit(limit)))
