"""The member platform in a real browser: a consumer checks the demo bottle on a phone, signs in, and
finds the bottle, the points it earned and their tier in the member centre; the operator finds them by
phone, opens the 360 view, merges the suggested duplicate and undoes the merge. Screenshots under
`test-artifacts/`."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

PHONE = "13900139000"
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
)


def _consumer(browser: Any, base_url: str, credentials: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    slug = credentials["tenant"]["slug"]
    sample = credentials["sample_codes"]
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, user_agent=PHONE_UA
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(sample["item_uri"])
    page.fill("input[name=pin]", sample["item_pin"])
    page.click("#pin-form button[type=submit]")
    expect(page.locator("#verdict")).to_have_attribute("data-verdict", "genuine", timeout=10_000)

    page.goto(f"{base_url}/h5/{slug}/login")
    page.fill("input[name=phone]", PHONE)
    page.click("#send-code")
    expect(page.locator("#otp-status")).to_contain_text("验证码已发送")
    inbox = context.new_page()
    inbox.goto(f"{base_url}/h5/{slug}/dev/sms")
    found = re.search(r"验证码 (\d{6})", inbox.locator(".messages").inner_text())
    assert found, inbox.content()
    inbox.close()
    page.fill("input[name=code]", found.group(1))
    page.click("#sign-in")
    expect(page.locator("#signed-in")).to_be_visible()
    page.click("#to-member-centre")

    expect(page).to_have_url(re.compile(rf"/h5/{slug}/me$"))
    expect(page.locator("#claim-status")).to_contain_text("+50 积分", timeout=10_000)
    expect(page.locator("#points-balance")).to_have_text("50", timeout=10_000)
    expect(page.locator("#tier-name")).to_have_text("金卡会员")
    expect(page.locator("#tier-benefits")).to_contain_text("生日礼")
    expect(page.locator("#bottles")).to_contain_text("示例酱香酒")
    expect(page.locator("#points-history")).to_contain_text("+50")
    page.click("#sign-in-today")
    expect(page.locator("#sign-in-status")).to_contain_text("连续第 1 天")
    expect(page.locator("#points-balance")).to_have_text("55")
    page.screenshot(path=str(ARTIFACTS / "70-member-centre.png"), full_page=True, animations="disabled")
    assert errors == []
    context.close()


def _operator(browser: Any, base_url: str, credentials: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    operator = credentials["operator"]
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base_url}/console/login")
    page.fill("input[name=email]", operator["email"])
    page.fill("input[name=password]", operator["password"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/console$"))

    page.goto(f"{base_url}/console/members")
    page.fill("#member-search input[name=phone]", PHONE)
    page.click("#member-search button[type=submit]")
    expect(page.locator("#members-total")).to_have_text("1")
    page.locator("#members-table a").first.click()
    expect(page.locator("#member-points")).to_have_text("55")
    expect(page.locator("#member-tier")).to_contain_text("金卡会员")
    expect(page.locator("#member-identifiers")).to_contain_text("139****9000")
    expect(page.locator("#member-scans")).to_contain_text(credentials["sample_codes"]["item_serial"])
    assert PHONE not in page.content()
    page.screenshot(path=str(ARTIFACTS / "71-member-360.png"), full_page=True, animations="disabled")

    page.goto(f"{base_url}/console/members/duplicates")
    suggestion = page.locator("section.suggestion").first
    expect(suggestion).to_contain_text("王**")
    page.screenshot(path=str(ARTIFACTS / "72-duplicate-review.png"), full_page=True, animations="disabled")
    suggestion.locator("input[name=reason]").fill("同一会员卡持有人，天猫账号绑定同一地址")
    suggestion.locator("button[value=merge]").click()
    expect(page.locator(".flash")).to_contain_text("两位会员已合并")
    expect(page.locator("#member-merges")).to_contain_text("同一会员卡持有人")
    page.locator("#member-merges input[name=reason]").fill("核实后为两个人")
    page.locator("#member-merges button[type=submit]").click()
    expect(page.locator(".flash")).to_contain_text("已撤销合并")
    expect(page.locator("#member-status")).to_have_text("有效")
    page.screenshot(path=str(ARTIFACTS / "73-member-unmerged.png"), full_page=True, animations="disabled")

    page.goto(f"{base_url}/console/members/segments")
    expect(page.locator("#lifecycle-funnel svg")).to_be_visible(timeout=10_000)
    page.fill("#segment-expression", 'city == "贵阳"')
    expect(page.locator("#preview-count")).to_have_text("2", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "74-segments.png"), full_page=True, animations="disabled")
    assert errors == []
    context.close()


def test_member_journeys(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            _consumer(browser, base_url, credentials)
            _operator(browser, base_url, credentials)
        finally:
            browser.close()
