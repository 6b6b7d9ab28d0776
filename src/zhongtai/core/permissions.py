"""Roles and permissions. The role table is code: reviewed, versioned and the same on every node.

Modules add their permissions with `register_permission` at import time, naming the roles that get
it. API token scopes are permission names; a token never gets more than its creator has.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    VIEWER = "viewer"


ROLE_LABELS = {
    Role.OWNER: ("Owner", "所有者"),
    Role.ADMIN: ("Administrator", "管理员"),
    Role.OPERATOR: ("Operator", "运营"),
    Role.AUDITOR: ("Auditor", "审计"),
    Role.VIEWER: ("Viewer", "只读"),
}


@dataclass(frozen=True)
class Permission:
    name: str
    description: str
    roles: frozenset[Role]
    platform_only: bool = False


PERMISSIONS: dict[str, Permission] = {}

ALL_ROLES = frozenset(Role)
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})
READERS = ALL_ROLES


def register_permission(
    name: str, description: str, roles: frozenset[Role] | set[Role], *, platform_only: bool = False
) -> str:
    PERMISSIONS[name] = Permission(name, description, frozenset(roles), platform_only)
    return name


TENANT_READ = register_permission("tenant.read", "See the brand's settings", READERS)
TENANT_WRITE = register_permission("tenant.write", "Change the brand's settings", {Role.OWNER})
USERS_READ = register_permission("users.read", "List operator users", MANAGERS | {Role.AUDITOR})
USERS_WRITE = register_permission("users.write", "Create, change and disable operator users", MANAGERS)
TOKENS_READ = register_permission("tokens.read", "List API tokens", MANAGERS | {Role.AUDITOR})
TOKENS_WRITE = register_permission("tokens.write", "Create and revoke API tokens", MANAGERS)
AUDIT_READ = register_permission("audit.read", "Read the audit log", MANAGERS | {Role.AUDITOR})
JOBS_READ = register_permission("jobs.read", "See background jobs", MANAGERS | {Role.AUDITOR, Role.OPERATOR})
JOBS_WRITE = register_permission("jobs.write", "Retry or cancel background jobs", MANAGERS)
CONSUMERS_READ = register_permission(
    "consumers.read", "See consumer accounts (masked)", MANAGERS | {Role.OPERATOR, Role.AUDITOR}
)
PLATFORM_TENANTS = register_permission(
    "platform.tenants", "Create and suspend brand tenants", MANAGERS, platform_only=True
)


def permissions_for_role(role: Role | str, *, is_platform_tenant: bool) -> frozenset[str]:
    role = Role(role)
    return frozenset(
        p.name for p in PERMISSIONS.values() if role in p.roles and (is_platform_tenant or not p.platform_only)
    )


def assignable_roles(actor_role: Role | str) -> list[Role]:
    """Owners assign any role; admins every role but owner; others none."""
    actor_role = Role(actor_role)
    if actor_role is Role.OWNER:
        return list(Role)
    if actor_role is Role.ADMIN:
        return [r for r in Role if r is not Role.OWNER]
    return []
