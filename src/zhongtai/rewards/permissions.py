"""Permissions of rewards. Everyone in the brand may look; operators run rules, pools and the review
queue; owners and administrators fund pools, change risk settings and approve payout batches."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

REWARDS_READ = register_permission("rewards.read", "See reward rules, fee pools, rewards and payouts", ALL_ROLES)
REWARDS_MANAGE = register_permission(
    "rewards.manage", "Create and change reward rules and fee pools", MANAGERS | {Role.OPERATOR}
)
REWARDS_FUND = register_permission(
    "rewards.fund", "Fund fee pools from the brand's budget and change risk settings", MANAGERS
)
REWARDS_REVIEW = register_permission(
    "rewards.review", "Release or reject rewards held for review", MANAGERS | {Role.OPERATOR}
)
REWARDS_PAYOUT = register_permission(
    "rewards.payout", "Approve payout batches, export them and import the provider's results", MANAGERS
)
