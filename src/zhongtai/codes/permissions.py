"""Permissions of codes. PIN files are the most sensitive export: owners and administrators only."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

CODES_READ = register_permission("codes.read", "See code batches and look up codes", ALL_ROLES)
CODES_WRITE = register_permission("codes.write", "Request, void and manage code batches", MANAGERS | {Role.OPERATOR})
CODES_EXPORT = register_permission(
    "codes.export", "Download print files of code links (no PINs)", MANAGERS | {Role.OPERATOR}
)
CODES_EXPORT_PINS = register_permission(
    "codes.export_pins", "Download hidden-PIN files for the scratch-off printer", MANAGERS
)
CODES_SETTINGS = register_permission(
    "codes.settings", "Change the GS1 company prefix, resolver address and PIN keys", MANAGERS
)
CODES_CUSTODY = register_permission(
    "codes.custody", "Commission, pack, unpack and decommission codes (production lines)", MANAGERS | {Role.OPERATOR}
)
