"""What other domains may read of the ledger without going through its tables: accounts by key.

The ledger answers for its tables (`ledger_accounts`, `ledger_balances`, `ledger_entries`, `ledger_lines`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.ledger.models import LedgerAccount

CHUNK = 1000


async def account_ids_by_key(session: AsyncSession, keys: Iterable[str]) -> dict[str, uuid.UUID]:
    """Account key → account id, for the keys that name an open account (in the session's scope)."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, uuid.UUID] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(
            select(LedgerAccount.key, LedgerAccount.id).where(LedgerAccount.key.in_(wanted[start : start + CHUNK]))
        )
        found.update((key, value) for key, value in rows.all())
    return found


async def account_id_by_key(session: AsyncSession, key: str) -> uuid.UUID | None:
    """The id of the account with this key, or None when it is not open."""
    return await session.scalar(select(LedgerAccount.id).where(LedgerAccount.key == key))
