"""End to end in a real browser (same server and Chromium as `test_browser.py`): an operator creates a
dealer with a territory, a store inside it and a store clerk's account in the console; the clerk signs
in on the partner H5 page (a wrong password first) and sees their store — with screenshots under
`test-artifacts/`."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.browser_support import click_nav
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


def test_dealer_store_and_partner_sign_in(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    operator = credentials["operator"]
    slug = credentials["tenant"]["slug"]
    suffix = uuid.uuid4().hex[:4].upper()
    clerk_phone = "1370000" + str(uuid.uuid4().int % 10_000).zfill(4)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 860})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled")

            page.goto(f"{base_url}/console/login")
            page.fill("input[name=email]", operator["email"])
            page.fill("input[name=password]", operator["password"])
            page.click("button[type=submit]")
            click_nav(page, "/console/channel/dealers")
            expect(page.locator(".page-title")).to_have_text("经销商")
            page.click("#new-dealer")
            page.fill("input[name=code]", f"GZ-{suffix}")
            page.fill("input[name=name]", "广州华南商贸")
            page.fill("input[name=region_codes]", "4401")
            page.click("button[type=submit].primary")
            expect(page.locator(".field-error")).to_have_text(
                "“4401”不是行政区划代码：请使用 6 位数字，例如 440300（深圳市）。"
            )
            page.fill("input[name=region_codes]", "440100")
            page.click("button[type=submit].primary")
            expect(page.locator(".flash.ok")).to_have_text("经销商 广州华南商贸 已创建。")
            expect(page.locator("#territory")).to_contain_text("广东省广州市")

            page.click("text=新建门店")
            page.fill("input[name=code]", f"S-{suffix}")
            page.fill("input[name=name]", "天河路店")
            page.fill("input[name=latitude]", "23.1291")
            page.fill("input[name=longitude]", "113.2644")
            page.click("button[type=submit].primary")
            expect(page.locator(".flash.ok")).to_have_text("门店 天河路店 已创建。")
            expect(page.locator("#store-region")).to_have_text("广东省广州市越秀区")
            page.fill("#new-partner input[name=display_name]", "店员小张")
            page.fill("#new-partner input[name=phone]", clerk_phone)
            page.fill("#new-partner input[name=password]", "clerk password 1")
            page.click("#new-partner button[type=submit]")
            expect(page.locator(".flash.ok")).to_contain_text("创建伙伴账号")
            shot("40-channel-store")

            page.goto(f"{base_url}/console/channel/map")
            expect(page.locator(f"svg.channel-map circle[data-store='S-{suffix}']")).to_have_count(1)
            shot("41-channel-map")

            clerk = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True)
            h5 = clerk.new_page()
            h5.on("pageerror", lambda exc: errors.append(str(exc)))
            h5.goto(f"{base_url}/h5/{slug}/partner")
            h5.fill("input[name=phone]", clerk_phone)
            h5.fill("input[name=password]", "not the password")
            h5.click("#sign-in")
            expect(h5.locator("#partner-status")).to_have_text("手机号或密码错误，或账号已停用。")
            h5.fill("input[name=password]", "clerk password 1")
            h5.click("#sign-in")
            expect(h5).to_have_url(re.compile(r"/partner/me$"))
            expect(h5.locator("#me-name")).to_have_text("店员小张")
            expect(h5.locator("#me-role")).to_have_text("门店店员")
            expect(h5.locator("#me-store")).to_contain_text("天河路店")
            expect(h5.locator("#me-dealer")).to_contain_text(f"GZ-{suffix}")
            h5.screenshot(path=str(ARTIFACTS / "42-partner-me.png"), full_page=True)
            h5.click("#sign-out")
            expect(h5).to_have_url(re.compile(r"/partner$"))
            assert errors == []
        finally:
            browser.close()
