"""What the scan page passes to the panels other modules add to it (see `zhongtai.kit.panels`)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from zhongtai.authenticity import verification
from zhongtai.authenticity.resolver import Resolved

SCAN_PAGE = "authenticity.scan_page"


@dataclass(frozen=True)
class PanelContext:
    """The scan page's request, the code it shows and the PIN verification's answer (None before it)."""

    request: Request
    resolved: Resolved
    answer: verification.Answer | None
