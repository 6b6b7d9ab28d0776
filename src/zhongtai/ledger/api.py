"""Ledger REST API (read-only): accounts with balances, an account's movements, one entry.

Money moves only through the services of the modules that own the business event (rewards,
settlement, payouts), which post to the ledger in their own transactions.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from zhongtai.core.principals import Principal
from zhongtai.core.schemas import Paged
from zhongtai.core.web import DbSession, PageDep, require
from zhongtai.ledger import service
from zhongtai.ledger.permissions import LEDGER_READ
from zhongtai.ledger.schemas import AccountLineOut, AccountOut, EntryOut

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])

LedgerReader = Annotated[Principal, Depends(require(LEDGER_READ))]


@router.get("/accounts", response_model=Paged[AccountOut])
async def list_accounts(
    session: DbSession,
    _: LedgerReader,
    page: PageDep,
    kind: Annotated[str | None, Query(max_length=30, description="e.g. fee_pool, partner_wallet")] = None,
    owner_type: Annotated[str | None, Query(max_length=30)] = None,
    owner_id: Annotated[str | None, Query(max_length=80)] = None,
) -> Paged[AccountOut]:
    rows, total = await service.list_accounts(
        session, kind=kind, owner_type=owner_type, owner_id=owner_id, limit=page.per_page, offset=page.offset
    )
    return Paged(items=[AccountOut.of(a, b) for a, b in rows], total=total, page=page.page, per_page=page.per_page)


@router.get("/accounts/{account_id}", response_model=AccountOut)
async def get_account(account_id: uuid.UUID, session: DbSession, _: LedgerReader) -> AccountOut:
    account = await service.get_account(session, account_id)
    return AccountOut.of(account, await service.balance_of(session, account_id))


@router.get("/accounts/{account_id}/lines", response_model=Paged[AccountLineOut])
async def account_lines(
    account_id: uuid.UUID, session: DbSession, _: LedgerReader, page: PageDep
) -> Paged[AccountLineOut]:
    """The account's movements, newest first."""
    rows, total = await service.account_lines(session, account_id, limit=page.per_page, offset=page.offset)
    return Paged(
        items=[AccountLineOut.of(line, entry) for line, entry in rows],
        total=total,
        page=page.page,
        per_page=page.per_page,
    )


@router.get("/entries/{ledger_entry_id}", response_model=EntryOut)
async def get_entry(ledger_entry_id: uuid.UUID, session: DbSession, _: LedgerReader) -> EntryOut:
    entry, lines = await service.get_entry(session, ledger_entry_id)
    return EntryOut.of(entry, lines)
