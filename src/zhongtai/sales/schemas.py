"""Request and response models of sales."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from zhongtai.core.schemas import RequestBody


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    order_no: str
    source: str
    source_ref: str
    consumer_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    unit_price_fen: int
    amount_fen: int
    currency: str
    store_id: uuid.UUID | None
    state: str
    pay_deadline: datetime
    created_at: datetime
    paid_at: datetime | None
    ready_at: datetime | None
    picked_up_at: datetime | None
    expired_at: datetime | None
    refunded_at: datetime | None
    item_code_id: int | None


class OrderEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_state: str
    to_state: str
    actor: str
    note: str
    occurred_at: datetime


class OrderDetailOut(OrderOut):
    history: list[OrderEventOut]


class OrderPage(BaseModel):
    items: list[OrderOut]
    total: int
    page: int
    per_page: int


class PaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    amount_fen: int
    currency: str
    status: str
    provider_txn_id: str | None
    refund_ref: str | None
    note: str
    created_at: datetime
    succeeded_at: datetime | None
    refunded_at: datetime | None


class SettlementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    business_day: date
    store_id: uuid.UUID | None
    dealer_id: uuid.UUID | None
    amount_fen: int
    brand_fen: int
    dealer_fen: int
    store_fen: int
    rule_scope: str
    ledger_entry_id: uuid.UUID | None
    status: str


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code_id: int
    epcis_hash: str
    handed_over_at: datetime


class OrderFullOut(OrderDetailOut):
    payments: list[PaymentOut]
    settlement: SettlementOut | None
    items: list[ItemOut]


class PaymentStarted(BaseModel):
    payment_id: uuid.UUID
    pay_url: str
    params: dict[str, Any]


class NotificationOut(BaseModel):
    result: str
    payment_id: uuid.UUID
    order_id: uuid.UUID
    order_no: str
    order_state: str


class RefundIn(RequestBody):
    reason: str = Field(min_length=1, max_length=200)


class PickupCodeOut(BaseModel):
    token: str
    expires_at: datetime
    qr_svg: str


class PickupCheckIn(RequestBody):
    token: str = Field(min_length=1, max_length=200)


class PickupIn(PickupCheckIn):
    item_codes: list[str] = Field(min_length=1, max_length=50)


class PickupOrderOut(BaseModel):
    order_id: uuid.UUID
    order_no: str
    product_id: uuid.UUID
    product_name: str
    quantity: int
    state: str
    picked_up_at: datetime | None


class SettlementRuleIn(RequestBody):
    mode: str = Field(pattern="^(percent|fixed)$")
    brand_share: int = Field(ge=0, le=10**9)
    dealer_share: int = Field(ge=0, le=10**9)
    store_share: int = Field(ge=0, le=10**9)


class SettlementRuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    scope: str
    mode: str
    brand_share: int
    dealer_share: int
    store_share: int
    updated_at: datetime


class StatementLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    business_day: date
    party_id: uuid.UUID | None
    orders: int
    amount_fen: int
    brand_fen: int
    dealer_fen: int
    store_fen: int
