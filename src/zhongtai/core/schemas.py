"""Request and response models of the core API (never the ORM models themselves)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

T = TypeVar("T")


class Paged(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


class ErrorOut(BaseModel):
    error: str = Field(description="stable machine-readable code")
    detail: str = Field(description="what went wrong, for a person")
    data: dict[str, Any] = Field(default_factory=dict)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


class RequestBody(BaseModel):
    """Base of request bodies: unknown fields are refused, and so is NUL in any text, which PostgreSQL
    cannot store (SQLite would, so refusing it here keeps both tiers alike)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text must not contain the NUL character (\\u0000)")
        return data


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MeOut(BaseModel):
    kind: str
    id: uuid.UUID
    tenant_id: uuid.UUID
    label: str
    role: str | None
    permissions: list[str]
    is_platform: bool


class UserOut(_FromRow):
    id: uuid.UUID
    email: str
    display_name: str
    role: str
    is_active: bool
    locale: str | None
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(RequestBody):
    email: str = Field(max_length=254)
    display_name: str = Field(min_length=1, max_length=80)
    role: str
    password: str = Field(max_length=200)


class UserUpdate(RequestBody):
    display_name: str | None = Field(default=None, max_length=80)
    role: str | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, max_length=200)


class TokenOut(_FromRow):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None


class TokenCreate(RequestBody):
    name: str = Field(min_length=1, max_length=80)
    scopes: list[str]
    expires_in_days: int | None = None


class TokenCreated(TokenOut):
    token: str = Field(description="the secret; shown only in this response")


class PermissionOut(BaseModel):
    name: str
    description: str
    roles: list[str]


class AuditEventOut(_FromRow):
    id: uuid.UUID
    actor_kind: str
    actor_id: uuid.UUID | None
    actor_label: str
    action: str
    target_type: str | None
    target_id: str | None
    data: dict[str, Any]
    ip: str | None
    request_id: str | None
    created_at: datetime


class JobOut(_FromRow):
    id: int
    topic: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    available_at: datetime
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class TenantOut(_FromRow):
    id: uuid.UUID
    slug: str
    name: str
    is_platform: bool
    is_active: bool
    created_at: datetime


class TenantWithUsers(TenantOut):
    users: int


class TenantCreate(RequestBody):
    slug: str = Field(max_length=40)
    name: str = Field(max_length=120)
    owner_email: str = Field(max_length=254)
    owner_password: str = Field(max_length=200)
    owner_name: str | None = Field(default=None, max_length=80)


class TenantCreated(BaseModel):
    tenant: TenantOut
    owner: UserOut


class OtpRequest(RequestBody):
    phone: str = Field(max_length=32, examples=["13812345678"])


class OtpSentOut(BaseModel):
    challenge_id: uuid.UUID
    expires_in_seconds: int
    phone_masked: str


class OtpVerify(RequestBody):
    phone: str = Field(max_length=32)
    code: str = Field(min_length=4, max_length=8)


class ConsumerOut(_FromRow):
    id: uuid.UUID
    phone_masked: str
    created_at: datetime
    last_login_at: datetime | None


class ConsumerSessionOut(BaseModel):
    token: str
    consumer: ConsumerOut
    is_new: bool
