"""Request and response models of the channel API. Phone numbers go in as typed and come out masked."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from zhongtai.channel import places, rules
from zhongtai.channel.models import Dealer, Guide, PartnerAccount, Store
from zhongtai.core.schemas import RequestBody


class DealerCreate(RequestBody):
    code: str = Field(max_length=60, examples=["D-GD-001"])
    name: str = Field(max_length=300, examples=["广州华南商贸有限公司"])
    contact_name: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=32, examples=["13812345678"])
    region_codes: list[str] = Field(
        default_factory=list,
        max_length=rules.MAX_REGION_CODES,
        description="GB/T 2260 codes at any level: province (440000), city (440100) or county (440106)",
    )
    polygons: dict[str, Any] | list[Any] | None = Field(
        default=None,
        description="drawn territory: GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection (WGS-84 [lon, lat])",
    )


class DealerUpdate(RequestBody):
    """Only the fields sent change. `phone: ""` clears the phone; `polygons: null` clears the drawing."""

    code: str | None = Field(default=None, max_length=60)
    name: str | None = Field(default=None, max_length=300)
    contact_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    region_codes: list[str] | None = Field(default=None, max_length=rules.MAX_REGION_CODES)
    polygons: dict[str, Any] | list[Any] | None = None


class RegionOut(BaseModel):
    code: str
    name: str


class DealerOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    contact_name: str
    phone_masked: str | None
    territory_regions: list[RegionOut]
    territory_polygons: dict[str, Any] | None = Field(description="GeoJSON MultiPolygon or null")
    status: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None

    @classmethod
    def of(cls, dealer: Dealer) -> DealerOut:
        return cls(
            id=dealer.id,
            code=dealer.code,
            name=dealer.name,
            contact_name=dealer.contact_name,
            phone_masked=dealer.phone_masked,
            territory_regions=[RegionOut(code=c, name=places.region_label(c)) for c in dealer.territory_region_codes],
            territory_polygons=rules.as_geojson(list(dealer.territory_polygons)),
            status=dealer.status,
            created_at=dealer.created_at,
            updated_at=dealer.updated_at,
            archived_at=dealer.archived_at,
        )


class StoreCreate(RequestBody):
    code: str = Field(max_length=60, examples=["S-GZ-0001"])
    name: str = Field(max_length=300)
    dealer_code: str = Field(max_length=60, description="code of the supplying dealer")
    address: str = Field(default="", max_length=600)
    contact_name: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=32)
    latitude: float | None = Field(default=None, description="WGS-84 degrees")
    longitude: float | None = Field(default=None, description="WGS-84 degrees")


class StoreUpdate(RequestBody):
    """Only the fields sent change; send both `latitude` and `longitude` as null to clear the location."""

    code: str | None = Field(default=None, max_length=60)
    name: str | None = Field(default=None, max_length=300)
    dealer_code: str | None = Field(default=None, max_length=60)
    address: str | None = Field(default=None, max_length=600)
    contact_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    latitude: float | None = None
    longitude: float | None = None


class StoreOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    dealer_id: uuid.UUID
    dealer_code: str | None
    address: str
    contact_name: str
    phone_masked: str | None
    latitude: float | None
    longitude: float | None
    region_codes: list[str] = Field(description="province, city and county codes the location lies in")
    in_dealer_territory: bool | None = Field(description="null when the location or the territory is unknown")
    status: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None

    @classmethod
    def of(cls, store: Store, dealer: Dealer | None, in_territory: bool | None) -> StoreOut:
        return cls(
            id=store.id,
            code=store.code,
            name=store.name,
            dealer_id=store.dealer_id,
            dealer_code=dealer.code if dealer else None,
            address=store.address,
            contact_name=store.contact_name,
            phone_masked=store.phone_masked,
            latitude=store.latitude,
            longitude=store.longitude,
            region_codes=store.region_codes,
            in_dealer_territory=in_territory,
            status=store.status,
            created_at=store.created_at,
            updated_at=store.updated_at,
            archived_at=store.archived_at,
        )


class GuideCreate(RequestBody):
    name: str = Field(max_length=200)
    phone: str = Field(max_length=32)


class GuideUpdate(RequestBody):
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    store_id: uuid.UUID | None = None


class GuideOut(BaseModel):
    id: uuid.UUID
    store_id: uuid.UUID
    name: str
    phone_masked: str | None
    status: str
    created_at: datetime
    archived_at: datetime | None

    @classmethod
    def of(cls, guide: Guide) -> GuideOut:
        return cls(
            id=guide.id,
            store_id=guide.store_id,
            name=guide.name,
            phone_masked=guide.phone_masked,
            status=guide.status,
            created_at=guide.created_at,
            archived_at=guide.archived_at,
        )


class PartnerCreate(RequestBody):
    role: str = Field(description="dealer, store or guide", examples=["store"])
    target_id: uuid.UUID = Field(description="id of the dealer, store or guide the account acts for")
    phone: str = Field(max_length=32)
    display_name: str = Field(max_length=200)
    password: str | None = Field(default=None, max_length=200, description="optional; else sign in by SMS code")


class PartnerUpdate(RequestBody):
    is_active: bool | None = None
    password: str | None = Field(default=None, max_length=200)


class PartnerOut(BaseModel):
    id: uuid.UUID
    role: str
    display_name: str
    phone_masked: str
    dealer_id: uuid.UUID | None
    store_id: uuid.UUID | None
    guide_id: uuid.UUID | None
    has_password: bool
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, account: PartnerAccount) -> PartnerOut:
        return cls(
            id=account.id,
            role=account.role,
            display_name=account.display_name,
            phone_masked=account.phone_masked,
            dealer_id=account.dealer_id,
            store_id=account.store_id,
            guide_id=account.guide_id,
            has_password=account.password_hash is not None,
            is_active=account.is_active,
            created_at=account.created_at,
            last_login_at=account.last_login_at,
        )


class PartnerSignIn(RequestBody):
    """Either `password` or `code` (the SMS code from `…/partner/otp`)."""

    phone: str = Field(max_length=32)
    password: str | None = Field(default=None, max_length=200)
    code: str | None = Field(default=None, min_length=4, max_length=8)


class PartnerSessionOut(BaseModel):
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    partner: PartnerOut


class PartnerPassword(RequestBody):
    password: str = Field(max_length=200)


class PartnerMeOut(BaseModel):
    partner: PartnerOut
    dealer: DealerOut
    store: StoreOut | None


class TerritoryCheck(RequestBody):
    latitude: float = Field(ge=-90, le=90, description="WGS-84 degrees")
    longitude: float = Field(ge=-180, le=180, description="WGS-84 degrees")


class TerritoryCheckOut(BaseModel):
    dealer_id: uuid.UUID
    latitude: float
    longitude: float
    inside: bool | None = Field(description="null when the dealer has no territory")
    region_codes: list[str]
    place: str | None
