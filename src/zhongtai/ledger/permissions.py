"""Permissions of the ledger. Reading the books is for managers, operators and auditors."""

from __future__ import annotations

from zhongtai.core.permissions import MANAGERS, Role, register_permission

LEDGER_READ = register_permission(
    "ledger.read", "See ledger accounts, balances and journal entries", MANAGERS | {Role.OPERATOR, Role.AUDITOR}
)
