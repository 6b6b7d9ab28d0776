"""Permissions of tags, segments and lifecycle."""

from __future__ import annotations

from zhongtai.core.permissions import MANAGERS, Role, register_permission

SEGMENTS_READ = register_permission(
    "members.segments.read",
    "See segments, tags, lifecycle stages and member facts (names masked)",
    MANAGERS | {Role.OPERATOR, Role.AUDITOR},
)
SEGMENTS_WRITE = register_permission(
    "members.segments",
    "Build and refresh segments, create tags, tag members, set lifecycle thresholds",
    MANAGERS | {Role.OPERATOR},
)
SEGMENTS_EXPORT = register_permission("members.segments.export", "Export the member ids of a segment as CSV", MANAGERS)
