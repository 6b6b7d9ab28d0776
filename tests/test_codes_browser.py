"""End to end in a real browser (same server and Chromium as `test_browser.py`): create a product in the
catalog console, request a batch of 20 codes, watch the progress bar finish (the server's in-process
worker generates the codes), download the links file and its zipped parts, look a code up, void two
codes after confirming, rotate the PIN key — with a screenshot of every page under `test-artifacts/`."""

from __future__ import annotations

import csv
import io
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from stdnum import ean

from tests.browser_support import click_nav
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


def _new_gtin() -> str:
    body = "690" + "".join(random.choices("0123456789", k=9))
    return body + ean.calc_check_digit(body)


def test_product_batch_progress_and_download(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    operator = credentials["operator"]
    gtin = _new_gtin()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                locale="zh-CN", viewport={"width": 1366, "height": 860}, device_scale_factor=1, accept_downloads=True
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled")

            page.goto(f"{base_url}/console/login")
            page.fill("input[name=email]", operator["email"])
            page.fill("input[name=password]", operator["password"])
            page.click("button[type=submit]")
            expect(page.locator(".page-title")).to_have_text("首页")

            # A product in the catalog console.
            click_nav(page, "/console/catalog/products")
            page.click("#new-product")
            page.fill("input[name=gtin]", gtin)
            page.fill("input[name=name]", "示例白酒 53%vol")
            page.fill("input[name=specification]", "500 ml")
            page.fill("input[name=items_per_case]", "6")
            page.click("button[type=submit].primary")
            expect(page.locator(".flash.ok")).to_have_text("产品 示例白酒 53%vol 已创建。")

            # Request 20 item codes; first a refused quantity.
            click_nav(page, "/console/codes/batches")
            expect(page.locator(".page-title")).to_have_text("码批次")
            shot("20-code-batches-empty")
            page.click("#request-codes")
            page.select_option("select[name=product_id]", label=f"示例白酒 53%vol 500 ml · {gtin}")
            page.fill("input[name=quantity]", "0")
            page.click("#submit-batch")
            expect(page.locator(".field-error")).to_have_text("请填写 1 到 10,000,000 之间的整数。")
            page.fill("input[name=quantity]", "20")
            page.fill("input[name=note]", "2 号线 试产")
            shot("21-request-codes")
            page.click("#submit-batch")
            expect(page).to_have_url(re.compile(r"/console/codes/batches/[0-9a-f-]{36}$"))
            batch_url = page.url
            batch_number = page.locator("#batch-facts dd code").first.inner_text()

            # The progress bar follows the in-process worker until the batch is generated.
            expect(page.locator("#progress-percent")).to_have_text("100%", timeout=30_000)
            expect(page.locator("#batch-live")).to_have_attribute("data-status", "generated")
            expect(page.locator("#state-counts")).to_contain_text("已生成")
            expect(page.locator("#state-counts .stat-value")).to_have_text("20")
            shot("22-code-batch-generated")

            # The links file, whole and zipped in parts, with the console session.
            with page.expect_download() as links_download:
                page.click("#download-links")
            links = Path(links_download.value.path()).read_text(encoding="utf-8")
            rows = list(csv.reader(io.StringIO(links)))
            assert rows[0] == ["index", "uri", "serial"]
            assert len(rows) == 21
            assert all(row[1] == f"{base_url}/01/0{gtin}/21/{row[2]}" for row in rows[1:])
            with page.expect_download() as zip_download:
                page.click("#download-zip button[type=submit]")
            with zipfile.ZipFile(zip_download.value.path()) as archive:
                [part] = archive.namelist()
                assert archive.read(part).decode().count("\r\n") == 21

            # Look one code up.
            serial = rows[3][2]
            click_nav(page, "/console/codes/lookup")
            page.fill("input[name=code]", rows[3][1])
            page.click("#lookup")
            expect(page.locator("#code-state")).to_have_text("已生成")
            expect(page.locator("#code-qr svg")).to_be_visible()
            expect(page.locator("h2 code.serial")).to_have_text(serial)
            shot("23-code-lookup")

            # The label sheet (opens in a new tab).
            with context.expect_page() as sheet_page:
                page.goto(batch_url)
                page.click("#label-sheet")
            sheet = sheet_page.value
            sheet.wait_for_load_state()
            expect(sheet.locator(".label")).to_have_count(20)
            sheet.screenshot(path=str(ARTIFACTS / "24-label-sheet.png"), full_page=True)
            sheet.close()

            # Void positions 3 to 4 after the confirmation step.
            page.goto(batch_url)
            page.fill("#void-form input[name=reason]", "2 号线一卷印错")
            page.fill("#void-form input[name=from_index]", "3")
            page.fill("#void-form input[name=to_index]", "4")
            page.click("#void-submit")
            expect(page.locator("#void-question")).to_contain_text("2 个码")
            shot("25-void-confirm")
            page.click("#confirm-void")
            expect(page.locator(".flash.ok")).to_have_text("已作废 2 个码；此后验证均不通过。")
            expect(page.locator("#state-counts")).to_contain_text("已作废")
            page.goto(f"{base_url}/console/codes/lookup?code={serial}")
            expect(page.locator("#code-state")).to_have_text("已作废")

            # Settings: rotate the PIN key after the browser's confirmation.
            click_nav(page, "/console/codes/settings")
            version = int(page.locator("#pin-key-version strong").inner_text())
            page.once("dialog", lambda dialog: dialog.accept())
            page.click("#rotate-pin-key")
            expect(page.locator("#pin-key-version strong")).to_have_text(str(version + 1))
            shot("26-code-settings")

            page.goto(f"{base_url}/console/codes/batches")
            expect(page.locator("#batches tbody tr").first).to_contain_text(batch_number)
            shot("27-code-batches")
            page.set_viewport_size({"width": 390, "height": 800})
            page.goto(batch_url)
            shot("28-code-batch-phone")
            page.set_viewport_size({"width": 1366, "height": 860})
            page.click(".topbar .lang a[hreflang=en]")
            expect(page.locator("#generation h2")).to_have_text("Generation")
            shot("29-code-batch-english")
            assert errors == [], errors
            context.close()
        finally:
            browser.close()
