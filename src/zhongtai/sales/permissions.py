"""Permissions of sales."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

SALES_READ = register_permission("sales.read", "See orders, payments, pickups and settlement statements", ALL_ROLES)
SALES_WRITE = register_permission(
    "sales.write", "Change orders (hand over, refund) and settlement rules", MANAGERS | {Role.OPERATOR}
)
