"""Shared steps of the browser tests."""

from __future__ import annotations

from typing import Any


def click_nav(page: Any, href: str) -> None:
    """Open a console page from the menu as a person does: unfold its area when it is folded, then click."""
    link = page.locator(f"a.nav-item[href='{href}']")
    if not link.is_visible():
        page.locator(f"details.nav-group:has(a.nav-item[href='{href}']) > summary").click()
    link.click()
