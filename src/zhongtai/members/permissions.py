"""Permissions of members."""

from __future__ import annotations

from zhongtai.core.permissions import MANAGERS, Role, register_permission

MEMBERS_READ = register_permission(
    "members.read", "See verified members (names and ID numbers masked)", MANAGERS | {Role.OPERATOR, Role.AUDITOR}
)
MEMBERS_WRITE = register_permission(
    "members.write", "Link identifiers to members, undo merges and block identifier values", MANAGERS | {Role.OPERATOR}
)
MEMBERS_EXPORT = register_permission(
    "members.export", "Export a member's personal data, decrypted (every export is audited)", MANAGERS
)
MEMBERS_ERASE = register_permission("members.erase", "Erase a member's personal data on request", MANAGERS)
MEMBERS_IMPORT = register_permission(
    "members.import",
    "Import members and orders from marketplace, POS and CRM files into OneID",
    MANAGERS | {Role.OPERATOR},
)
