"""The console home of the demo brand as `make demo` makes it (a generated month): every module's
section with its figures and its chart drawn by ECharts, on a laptop and a phone, in Chinese and
English; a figure opens its list; the menu's areas fold. Screenshots under `test-artifacts/`."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, living_demo_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


def test_home_of_a_living_brand(living_demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    base_url, credentials = living_demo_server
    month = credentials["month"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 860})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base_url}/console/login")
            page.fill("input[name=email]", credentials["operator"]["email"])
            page.fill("input[name=password]", credentials["operator"]["password"])
            page.click("button[type=submit]")
            expect(page.locator(".page-title")).to_have_text("首页")

            sections = page.locator("section.home-section")
            expect(sections).to_have_count(5)
            expect(page.locator("#home-authenticity h2")).to_have_text("防伪验真")
            verifications = page.locator("#home-authenticity [data-figure=Verifications] [data-period]")
            assert int(verifications.get_attribute("data-period") or 0) > 0
            diversion = page.locator("#home-channel [data-figure='Diversion alerts'] [data-period]")
            assert 0 < int(diversion.get_attribute("data-period") or 0) <= month["diversion_alerts"]
            pickups = page.locator("#home-sales [data-figure=Pickups] [data-period]")
            assert int(pickups.get_attribute("data-period") or 0) == month["pickups"] > 0
            # Each chart drawn (ECharts' SVG renderer), one line per series.
            for key in ("authenticity", "rewards", "channel", "sales", "members"):
                expect(page.locator(f"#home-{key} .home-chart svg")).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "40-home-laptop.png"), full_page=True, animations="disabled")
            page.set_viewport_size({"width": 390, "height": 844})
            expect(page.locator("#home-members .home-chart svg")).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "41-home-phone.png"), full_page=True, animations="disabled")
            page.set_viewport_size({"width": 1366, "height": 860})

            # English.
            page.click(".topbar .lang a[hreflang=en]")
            expect(page.locator("#home-authenticity h2")).to_have_text("Authenticity")
            expect(page.locator("#home-rewards [data-figure='Rewards paid'] .tile-note")).to_contain_text("budget left")
            page.screenshot(path=str(ARTIFACTS / "42-home-english.png"), full_page=True, animations="disabled")

            # A figure opens its list; that page's area of the menu is open, the others folded.
            page.click("#home-channel [data-figure='Open diversion alerts']")
            expect(page).to_have_url(re.compile(r"/console/channel/diversion\?status=open$"))
            expect(page.locator("details.nav-group[data-group=channel]")).to_have_attribute("open", "")
            expect(page.locator("details.nav-group[open]")).to_have_count(1)
            assert errors == [], errors
            context.close()
        finally:
            browser.close()
