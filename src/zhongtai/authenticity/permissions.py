"""Permissions of authenticity. The consumer's scan itself is public; these guard the brand's side."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

AUTHENTICITY_READ = register_permission(
    "authenticity.read", "See consumer scans, scan statistics and clone alerts", ALL_ROLES
)
AUTHENTICITY_MANAGE = register_permission(
    "authenticity.manage", "Triage clone alerts and change authenticity thresholds", MANAGERS | {Role.OPERATOR}
)
