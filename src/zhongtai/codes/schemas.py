"""Request and response models of the codes API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from zhongtai.codes.models import LEVEL_NAMES, STATE_NAMES, CodeBatch


class CodeSettingsOut(BaseModel):
    gs1_company_prefix: str | None
    sscc_extension_digit: int
    resolver_base: str
    pin_key_version: int | None = None


class CodeSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gs1_company_prefix: str | None = Field(default=None, max_length=12, examples=["6901234"])
    sscc_extension_digit: int | None = None
    resolver_base: str | None = Field(default=None, max_length=200, examples=["https://id.brand.example"])


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: uuid.UUID
    level: Literal["item", "case", "pallet"] = "item"
    quantity: int = Field(ge=1, le=10_000_000)
    note: str = Field(default="", max_length=200)


class BatchOut(BaseModel):
    id: uuid.UUID
    number: str
    product_id: uuid.UUID
    level: str
    quantity: int
    scheme: str
    status: str
    generated_count: int
    voided_count: int
    export_count: int
    pin_key_version: int | None
    resolver_base: str
    note: str
    created_by: str
    created_at: datetime
    generated_at: datetime | None
    state_counts: dict[str, int] | None = None

    @classmethod
    def of(cls, batch: CodeBatch, state_counts: dict[str, int] | None = None) -> BatchOut:
        return cls(
            id=batch.id,
            number=batch.number,
            product_id=batch.product_id,
            level=LEVEL_NAMES[batch.level],
            quantity=batch.quantity,
            scheme=batch.scheme,
            status=batch.status,
            generated_count=batch.generated_count,
            voided_count=batch.voided_count,
            export_count=batch.export_count,
            pin_key_version=batch.pin_key_version,
            resolver_base=batch.resolver_base,
            note=batch.note,
            created_by=batch.created_by,
            created_at=batch.created_at,
            generated_at=batch.generated_at,
            state_counts=state_counts,
        )


class VoidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200)
    from_index: int | None = Field(default=None, ge=1)
    to_index: int | None = Field(default=None, ge=1)


class VoidOut(BaseModel):
    voided: int
    batch: BatchOut


class CodeOut(BaseModel):
    serial: str
    uri: str
    level: str
    state: str
    product_id: uuid.UUID
    gtin: str
    product_name: str
    batch_id: uuid.UUID
    batch_number: str
    index_in_batch: int
    lot_number: str | None
    parent_serial: str | None
    children: int
    changed_at: datetime | None


def state_name(state: int) -> str:
    return STATE_NAMES[state]


class StepFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_time: AwareDatetime | None = Field(default=None, description="when it happened, with its offset; default now")
    event_timezone: str = Field(default="+08:00", pattern=r"^[+-]\d{2}:\d{2}$")
    read_point: str | None = Field(default=None, max_length=200, examples=["Factory 2 / line 3"])


class CommissionRequest(StepFields):
    codes: list[str] = Field(default_factory=list, max_length=100_000, description="URIs, serials or SSCCs")
    batch_id: uuid.UUID | None = None
    from_index: int | None = Field(default=None, ge=1)
    to_index: int | None = Field(default=None, ge=1)
    lot_id: uuid.UUID | None = None


class PackRequest(StepFields):
    parent: str = Field(min_length=1, max_length=300, description="the case or pallet code")
    children: list[str] = Field(default_factory=list, max_length=10_000)


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent: str = Field(min_length=1, max_length=300, description="the case or pallet code")
    children: list[str] = Field(min_length=1, max_length=10_000)


class PackCasesRequest(StepFields):
    cases: list[CaseIn] = Field(min_length=1, max_length=500, description="containers and what goes into each")


class DecommissionRequest(StepFields):
    codes: list[str] = Field(min_length=1, max_length=100_000)
    reason: str = Field(min_length=1, max_length=200)


class StepOut(BaseModel):
    event_id: int | None
    count: int
    replayed: bool = False


class PackOut(StepOut):
    parent: str
    contents: int
    capacity: int


class PackCasesOut(BaseModel):
    count: int
    replayed: bool = False
    cases: list[PackOut]


class CodeEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    action: str
    biz_step: str
    disposition: str | None
    parent_code_id: int | None
    quantity: int
    product_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    event_time: datetime
    event_timezone: str
    recorded_at: datetime
    read_point: str | None
    reason: str | None
    actor_label: str
