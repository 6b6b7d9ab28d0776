"""Request and response models of lotteries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from zhongtai.core.schemas import RequestBody


class StoreCreate(RequestBody):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=120)
    city: str = Field(default="", max_length=60)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    channel_store_id: uuid.UUID | None = Field(
        default=None, description="the channel store whose clerks hand over the winners' bottles"
    )


class StoreOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    city: str
    latitude: float
    longitude: float
    channel_store_id: uuid.UUID | None = None


class NearbyStoreOut(StoreOut):
    distance_km: float | None
    product_ids: list[uuid.UUID]


class SessionCreate(RequestBody):
    title: str = Field(min_length=1, max_length=120)
    opens_at: AwareDatetime
    closes_at: AwareDatetime
    payment_hours: int = Field(default=24, ge=1, le=720)
    beacon_source: str = Field(
        default="", max_length=200, description="the public randomness beacon announced for the draw, if any"
    )


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    status: str
    algorithm: str
    opens_at: datetime
    closes_at: datetime
    minimum_age: int
    payment_hours: int
    seed_sha256: str
    beacon_source: str
    committed_at: datetime | None
    closed_at: datetime | None
    entries_count: int
    excluded_count: int
    entries_root: str | None
    beacon: str | None
    drawn_at: datetime | None
    winners_count: int


class StockLine(RequestBody):
    store_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int = Field(ge=1, le=1_000_000)
    price_fen: int = Field(default=0, ge=0, le=100_000_000, description="what a winner pays per bottle, in fen")


class StockSet(RequestBody):
    items: list[StockLine] = Field(min_length=1, max_length=100_000)


class StockOut(BaseModel):
    items: list[dict[str, Any]]
    entries: list[dict[str, Any]] = Field(default_factory=list, description="entries per store and product")


class DrawRequest(RequestBody):
    beacon: str | None = Field(default=None, max_length=200)


class EntryCreate(RequestBody):
    product_id: uuid.UUID
    store_id: uuid.UUID


class WinOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    entry_id: uuid.UUID
    consumer_id: uuid.UUID
    product_id: uuid.UUID
    store_id: uuid.UUID
    rank: int
    status: str
    payment_due_at: datetime
    notified_at: datetime | None
