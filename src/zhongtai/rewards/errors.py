"""Errors of rewards, each with a stable code and HTTP status."""

from __future__ import annotations

from zhongtai.core.errors import Conflict, NotFound, ValidationFailed


class InvalidReward(ValidationFailed):
    code = "invalid_reward"
    default_message = "The reward settings are not valid."


class PoolNotFound(NotFound):
    code = "pool_not_found"
    default_message = "No such fee pool."


class RuleNotFound(NotFound):
    code = "rule_not_found"
    default_message = "No such reward rule."


class GrantNotFound(NotFound):
    code = "grant_not_found"
    default_message = "No such reward."


class WithdrawalNotFound(NotFound):
    code = "withdrawal_not_found"
    default_message = "No such withdrawal."


class BatchNotFound(NotFound):
    code = "batch_not_found"
    default_message = "No such payout batch."


class DuplicatePool(Conflict):
    code = "duplicate_pool"
    default_message = "A fee pool with this code already exists."


class NotHeld(Conflict):
    code = "not_held"
    default_message = "This reward is not waiting for review."


class BelowMinimum(ValidationFailed):
    code = "below_minimum"
    default_message = "The amount is below the smallest withdrawal."


class NotEnoughInWallet(Conflict):
    code = "not_enough_in_wallet"
    default_message = "The wallet does not hold this much."


class BadResultFile(ValidationFailed):
    code = "bad_result_file"
    default_message = "The payout result file cannot be read."
