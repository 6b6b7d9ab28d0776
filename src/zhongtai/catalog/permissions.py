"""Catalog permissions: every role reads products and lots; owners, administrators and operators
change them."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

CATALOG_READ = register_permission("catalog.read", "See products, packaging and lots", ALL_ROLES)
CATALOG_WRITE = register_permission(
    "catalog.write", "Create, change, archive and import products and lots", MANAGERS | {Role.OPERATOR}
)
