"""Refusals of sales."""

from __future__ import annotations

from zhongtai.core.errors import AppError, Conflict, NotFound, ValidationFailed


class OrderNotFound(NotFound):
    code = "sales_order_not_found"
    default_message = "No such order."


class IllegalTransition(Conflict):
    code = "sales_illegal_transition"
    default_message = "The order is not in a state that allows this."


class BadOrderDraft(ValidationFailed):
    code = "sales_bad_order"
    default_message = "The order is not valid."


class PaymentNotFound(NotFound):
    code = "sales_payment_not_found"
    default_message = "No such payment."


class BadSignature(AppError):
    code = "sales_bad_signature"
    status_code = 401
    default_message = "The payment notification's signature is missing or wrong."


class BadNotification(ValidationFailed):
    code = "sales_bad_notification"
    default_message = "The payment notification is not well-formed."


class AmountMismatch(ValidationFailed):
    code = "sales_payment_amount_mismatch"
    default_message = "The amount paid does not match the order."


class PaymentConflict(Conflict):
    code = "sales_payment_conflict"
    default_message = "This payment was already completed differently."


class NotPayable(Conflict):
    code = "sales_not_payable"
    default_message = "This order cannot be paid now."


class RefundRefused(Conflict):
    code = "sales_refund_refused"
    default_message = "This order cannot be refunded."


class BadSettlementRule(ValidationFailed):
    code = "sales_bad_settlement_rule"
    default_message = "The settlement rule is not valid."


class PickupRefused(Conflict):
    code = "sales_pickup_refused"
    default_message = "This pickup cannot be completed."


class BadPickupCode(ValidationFailed):
    code = "sales_bad_pickup_code"
    status_code = 400
    default_message = "This is not a valid pickup code of this brand."


class PickupCodeExpired(ValidationFailed):
    code = "sales_pickup_code_expired"
    status_code = 400
    default_message = "This pickup code has expired; ask the member to refresh the order page."


class WrongStore(PickupRefused):
    code = "sales_pickup_wrong_store"
    status_code = 403
    default_message = "This order is picked up at another store."
