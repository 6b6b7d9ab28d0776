"""Posting many entries in one go: `post_many`, the set-based twin of `service.post`.

For callers that post thousands of small entries against a few shared accounts (points earned by many
members, all funded from one `points_issued` account): one posting per entry would update the shared
balance row once per entry and hold its lock for the whole transaction each time, so throughput is
bounded by that one row. A batch updates every balance once with the summed delta of its entries.

Every invariant of `post` holds:
- Each entry is checked like `post` checks it (at least two lines, integer non-zero amounts, sum 0,
  one currency, accounts of this tenant).
- The idempotency key is unique per tenant: the entries are inserted with `ON CONFLICT DO NOTHING`, so
  a key already posted (before, or by a concurrent batch that commits first) returns that entry and
  posts nothing; a key already used for other lines is refused (`IdempotencyKeyReused`).
- Floors: one guarded UPDATE per account (`balance + delta >= floor`, summed over the batch). A batch
  that would take any account below its floor is refused as a whole (`InsufficientFunds`) and writes
  nothing: the batch runs in one savepoint, so the caller's transaction stays usable and may retry
  the entries one by one with `post` to find which ones the floor allows.
- Lock order: the balance rows are locked in account-id order (`SELECT … ORDER BY account_id FOR
  UPDATE` on PostgreSQL) before they change, the order `post` uses, so batches and single posts never
  deadlock. SQLite serialises writers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import sql
from zhongtai.core.clock import utcnow
from zhongtai.core.ids import new_id
from zhongtai.ledger.errors import AccountConflict, IdempotencyKeyReused, InsufficientFunds, InvalidEntry
from zhongtai.ledger.models import LedgerAccount, LedgerEntry, LedgerLine
from zhongtai.ledger.service import (
    _BALANCES,
    _LINES,
    EntryDraft,
    Line,
    _check_shape,
    _same_lines,
    _tenant,
    balance_of,
)

MAX_BATCH = 10_000
_ENTRIES = cast(Table, LedgerEntry.__table__)
_ACCOUNTS = cast(Table, LedgerAccount.__table__)

# PostgreSQL: one statement text whatever the batch size (two array parameters), so asyncpg prepares
# it once; the guard is the same as `post`'s.
_PG_GUARDED_UPDATE = text(
    """
    UPDATE ledger_balances AS b
       SET balance = b.balance + v.delta, updated_at = :now
      FROM unnest(CAST(:account_ids AS uuid[]), CAST(:deltas AS bigint[])) AS v(account_id, delta)
     WHERE b.account_id = v.account_id AND b.tenant_id = :tenant_id
       AND (b.floor IS NULL OR b.balance + v.delta >= b.floor)
    RETURNING b.account_id, b.currency
    """
)


@dataclass(frozen=True)
class AccountSpec:
    """An account to open, as `service.open_account` takes it."""

    key: str
    kind: str
    name: str
    currency: str
    owner_type: str | None = None
    owner_id: str | None = None
    floor: int | None = None


@dataclass(frozen=True, slots=True)
class BatchPosted:
    """What `post_many` did with one draft: the entry of its key, and whether this batch posted it
    (False: the key had been posted before). Plain values, not ORM rows: a batch of thousands would
    spend more building entry objects than posting them."""

    entry_id: uuid.UUID
    idempotency_key: str
    created: bool


@dataclass(frozen=True)
class _Opened:
    id: uuid.UUID
    kind: str
    currency: str
    floor: int | None


async def _accounts_by_key(session: AsyncSession, tenant_id: uuid.UUID, keys: list[str]) -> dict[str, Any]:
    accounts = _ACCOUNTS
    rows = await session.execute(
        select(accounts.c.key, accounts.c.id, accounts.c.kind, accounts.c.currency, accounts.c.floor).where(
            accounts.c.tenant_id == tenant_id, sql.in_values(session, accounts.c.key, keys)
        )
    )
    return {row.key: row for row in rows.all()}


async def open_accounts(session: AsyncSession, specs: Sequence[AccountSpec]) -> dict[str, uuid.UUID]:
    """`service.open_account` for many accounts with a few statements: the id of each key, opening the
    missing ones (`ON CONFLICT DO NOTHING`, so a concurrent opener's account is the one returned). An
    existing account of another kind, currency or floor is refused (`AccountConflict`)."""
    tenant_id = _tenant(session)
    wanted = {spec.key: spec for spec in specs}
    found = await _accounts_by_key(session, tenant_id, list(wanted))
    missing = [spec for key, spec in wanted.items() if key not in found]
    if missing:
        now = utcnow()
        rows = [{"id": new_id(), "tenant_id": tenant_id, "created_at": now, **vars(spec)} for spec in missing]
        inserted = await session.execute(
            sql.insert_ignore(session, _ACCOUNTS, "tenant_id", "key").returning(_ACCOUNTS.c.id),
            rows,
        )
        created = set(inserted.scalars().all())
        balances = [
            {"account_id": r["id"], "tenant_id": tenant_id, "currency": r["currency"], "balance": 0}
            | {"floor": r["floor"], "updated_at": now}
            for r in rows
            if r["id"] in created
        ]
        if balances:
            await session.execute(sql.insert(session, _BALANCES), balances)
        found |= {r["key"]: _Opened(r["id"], r["kind"], r["currency"], r["floor"]) for r in rows if r["id"] in created}
        raced = [spec.key for spec in missing if spec.key not in found]  # opened by a concurrent transaction
        if raced:
            found |= await _accounts_by_key(session, tenant_id, raced)
    for key, spec in wanted.items():
        row = found[key]
        if (row.kind, row.currency, row.floor) != (spec.kind, spec.currency, spec.floor):
            raise AccountConflict(
                key=key, kind=row.kind, currency=row.currency, floor=row.floor, account_id=str(row.id)
            )
    return {key: found[key].id for key in wanted}


_PG_INSERT_LINES = text(
    """
    INSERT INTO ledger_lines (tenant_id, entry_id, account_id, amount)
    SELECT CAST(:tenant_id AS uuid), e, a, x
      FROM unnest(CAST(:entry_ids AS uuid[]), CAST(:account_ids AS uuid[]), CAST(:amounts AS bigint[])) AS v(e, a, x)
    """
)


def _check_batch(drafts: Sequence[EntryDraft]) -> None:
    if len(drafts) > MAX_BATCH:
        raise InvalidEntry(f"Post at most {MAX_BATCH} entries at once.", field="entries")
    seen: set[str] = set()
    for draft in drafts:
        _check_shape(draft)
        if draft.idempotency_key in seen:
            raise InvalidEntry("An idempotency key appears twice in one batch.", field="idempotency_key")
        seen.add(draft.idempotency_key)


def _entry_row(
    tenant_id: uuid.UUID, draft: EntryDraft, posted_by: str, now: Any, entry_id: uuid.UUID | None
) -> dict[str, Any]:
    return {
        "id": entry_id or new_id(),
        "tenant_id": tenant_id,
        "idempotency_key": draft.idempotency_key,
        "kind": draft.kind,
        "memo": draft.memo,
        "reference_type": draft.reference_type,
        "reference_id": draft.reference_id,
        "reverses_id": None,
        "data": dict(draft.data),
        "posted_by": posted_by[:254],
        "posted_at": now,
    }


async def _claim_keys(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the entries whose key is free; the keys inserted. A key taken by a concurrent batch
    waits for it to end (PostgreSQL) and is left out if it committed."""
    statement = sql.insert_ignore(session, _ENTRIES, "tenant_id", "idempotency_key").returning(
        _ENTRIES.c.idempotency_key
    )
    claimed: set[str] = set()
    for start in range(0, len(rows), 1000):
        result = await session.execute(statement, rows[start : start + 1000])
        claimed.update(result.scalars().all())
    return claimed


async def _lock_in_order(session: AsyncSession, tenant_id: uuid.UUID, account_ids: list[uuid.UUID]) -> None:
    if sql.is_postgres(session):
        balances = _BALANCES
        await session.execute(
            select(balances.c.account_id)
            .where(sql.in_values(session, balances.c.account_id, account_ids), balances.c.tenant_id == tenant_id)
            .order_by(balances.c.account_id)
            .with_for_update()
        )


async def _apply_deltas(
    session: AsyncSession, tenant_id: uuid.UUID, deltas: dict[uuid.UUID, int]
) -> dict[uuid.UUID, str]:
    """Add each account's summed delta under the floor guard; the currency of each account changed."""
    now = utcnow()
    ordered = sorted(deltas)
    await _lock_in_order(session, tenant_id, ordered)
    if sql.is_postgres(session):
        result = await session.execute(
            _PG_GUARDED_UPDATE,
            {"now": now, "account_ids": ordered, "deltas": [deltas[a] for a in ordered], "tenant_id": tenant_id},
        )
        return {row[0]: row[1] for row in result.all()}
    balances = _BALANCES
    changed: dict[uuid.UUID, str] = {}
    statement = (
        update(balances)
        .where(
            balances.c.account_id == bindparam("b_account_id"),
            balances.c.tenant_id == tenant_id,
            (balances.c.floor.is_(None)) | (balances.c.balance + bindparam("b_delta") >= balances.c.floor),
        )
        .values(balance=balances.c.balance + bindparam("b_delta"), updated_at=now)
        .returning(balances.c.currency)
    )
    for account_id in ordered:
        row = (await session.execute(statement, {"b_account_id": account_id, "b_delta": deltas[account_id]})).first()
        if row is not None:
            changed[account_id] = row[0]
    return changed


class _Refused(Exception):  # an internal signal: leave the savepoint, then explain
    def __init__(self, account_id: uuid.UUID, delta: int) -> None:
        super().__init__(str(account_id))
        self.account_id = account_id
        self.delta = delta


def _check_currencies(drafts: Iterable[EntryDraft], currency_of: dict[uuid.UUID, str]) -> None:
    for draft in drafts:
        currencies = {currency_of[line.account_id] for line in draft.lines}
        if len(currencies) != 1:
            raise InvalidEntry(
                "All lines of an entry must be in one currency.", field="lines", currencies=sorted(currencies)
            )


async def _write_new(
    session: AsyncSession, tenant_id: uuid.UUID, drafts: list[EntryDraft], ids: dict[str, uuid.UUID]
) -> None:
    """Balances and lines of the entries this batch inserted."""
    deltas: dict[uuid.UUID, int] = defaultdict(int)
    for draft in drafts:
        for line in draft.lines:
            deltas[line.account_id] += line.amount
    deltas = {account_id: delta for account_id, delta in deltas.items() if delta}
    currency_of = await _apply_deltas(session, tenant_id, deltas)
    for account_id in sorted(deltas):
        if account_id not in currency_of:
            raise _Refused(account_id, deltas[account_id])
    missing = {line.account_id for d in drafts for line in d.lines} - currency_of.keys()
    if missing:  # accounts whose lines net to 0 in this batch: their currency still has to agree
        rows = await session.execute(
            select(_BALANCES.c.account_id, _BALANCES.c.currency).where(
                _BALANCES.c.account_id.in_(missing), _BALANCES.c.tenant_id == tenant_id
            )
        )
        currency_of.update({row[0]: row[1] for row in rows.all()})
        if missing - currency_of.keys():
            raise InvalidEntry("Unknown ledger account.", field="lines", account_ids=sorted(map(str, missing)))
    _check_currencies(drafts, currency_of)
    await _insert_lines(session, tenant_id, [(ids[d.idempotency_key], line) for d in drafts for line in d.lines])


async def _insert_lines(session: AsyncSession, tenant_id: uuid.UUID, lines: list[tuple[uuid.UUID, Line]]) -> None:
    """All lines in one statement: on PostgreSQL from three arrays (`unnest`: three parameters whatever
    the count, encoded by the driver without a per-value pass), elsewhere a multi-row insert."""
    if sql.is_postgres(session):
        await session.execute(
            _PG_INSERT_LINES,
            {
                "tenant_id": tenant_id,
                "entry_ids": [entry_id for entry_id, _ in lines],
                "account_ids": [line.account_id for _, line in lines],
                "amounts": [line.amount for _, line in lines],
            },
        )
        return
    rows = [
        {"tenant_id": tenant_id, "entry_id": entry_id, "account_id": line.account_id, "amount": line.amount}
        for entry_id, line in lines
    ]
    await session.execute(sql.insert(session, _LINES), rows)


async def _replays(session: AsyncSession, drafts: list[EntryDraft]) -> dict[str, BatchPosted]:
    """The entries posted before under the drafts' keys, checked to be the same entries."""
    if not drafts:
        return {}
    wanted = {d.idempotency_key: d for d in drafts}
    entries = list(await session.scalars(select(LedgerEntry).where(LedgerEntry.idempotency_key.in_(wanted))))
    lines: dict[uuid.UUID, list[Line]] = defaultdict(list)
    rows = await session.execute(
        select(LedgerLine.entry_id, LedgerLine.account_id, LedgerLine.amount)
        .where(LedgerLine.entry_id.in_([e.id for e in entries]))
        .order_by(LedgerLine.id)
    )
    for entry_id, account_id, amount in rows.all():
        lines[entry_id].append(Line(account_id, int(amount)))
    found: dict[str, BatchPosted] = {}
    for entry in entries:
        draft = wanted[entry.idempotency_key]
        if entry.kind != draft.kind or not _same_lines(lines[entry.id], draft.lines):
            raise IdempotencyKeyReused(idempotency_key=draft.idempotency_key, entry_id=str(entry.id))
        found[entry.idempotency_key] = BatchPosted(entry.id, entry.idempotency_key, created=False)
    return found


async def post_many(
    session: AsyncSession,
    drafts: Sequence[EntryDraft],
    *,
    posted_by: str = "",
    entry_ids: Mapping[str, uuid.UUID] | None = None,
) -> list[BatchPosted]:
    """Post balanced entries once per idempotency key, in one savepoint; what became of each draft, in
    the drafts' order (`created` False for a key posted before). Refuses the whole batch, writing
    nothing, for anything `post` refuses one entry for (see the module's docstring). `entry_ids` (by
    key) are the ids new entries get, for callers that wrote rows pointing at them first."""
    tenant_id = _tenant(session)
    _check_batch(drafts)
    if not drafts:
        return []
    now = utcnow()
    ids = entry_ids or {}
    rows = {d.idempotency_key: _entry_row(tenant_id, d, posted_by, now, ids.get(d.idempotency_key)) for d in drafts}
    try:
        async with session.begin_nested():
            claimed = await _claim_keys(session, list(rows.values()))
            new = [d for d in drafts if d.idempotency_key in claimed]
            if new:
                await _write_new(session, tenant_id, new, {k: r["id"] for k, r in rows.items()})
            replayed = await _replays(session, [d for d in drafts if d.idempotency_key not in claimed])
    except _Refused as refused:
        account = await session.get(LedgerAccount, refused.account_id)
        if account is None:
            raise InvalidEntry(
                "Unknown ledger account.", field="lines", account_ids=[str(refused.account_id)]
            ) from None
        balance = await balance_of(session, account.id)
        raise InsufficientFunds(
            f"Account {account.name} holds {balance}; this batch takes {-refused.delta}, below its floor of "
            f"{account.floor}. Nothing was posted.",
            account_id=str(account.id),
            account_key=account.key,
            balance=balance,
            floor=account.floor,
            delta=refused.delta,
        ) from None
    return [
        BatchPosted(rows[d.idempotency_key]["id"], d.idempotency_key, created=True)
        if d.idempotency_key in claimed
        else replayed[d.idempotency_key]
        for d in drafts
    ]
