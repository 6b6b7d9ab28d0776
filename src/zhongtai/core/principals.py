"""Who is calling: an operator, an integration token, a channel partner, a consumer, or nobody."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class PrincipalKind(StrEnum):
    OPERATOR = "operator"
    TOKEN = "token"
    PARTNER = "partner"  # dealers, stores and guides (channel issue)
    CONSUMER = "consumer"
    SYSTEM = "system"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    id: uuid.UUID
    tenant_id: uuid.UUID
    label: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    role: str | None = None
    is_platform: bool = False
    session_id: uuid.UUID | None = None
    csrf_token: str | None = None

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def is_staff(self) -> bool:
        return self.kind in (PrincipalKind.OPERATOR, PrincipalKind.TOKEN)
