"""Response models of the ledger API (read-only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from zhongtai.ledger.models import LedgerAccount, LedgerEntry, LedgerLine
from zhongtai.ledger.service import Line


class AccountOut(BaseModel):
    id: uuid.UUID
    key: str
    kind: str
    name: str
    currency: str = Field(description="CNY (amounts in fen) or PTS (points)")
    owner_type: str | None
    owner_id: str | None
    floor: int | None = Field(description="lowest balance allowed, minor units; null: no floor")
    balance: int = Field(description="current balance, minor units (fen for CNY)")
    created_at: datetime

    @classmethod
    def of(cls, account: LedgerAccount, balance: int) -> AccountOut:
        return cls(
            id=account.id,
            key=account.key,
            kind=account.kind,
            name=account.name,
            currency=account.currency,
            owner_type=account.owner_type,
            owner_id=account.owner_id,
            floor=account.floor,
            balance=balance,
            created_at=account.created_at,
        )


class LineOut(BaseModel):
    account_id: uuid.UUID
    amount: int = Field(description="change of the account's balance, minor units")


class EntryOut(BaseModel):
    id: uuid.UUID
    idempotency_key: str
    kind: str
    memo: str
    reference_type: str | None
    reference_id: str | None
    reverses_id: uuid.UUID | None
    data: dict[str, Any]
    posted_by: str
    posted_at: datetime
    lines: list[LineOut]

    @classmethod
    def of(cls, entry: LedgerEntry, lines: list[Line]) -> EntryOut:
        return cls(
            id=entry.id,
            idempotency_key=entry.idempotency_key,
            kind=entry.kind,
            memo=entry.memo,
            reference_type=entry.reference_type,
            reference_id=entry.reference_id,
            reverses_id=entry.reverses_id,
            data=entry.data,
            posted_by=entry.posted_by,
            posted_at=entry.posted_at,
            lines=[LineOut(account_id=line.account_id, amount=line.amount) for line in lines],
        )


class AccountLineOut(BaseModel):
    """One movement of an account: its line and the entry it belongs to."""

    line_id: int
    amount: int
    entry_id: uuid.UUID
    kind: str
    memo: str
    reference_type: str | None
    reference_id: str | None
    reverses_id: uuid.UUID | None
    posted_at: datetime

    @classmethod
    def of(cls, line: LedgerLine, entry: LedgerEntry) -> AccountLineOut:
        return cls(
            line_id=line.id,
            amount=line.amount,
            entry_id=entry.id,
            kind=entry.kind,
            memo=entry.memo,
            reference_type=entry.reference_type,
            reference_id=entry.reference_id,
            reverses_id=entry.reverses_id,
            posted_at=entry.posted_at,
        )
