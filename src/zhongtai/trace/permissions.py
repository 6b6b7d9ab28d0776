"""Permissions of the EPCIS repository: production lines and integrations capture, everyone reads."""

from __future__ import annotations

from zhongtai.core.permissions import ALL_ROLES, MANAGERS, Role, register_permission

TRACE_CAPTURE = register_permission(
    "trace.capture", "Capture EPCIS events (production lines, WMS, ERP)", MANAGERS | {Role.OPERATOR}
)
TRACE_READ = register_permission("trace.read", "Query EPCIS events and capture jobs", ALL_ROLES)
