"""Errors of the ledger, in the platform's error family (4xx with a reason and data)."""

from __future__ import annotations

from zhongtai.core.errors import Conflict, NotFound, ValidationFailed


class InvalidEntry(ValidationFailed):
    code = "invalid_entry"
    default_message = "The journal entry is not valid."


class UnbalancedEntry(InvalidEntry):
    code = "unbalanced_entry"
    default_message = "The lines of a journal entry must sum to zero."


class InsufficientFunds(Conflict):
    code = "insufficient_funds"
    default_message = "The account does not hold enough to go below its floor."


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "This idempotency key was already used for a different journal entry."


class AccountConflict(Conflict):
    code = "account_conflict"
    default_message = "An account with this key already exists with different settings."


class AlreadyReversed(Conflict):
    code = "already_reversed"
    default_message = "This entry has already been reversed."


class AccountNotFound(NotFound):
    code = "account_not_found"
    default_message = "No such ledger account."


class EntryNotFound(NotFound):
    code = "entry_not_found"
    default_message = "No such journal entry."
