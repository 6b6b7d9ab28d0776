"""Channel permissions: every role sees dealers, stores and guides; owners, administrators and
operators change them and manage partner accounts."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

CHANNEL_READ = register_permission(
    "channel.read", "See dealers, stores, shopping guides and partner accounts", ALL_ROLES
)
CHANNEL_MANAGE = register_permission(
    "channel.manage",
    "Create, change, archive and import dealers, stores, guides and partner accounts",
    MANAGERS | {Role.OPERATOR},
)

# What a signed-in partner may do. Partner principals carry this one permission; every partner
# endpoint then limits the data to the partner's own dealer or store.
PARTNER_SELF = "channel.partner"
