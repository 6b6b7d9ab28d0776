"""Refusals of flash sales, with stable codes (the buy fast path renders the same shape)."""

from __future__ import annotations

from zhongtai.core.errors import Conflict, NotFound, Unauthenticated, ValidationFailed


class SaleNotFound(NotFound):
    code = "sale_not_found"
    default_message = "No flash sale with this id."


class SaleNotEditable(Conflict):
    code = "sale_not_editable"
    default_message = "Only a draft sale can be changed; this one is already scheduled or ended."


class SaleNotOpen(Conflict):
    code = "sale_not_open"
    default_message = "The sale is not open now."


class SoldOut(Conflict):
    code = "sold_out"
    default_message = "Sold out."


class LimitReached(Conflict):
    code = "limit_reached"
    default_message = "You already bought as many as one member may in this sale."


class PassInvalid(Unauthenticated):
    code = "pass_invalid"
    default_message = "The sale pass is missing, expired or not for this sale; get a new one."


class SaleInvalid(ValidationFailed):
    code = "sale_invalid"
