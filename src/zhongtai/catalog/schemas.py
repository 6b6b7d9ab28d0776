"""Request and response models of the catalog API. Prices are yuan with two decimals (stored as fen)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from zhongtai.catalog import rules
from zhongtai.catalog.models import Lot, Product


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gtin: str = Field(
        max_length=40, description="GTIN-8, -12, -13 or -14 with its check digit", examples=["6901234567892"]
    )
    name: str = Field(max_length=300)
    specification: str = Field(default="", max_length=300, examples=["500 ml"])
    category: str = Field(default="", max_length=300)
    image_urls: list[str] = Field(default_factory=list, max_length=rules.MAX_IMAGES)
    price: Decimal | None = Field(default=None, description="yuan, at most two decimals", examples=["12.50"])
    items_per_case: int | None = Field(default=None, description="items in one case (N ≥ 1)")
    cases_per_pallet: int | None = Field(default=None, description="cases on one pallet (M ≥ 1); needs items_per_case")


class ProductUpdate(BaseModel):
    """Only the fields sent change; send `null` to clear price or packaging."""

    model_config = ConfigDict(extra="forbid")
    gtin: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=300)
    specification: str | None = Field(default=None, max_length=300)
    category: str | None = Field(default=None, max_length=300)
    image_urls: list[str] | None = Field(default=None, max_length=rules.MAX_IMAGES)
    price: Decimal | None = None
    items_per_case: int | None = None
    cases_per_pallet: int | None = None


class ProductOut(BaseModel):
    id: uuid.UUID
    gtin: str = Field(description="GTIN-14")
    name: str
    specification: str
    category: str
    image_urls: list[str]
    price: Decimal | None = Field(description="yuan")
    items_per_case: int | None
    cases_per_pallet: int | None
    items_per_pallet: int | None
    status: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        per_pallet = (
            product.items_per_case * product.cases_per_pallet
            if product.items_per_case and product.cases_per_pallet
            else None
        )
        return cls(
            id=product.id,
            gtin=product.gtin,
            name=product.name,
            specification=product.specification,
            category=product.category,
            image_urls=list(product.image_urls),
            price=None if product.price_fen is None else Decimal(rules.format_price(product.price_fen)),
            items_per_case=product.items_per_case,
            cases_per_pallet=product.cases_per_pallet,
            items_per_pallet=per_pallet,
            status=product.status,
            created_at=product.created_at,
            updated_at=product.updated_at,
            archived_at=product.archived_at,
        )


class LotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lot_number: str = Field(max_length=40, description="GS1 AI (10): up to 20 characters of CSET 82")
    produced_on: date | None = None
    expires_on: date | None = Field(default=None, description="after produced_on")
    factory: str = Field(default="", max_length=300)
    line: str = Field(default="", max_length=300)


class LotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lot_number: str | None = Field(default=None, max_length=40)
    produced_on: date | None = None
    expires_on: date | None = None
    factory: str | None = Field(default=None, max_length=300)
    line: str | None = Field(default=None, max_length=300)


class LotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    product_id: uuid.UUID
    lot_number: str
    produced_on: date | None
    expires_on: date | None
    factory: str
    line: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, lot: Lot) -> LotOut:
        return cls.model_validate(lot)
