"""Request and response models of flash sales (the buy itself is answered by `fastpath`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, Field

from zhongtai.core.schemas import RequestBody
from zhongtai.flashsale import rules
from zhongtai.flashsale.models import FlashSale


class SaleCreate(RequestBody):
    title: str = Field(min_length=1, max_length=120)
    product_id: uuid.UUID
    price: Decimal = Field(description="yuan, at most two decimals", examples=["1499.00"])
    stock: int = Field(ge=1, le=rules.MAX_STOCK)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    per_member_limit: int = Field(default=1, ge=1, le=rules.MAX_PER_MEMBER)
    payment_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)
    requires_verification: bool = Field(default=True, description="real-name verified members only")
    minimum_age: int = Field(default=18, ge=0, le=100)

    def draft(self) -> rules.SaleDraft:
        return rules.SaleDraft(
            title=self.title,
            product_id=self.product_id,
            price_fen=rules.price_fen(self.price),
            stock=self.stock,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            per_member_limit=self.per_member_limit,
            payment_minutes=self.payment_minutes,
            requires_verification=self.requires_verification,
            minimum_age=self.minimum_age,
        )


class SaleOut(BaseModel):
    id: uuid.UUID
    title: str
    product_id: uuid.UUID
    price: str
    stock: int
    per_member_limit: int
    payment_minutes: int
    requires_verification: bool
    minimum_age: int
    starts_at: datetime
    ends_at: datetime
    status: str
    buy_url: str

    @classmethod
    def of(cls, sale: FlashSale) -> SaleOut:
        return cls(
            id=sale.id,
            title=sale.title,
            product_id=sale.product_id,
            price=rules.format_price(sale.price_fen),
            stock=sale.stock,
            per_member_limit=sale.per_member_limit,
            payment_minutes=sale.payment_minutes,
            requires_verification=sale.requires_verification,
            minimum_age=sale.minimum_age,
            starts_at=sale.starts_at,
            ends_at=sale.ends_at,
            status=sale.status,
            buy_url=f"/api/v1/flashsale/sales/{sale.id}/buy",
        )


class LiveOut(BaseModel):
    stock: int
    stock_left: int
    accepted_units: int
    orders_persisted: int
    orders_expired: int
    rejected: dict[str, int]
    accepted_per_s: float = Field(description="accepted units per second over the last ten seconds")
    per_second: list[tuple[int, int]] = Field(description="(epoch second, accepted units) over the last minute")


class PassOut(BaseModel):
    sale_pass: str = Field(description="send as 'Authorization: Bearer <pass>' to the buy endpoint")
    expires_at: datetime
    buy_url: str


class BuyAccepted(BaseModel):
    reference: str = Field(description="the order's reference (source_ref of the order)")
    status: str
    replayed: bool
    quantity: int
    unit_price_fen: int
    pay_by: datetime | None
