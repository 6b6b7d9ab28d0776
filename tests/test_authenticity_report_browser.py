"""A suspected fake reported from a phone and triaged in the console, in a real browser (same server and
Chromium as `test_browser.py`): the report form (province list from the offline geography, a photo),
the reference on the done page, then the operator moves the report new → investigating → confirmed
with a note, the code's scan history beside it — screenshots under `test-artifacts/`."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
)


def _photo() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (180, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_report_a_fake_and_triage_it(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    sample = credentials["sample_codes"]
    slug = credentials["tenant"]["slug"]
    operator = credentials["operator"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            phone = browser.new_context(
                locale="zh-CN",
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                user_agent=PHONE_UA,
            )
            page = phone.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def shot(target: Any, name: str) -> None:
                target.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled")

            page.goto(f"{base_url}/h5/{slug}/report?code={sample['item_serial']}")
            form = page.locator("#report-form")
            expect(form).to_be_visible(timeout=10_000)
            expect(form.locator("input[name=code]")).to_have_value(sample["item_serial"])
            options = form.locator("select[name=province_code] option")
            expect(options).to_have_count(35)  # "not stated" and the 34 provincial-level divisions
            expect(form.locator("select[name=province_code] option[value='150000']")).to_have_text("内蒙古自治区")
            page.fill("input[name=where_bought]", "幸福路 88 号 烟酒店")
            page.select_option("select[name=province_code]", "310000")
            page.fill("input[name=price]", "128.00")
            page.fill("textarea[name=description]", "瓶盖松动，标签印刷模糊")
            page.fill("input[name=phone]", "13800138000")
            page.set_input_files(
                "input[name=photos]", files=[{"name": "bottle.png", "mimeType": "image/png", "buffer": _photo()}]
            )
            shot(page, "70-report-form")
            page.click("#send-report")
            reference = page.locator("#report-reference")
            expect(reference).to_be_visible(timeout=10_000)
            ref = reference.inner_text().strip()
            assert ref
            shot(page, "71-report-done")
            assert errors == []

            desk = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
            console = desk.new_page()
            console.on("pageerror", lambda exc: errors.append(str(exc)))
            console.goto(f"{base_url}/console/login")
            console.fill("input[name=email]", operator["email"])
            console.fill("input[name=password]", operator["password"])
            console.click("button[type=submit]")
            console.goto(f"{base_url}/console/authenticity/reports?status=new")
            console.click(f"a:text('{ref}')")
            expect(console.locator("#report-status")).to_have_text("New", timeout=10_000)
            expect(console.locator("#report-code")).to_contain_text(sample["item_serial"])
            expect(console.locator("#report-phone")).not_to_contain_text("13800138000")  # masked on screen
            expect(console.locator("#report-photos img")).to_have_count(1)
            shot(console, "72-report-console-new")
            console.click("#to-investigating")
            expect(console.locator("#report-status")).to_have_text("Investigating", timeout=10_000)
            console.fill("textarea[name=note]", "Bought a second bottle from the shop: the seal is fake.")
            console.click("#to-confirmed")
            expect(console.locator("#report-status")).to_have_text("Confirmed fake", timeout=10_000)
            expect(console.locator("#report-note")).to_contain_text("the seal is fake")
            shot(console, "73-report-console-confirmed")
            assert errors == []
        finally:
            browser.close()
