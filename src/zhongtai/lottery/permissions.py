"""Permissions of lotteries."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

LOTTERY_READ = register_permission("lottery.read", "See lottery sessions, stock, entries counts and wins", ALL_ROLES)
LOTTERY_WRITE = register_permission(
    "lottery.write",
    "Create lottery sessions and stores, set stock, publish, close and draw",
    MANAGERS | {Role.OPERATOR},
)
