"""The consumer's scan end to end in a real browser on a phone-sized screen (same server and Chromium as
`test_browser.py`): open the demo bottle's Digital Link, see product, lot and the verified trace, enter
the hidden PIN and read "genuine", reload and verify again to read "verified before" with the city of
the first check — screenshots under `test-artifacts/`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
)
SHANGHAI = {"latitude": 31.2304, "longitude": 121.4737, "accuracy": 30}


def test_scan_verify_and_verify_again(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    sample = credentials["sample_codes"]
    assert sample["item_uri"].startswith(base_url + "/01/")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                locale="zh-CN",
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                user_agent=PHONE_UA,
                geolocation=SHANGHAI,
                permissions=["geolocation"],
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled")

            page.goto(sample["item_uri"])
            expect(page.locator("h1")).to_have_text("示例酱香酒 53%vol 500ml", timeout=10_000)
            expect(page.locator(".scan-serial")).to_have_text(sample["item_serial"])
            # The trace steps, each checked in the browser: verified, or pending until a signed head covers it.
            steps = page.locator(".trace-step")
            expect(steps.first).to_be_visible(timeout=15_000)
            expect(page.locator('.trace-step[data-state="checking"]')).to_have_count(0, timeout=15_000)
            expect(page.locator('.trace-step[data-state="failed"]')).to_have_count(0)
            shot("60-scan-page")

            page.fill("input[name=pin]", sample["item_pin"])
            page.click("#pin-form button[type=submit]")
            verdict = page.locator("#verdict")
            expect(verdict).to_have_attribute("data-verdict", "genuine", timeout=10_000)
            expect(verdict.locator(".scan-verdict-title")).to_have_text("正品")
            expect(page.locator('[data-part="verifications"]')).to_have_text("1")
            shot("61-scan-genuine")

            page.reload()
            expect(page.locator(".scan-facts")).to_contain_text("上海市")
            page.fill("input[name=pin]", sample["item_pin"])
            page.click("#pin-form button[type=submit]")
            expect(verdict).to_have_attribute("data-verdict", "verified_before", timeout=10_000)
            expect(verdict.locator(".scan-verdict-title")).to_have_text("正品 · 此前已验证")
            expect(verdict).to_contain_text("上海市")
            shot("62-scan-verified-before")

            page.fill("input[name=pin]", "00000000" if sample["item_pin"] != "00000000" else "11111111")
            page.click("#pin-form button[type=submit]")
            expect(verdict).to_have_attribute("data-verdict", "wrong_pin", timeout=10_000)
            shot("63-scan-wrong-pin")

            page.goto(sample["item_uri"] + "?lang=en")
            expect(page.locator("#pin-form button[type=submit]")).to_have_text("Verify")
            shot("64-scan-english")
            assert errors == []
        finally:
            browser.close()
