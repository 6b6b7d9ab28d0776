"""Permissions of flash sales."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

FLASHSALE_READ = register_permission("flashsale.read", "See flash sales and watch them live", ALL_ROLES)
FLASHSALE_WRITE = register_permission(
    "flashsale.write", "Create, schedule and end flash sales", MANAGERS | {Role.OPERATOR}
)
