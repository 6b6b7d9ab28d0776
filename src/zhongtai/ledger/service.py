"""The ledger's service: open accounts, post balanced entries exactly once, reverse, read, recompute.

Callers (rewards, settlement, payouts) pass their own session; the boundary commits. `post` runs in a
savepoint, so a refused entry (unbalanced, below a floor) leaves the caller's transaction usable.

Concurrency:
- Each balance changes through one conditional UPDATE (`balance + delta >= floor`), in account-id
  order; on PostgreSQL a concurrent post waits for the row and re-checks the guard against the
  committed balance, on SQLite writers are serialised (BEGIN IMMEDIATE). A floor is never crossed,
  and a CHECK constraint on the balance row backs the guard.
- The idempotency key is unique per tenant. A post that loses the race on the key rolls back its
  savepoint and returns the winner's entry, so one key gives exactly one entry.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.errors import CrossTenantAccess
from zhongtai.core.ids import new_id
from zhongtai.ledger.errors import (
    AccountConflict,
    AccountNotFound,
    AlreadyReversed,
    EntryNotFound,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidEntry,
    UnbalancedEntry,
)
from zhongtai.ledger.models import LedgerAccount, LedgerBalance, LedgerEntry, LedgerLine

CNY = "CNY"
POINTS = "PTS"
CURRENCIES = frozenset({CNY, POINTS})
# One line moves at most 10^12 minor units (ten billion yuan): far above any real movement, far below
# the 64-bit range, so sums over millions of lines cannot overflow.
MAX_LINE_AMOUNT = 10**12
MAX_LINES = 100

# What an account is for. Rewards, settlement and payouts use these; the list grows with them.
ACCOUNT_KINDS = frozenset(
    {
        "brand_funding",  # the brand's money put into the platform (goes negative as it funds pools)
        "fee_pool",  # a campaign's or product's budget (费用池), floor 0
        "partner_wallet",  # a dealer's, store's or guide's earned rewards, floor 0
        "consumer_wallet",  # a consumer's red packets, floor 0
        "payouts_in_transit",  # withdrawals approved and sent, not yet confirmed paid
        "payouts_paid",  # confirmed paid out of the platform
        "brand_revenue",  # money the brand earns (sales, penalties collected)
        "penalties",  # deductions from partners pending collection
        "points",  # member points balances
        "points_issued",  # the source of member points
        "suspense",  # amounts awaiting review
        "payment_clearing",  # what payers paid in through a payment provider (sales), no floor
    }
)
REVERSAL_KIND = "reversal"

_ACCOUNTS = cast(Table, LedgerAccount.__table__)
_BALANCES = cast(Table, LedgerBalance.__table__)
_LINES = cast(Table, LedgerLine.__table__)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an entry: `amount` minor units added to (positive) or taken from (negative) an account."""

    account_id: uuid.UUID
    amount: int


@dataclass(frozen=True)
class EntryDraft:
    idempotency_key: str
    kind: str
    lines: Sequence[Line]
    memo: str = ""
    reference_type: str | None = None
    reference_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    lines: list[Line]
    created: bool  # False: the key had been posted before and this is that entry


@dataclass(frozen=True)
class Mismatch:
    account_id: uuid.UUID
    currency: str
    stored: int | None  # None: the account has no balance row
    computed: int


@dataclass
class RecomputeReport:
    accounts: int
    lines: int
    mismatches: list[Mismatch]
    unbalanced_entries: list[uuid.UUID]
    balance_totals: dict[str, int]  # sum of stored balances per currency: 0 when the books balance
    journal_totals: dict[str, int]  # sum of all lines per currency: 0 by construction
    repaired: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.mismatches
            and not self.unbalanced_entries
            and all(v == 0 for v in self.balance_totals.values())
            and all(v == 0 for v in self.journal_totals.values())
        )


Account = LedgerAccount  # the public name of an account as `open_account` and `get_account` return it


def _tenant(session: AsyncSession) -> uuid.UUID:
    scope = tenancy.current_scope(session)
    if not isinstance(scope, uuid.UUID):
        raise CrossTenantAccess("the ledger needs a session scoped to one tenant")
    return scope


def _text(value: str, label: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidEntry(f"{label} is required.", field=label)
    if len(value) > limit:
        raise InvalidEntry(f"{label} is longer than {limit} characters.", field=label)
    return value


# ----------------------------------------------------------------------------------------------- accounts


async def open_account(
    session: AsyncSession,
    *,
    key: str,
    kind: str,
    name: str,
    currency: str = CNY,
    owner_type: str | None = None,
    owner_id: str | None = None,
    floor: int | None = None,
) -> LedgerAccount:
    """Open the account with natural `key`, or return it if it exists with the same kind, currency and
    floor (a different one is refused). Its balance row starts at 0."""
    _text(key, "key", 200)
    _text(name, "name", 120)
    if kind not in ACCOUNT_KINDS:
        raise InvalidEntry(f"Unknown account kind {kind!r}; known: {', '.join(sorted(ACCOUNT_KINDS))}.", field="kind")
    if currency not in CURRENCIES:
        raise InvalidEntry(f"Currency must be one of {', '.join(sorted(CURRENCIES))}.", field="currency")
    if floor is not None and (isinstance(floor, bool) or not isinstance(floor, int) or floor > 0):
        raise InvalidEntry("A floor is an integer amount of at most 0 (or none).", field="floor")
    existing = await session.scalar(select(LedgerAccount).where(LedgerAccount.key == key))
    if existing is None:
        account = LedgerAccount(
            id=new_id(),
            key=key,
            kind=kind,
            name=name,
            currency=currency,
            owner_type=owner_type,
            owner_id=owner_id,
            floor=floor,
        )
        try:
            async with session.begin_nested():
                session.add(account)
                session.add(LedgerBalance(account_id=account.id, currency=currency, balance=0, floor=floor))
                await session.flush()
            return account
        except IntegrityError:
            existing = await session.scalar(select(LedgerAccount).where(LedgerAccount.key == key))
            if existing is None:
                raise
    if (existing.kind, existing.currency, existing.floor) != (kind, currency, floor):
        raise AccountConflict(
            key=key, kind=existing.kind, currency=existing.currency, floor=existing.floor, account_id=str(existing.id)
        )
    return existing


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> LedgerAccount:
    account = await session.get(LedgerAccount, account_id)
    if account is None:
        raise AccountNotFound()
    return account


async def account_by_key(session: AsyncSession, key: str) -> LedgerAccount | None:
    return await session.scalar(select(LedgerAccount).where(LedgerAccount.key == key))


async def balance_of(session: AsyncSession, account_id: uuid.UUID) -> int:
    value = await session.scalar(select(LedgerBalance.balance).where(LedgerBalance.account_id == account_id))
    if value is None:
        raise AccountNotFound()
    return int(value)


async def list_accounts(
    session: AsyncSession,
    *,
    kind: str | None = None,
    owner_type: str | None = None,
    owner_id: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[tuple[LedgerAccount, int]], int]:
    conditions = []
    if kind:
        conditions.append(LedgerAccount.kind == kind)
    if owner_type:
        conditions.append(LedgerAccount.owner_type == owner_type)
    if owner_id:
        conditions.append(LedgerAccount.owner_id == owner_id)
    total = await session.scalar(select(func.count()).select_from(LedgerAccount).where(*conditions))
    rows = await session.execute(
        select(LedgerAccount, LedgerBalance.balance)
        .join(LedgerBalance, LedgerBalance.account_id == LedgerAccount.id)
        .where(*conditions)
        .order_by(LedgerAccount.kind, LedgerAccount.key)
        .limit(limit)
        .offset(offset)
    )
    return [(account, int(balance)) for account, balance in rows.all()], int(total or 0)


async def account_lines(
    session: AsyncSession, account_id: uuid.UUID, *, limit: int = 20, offset: int = 0
) -> tuple[list[tuple[LedgerLine, LedgerEntry]], int]:
    """The account's lines with their entries, newest first."""
    await get_account(session, account_id)
    total = await session.scalar(
        select(func.count()).select_from(LedgerLine).where(LedgerLine.account_id == account_id)
    )
    rows = await session.execute(
        select(LedgerLine, LedgerEntry)
        .join(LedgerEntry, LedgerEntry.id == LedgerLine.entry_id)
        .where(LedgerLine.account_id == account_id)
        .order_by(LedgerLine.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [(line, entry) for line, entry in rows.all()], int(total or 0)


async def get_entry(session: AsyncSession, entry_id: uuid.UUID) -> tuple[LedgerEntry, list[Line]]:
    entry = await session.get(LedgerEntry, entry_id)
    if entry is None:
        raise EntryNotFound()
    return entry, await _lines_of(session, entry.id)


async def entry_by_key(session: AsyncSession, idempotency_key: str) -> LedgerEntry | None:
    return await session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key))


async def _lines_of(session: AsyncSession, entry_id: uuid.UUID) -> list[Line]:
    rows = await session.execute(
        select(LedgerLine.account_id, LedgerLine.amount).where(LedgerLine.entry_id == entry_id).order_by(LedgerLine.id)
    )
    return [Line(account_id, int(amount)) for account_id, amount in rows.all()]


# ------------------------------------------------------------------------------------------------ posting


def _check_shape(draft: EntryDraft) -> None:
    _text(draft.idempotency_key, "idempotency_key", 200)
    _text(draft.kind, "kind", 40)
    _text(draft.memo, "memo", 200, required=False)
    if len(draft.lines) < 2:
        raise InvalidEntry("A journal entry needs at least two lines.", field="lines")
    if len(draft.lines) > MAX_LINES:
        raise InvalidEntry(f"A journal entry has at most {MAX_LINES} lines.", field="lines")
    for index, line in enumerate(draft.lines):
        amount = line.amount
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidEntry(f"Line {index}: the amount must be an integer of minor units (fen).", field="lines")
        if amount == 0 or abs(amount) > MAX_LINE_AMOUNT:
            raise InvalidEntry(
                f"Line {index}: the amount must be non-zero and at most {MAX_LINE_AMOUNT} in size.", field="lines"
            )
        if not isinstance(line.account_id, uuid.UUID):
            raise InvalidEntry(f"Line {index}: account_id must be a UUID.", field="lines")
    total = sum(line.amount for line in draft.lines)
    if total != 0:
        raise UnbalancedEntry(f"The lines sum to {total}, not 0.", field="lines", sum=total)


def _same_lines(a: Sequence[Line], b: Sequence[Line]) -> bool:
    return sorted((line.account_id, line.amount) for line in a) == sorted((line.account_id, line.amount) for line in b)


async def _replay(session: AsyncSession, entry: LedgerEntry, draft: EntryDraft) -> Posted:
    lines = await _lines_of(session, entry.id)
    if entry.kind != draft.kind or not _same_lines(lines, draft.lines):
        raise IdempotencyKeyReused(idempotency_key=draft.idempotency_key, entry_id=str(entry.id))
    return Posted(entry, lines, created=False)


async def post(
    session: AsyncSession, draft: EntryDraft, *, posted_by: str = "", reverses_id: uuid.UUID | None = None
) -> Posted:
    """Post a balanced entry once per idempotency key; the same key again returns the first entry.

    Refuses (4xx, nothing written): fewer than two lines, zero or non-integer amounts, lines that do not
    sum to zero, accounts of another currency than the others or unknown to this tenant, a balance that
    would go below its account's floor, and a key already used for different lines.
    """
    tenant_id = _tenant(session)
    _check_shape(draft)
    deltas: dict[uuid.UUID, int] = defaultdict(int)
    for line in draft.lines:
        deltas[line.account_id] += line.amount
    now = utcnow()
    entry = LedgerEntry(
        id=new_id(),
        idempotency_key=draft.idempotency_key,
        kind=draft.kind,
        memo=draft.memo,
        reference_type=draft.reference_type,
        reference_id=draft.reference_id,
        reverses_id=reverses_id,
        data=dict(draft.data),
        posted_by=posted_by[:254],
        posted_at=now,
    )
    balances = _BALANCES
    # Round trips are the cost of a post, so the common case takes as few as it can: the entry's insert
    # claims the idempotency key (a replay fails it and returns the first entry), and each guarded
    # UPDATE returns its account's currency (an unknown or foreign account updates nothing). The
    # failure paths then look up what went wrong, after the savepoint has undone everything.
    try:
        async with session.begin_nested():
            session.add(entry)
            await session.flush()
            currencies: set[str] = set()
            for account_id in sorted(deltas):  # one order everywhere: no deadlock between two posts
                delta = deltas[account_id]
                row = (
                    await session.execute(
                        update(balances)
                        .where(
                            balances.c.account_id == account_id,
                            balances.c.tenant_id == tenant_id,
                            or_(balances.c.floor.is_(None), balances.c.balance + delta >= balances.c.floor),
                        )
                        .values(balance=balances.c.balance + delta, updated_at=now)
                        .returning(balances.c.currency)
                    )
                ).first()
                if row is None:
                    raise _Refused(account_id, delta)
                currencies.add(row[0])
            if len(currencies) != 1:
                raise _MixedCurrencies(sorted(currencies))
            await session.execute(
                insert(_LINES),
                [
                    {"tenant_id": tenant_id, "entry_id": entry.id, "account_id": line.account_id, "amount": line.amount}
                    for line in draft.lines
                ],
            )
    except _MixedCurrencies as mixed:
        raise InvalidEntry(
            "All lines of an entry must be in one currency.", field="lines", currencies=mixed.currencies
        ) from None
    except _Refused as refused:
        ids = set(deltas)
        accounts = {a.id: a for a in await session.scalars(select(LedgerAccount).where(LedgerAccount.id.in_(ids)))}
        missing = sorted(str(i) for i in ids - accounts.keys())
        if missing:
            raise InvalidEntry("Unknown ledger account.", field="lines", account_ids=missing) from None
        account = accounts[refused.account_id]
        balance = await balance_of(session, account.id)
        raise InsufficientFunds(
            f"Account {account.name} holds {balance}; taking {-refused.delta} would go below its floor of "
            f"{account.floor}.",
            account_id=str(account.id),
            account_key=account.key,
            balance=balance,
            floor=account.floor,
            delta=refused.delta,
        ) from None
    except IntegrityError:
        won = await entry_by_key(session, draft.idempotency_key)
        if won is None:
            if reverses_id is not None and await _reversal_of(session, reverses_id) is not None:
                raise AlreadyReversed(entry_id=str(reverses_id)) from None
            raise
        return await _replay(session, won, draft)
    return Posted(entry, list(draft.lines), created=True)


class _MixedCurrencies(Exception):  # an internal signal, turned into InvalidEntry
    def __init__(self, currencies: list[str]) -> None:
        super().__init__(", ".join(currencies))
        self.currencies = currencies


class _Refused(Exception):  # an internal signal, turned into InsufficientFunds
    def __init__(self, account_id: uuid.UUID, delta: int) -> None:
        super().__init__(str(account_id))
        self.account_id = account_id
        self.delta = delta


async def _reversal_of(session: AsyncSession, entry_id: uuid.UUID) -> LedgerEntry | None:
    return await session.scalar(select(LedgerEntry).where(LedgerEntry.reverses_id == entry_id))


async def reverse(
    session: AsyncSession,
    entry_id: uuid.UUID,
    *,
    memo: str = "",
    posted_by: str = "",
    idempotency_key: str | None = None,
) -> Posted:
    """Post the entry's mirror image (every amount negated); the original stays. Idempotent: reversing
    again returns the reversal. Floors apply: a reward already spent from a wallet cannot be reversed."""
    original, lines = await get_entry(session, entry_id)
    if original.reverses_id is not None:
        raise InvalidEntry("A reversal is not reversed; post a new entry instead.", field="entry_id")
    key = idempotency_key or f"reversal:{original.id}"
    done = await _reversal_of(session, original.id)
    if done is not None and done.idempotency_key != key:
        raise AlreadyReversed(entry_id=str(original.id), reversal_id=str(done.id))
    draft = EntryDraft(
        idempotency_key=key,
        kind=REVERSAL_KIND,
        lines=[Line(line.account_id, -line.amount) for line in lines],
        memo=memo or f"Reversal of {original.memo or original.kind}"[:200],
        reference_type="ledger_entry",
        reference_id=str(original.id),
    )
    return await post(session, draft, posted_by=posted_by, reverses_id=original.id)


# ---------------------------------------------------------------------------------------------- checking


async def recompute_balances(
    session: AsyncSession, *, repair: bool = False, check_entries: bool = True
) -> RecomputeReport:
    """Rebuild every balance of the tenant from the journal and compare it with the stored one.

    The comparison is one statement (one snapshot), so it is exact while posts go on. With `repair`
    the stored balances are rewritten from the journal (on PostgreSQL under a lock that holds posts
    back meanwhile). `check_entries` also lists entries whose lines do not sum to zero (none can be
    posted; this finds rows written around the service).
    """
    tenant_id = _tenant(session)
    lines = _LINES
    accounts = _ACCOUNTS
    balances = _BALANCES
    if repair and session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(1).select_from(balances).where(balances.c.tenant_id == tenant_id).with_for_update()
        )
    sums = (
        select(lines.c.account_id, func.sum(lines.c.amount).label("total"), func.count().label("n"))
        .where(lines.c.tenant_id == tenant_id)
        .group_by(lines.c.account_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(accounts.c.id, accounts.c.currency, balances.c.balance, sums.c.total, sums.c.n)
            .select_from(
                accounts.outerjoin(balances, balances.c.account_id == accounts.c.id).outerjoin(
                    sums, sums.c.account_id == accounts.c.id
                )
            )
            .where(accounts.c.tenant_id == tenant_id)
        )
    ).all()
    mismatches: list[Mismatch] = []
    balance_totals: dict[str, int] = defaultdict(int)
    journal_totals: dict[str, int] = defaultdict(int)
    line_count = 0
    for account_id, currency, stored, total, n in rows:
        computed = int(total or 0)
        line_count += int(n or 0)
        journal_totals[currency] += computed
        balance_totals[currency] += int(stored or 0)
        if stored is None or int(stored) != computed:
            mismatches.append(Mismatch(account_id, currency, None if stored is None else int(stored), computed))
    unbalanced: list[uuid.UUID] = []
    if check_entries:
        found = await session.execute(
            select(lines.c.entry_id)
            .where(lines.c.tenant_id == tenant_id)
            .group_by(lines.c.entry_id)
            .having(or_(func.sum(lines.c.amount) != 0, func.count() < 2))
            .limit(1000)
        )
        unbalanced = [row[0] for row in found.all()]
    report = RecomputeReport(
        accounts=len(rows),
        lines=line_count,
        mismatches=mismatches,
        unbalanced_entries=unbalanced,
        balance_totals=dict(balance_totals),
        journal_totals=dict(journal_totals),
    )
    if repair and mismatches:
        now = utcnow()
        currency_of = {m.account_id: m.currency for m in mismatches}
        for m in mismatches:
            if m.stored is None:
                floor = await session.scalar(select(accounts.c.floor).where(accounts.c.id == m.account_id))
                await session.execute(
                    insert(balances).values(
                        account_id=m.account_id,
                        tenant_id=tenant_id,
                        currency=currency_of[m.account_id],
                        balance=m.computed,
                        floor=floor,
                        updated_at=now,
                    )
                )
            else:
                await session.execute(
                    update(balances)
                    .where(and_(balances.c.account_id == m.account_id, balances.c.tenant_id == tenant_id))
                    .values(balance=m.computed, updated_at=now)
                )
        report.repaired = len(mismatches)
        report.balance_totals = dict(report.journal_totals)
    return report


async def balance_totals(session: AsyncSession) -> dict[str, int]:
    """Sum of the stored balances per currency; every currency sums to 0 in a consistent ledger."""
    tenant_id = _tenant(session)
    balances = _BALANCES
    rows = await session.execute(
        select(balances.c.currency, func.sum(balances.c.balance))
        .where(balances.c.tenant_id == tenant_id)
        .group_by(balances.c.currency)
    )
    return {currency: int(total or 0) for currency, total in rows.all()}


def format_amount(amount: int, currency: str) -> str:
    """For people: fen as yuan ("¥1,234.50", "-¥0.88"); points as a whole number ("1,200")."""
    sign = "-" if amount < 0 else ""
    value = abs(int(amount))
    if currency == CNY:
        return f"{sign}¥{value // 100:,}.{value % 100:02d}"
    return f"{sign}{value:,}"
