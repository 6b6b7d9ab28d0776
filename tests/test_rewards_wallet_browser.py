"""The consumer's wallet in a real browser on a phone screen (same server and Chromium as
`test_browser.py`): with a funded pool and a consumer_open rule set up through the API with the demo's
brand token, the demo bottle is opened without signing in and its red packet shows on the scan page (the
bottle's own specification under its name, not its case's); the consumer signs in, follows the packet's
link to the wallet, which claims the phone's packet on load and lists it with its bottle; a withdrawal
above the brand's minimum is requested there. Screenshots under `test-artifacts/`."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture
from tests.test_rewards_browser import PHONE_UA, SHANGHAI, Brand

pytestmark = pytest.mark.browser

PACKET_FEN = 1288
MIN_WITHDRAWAL_FEN = 1000
PHONE = "13900139011"


def _reward_the_first_open(brand: Brand) -> None:
    """A funded pool, a fixed red packet for the consumer who opens a bottle, a 10-yuan minimum."""
    suffix = uuid.uuid4().hex[:4].upper()
    pool = brand.call("POST", "/api/v1/rewards/pools", 201, json={"code": f"WALLET-{suffix}", "name": "开瓶红包"})
    brand.call(
        "POST",
        f"/api/v1/rewards/pools/{pool['id']}/fund",
        headers={**brand.headers, "Idempotency-Key": f"fund-{suffix}-1"},
        json={"amount_fen": 100_000},
    )
    brand.call(
        "POST",
        "/api/v1/rewards/rules",
        201,
        json={
            "name": "开瓶红包 consumer",
            "event_kind": "consumer_open",
            "role": "consumer",
            "pool_id": pool["id"],
            "valid_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "mode": "fixed",
            "amount_fen": PACKET_FEN,
        },
    )
    brand.call("PATCH", "/api/v1/rewards/settings", json={"min_withdrawal_fen": MIN_WITHDRAWAL_FEN})


def test_a_red_packet_is_claimed_into_the_wallet_and_withdrawn(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import Page, expect, sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    sample = credentials["sample_codes"]
    with httpx.Client(base_url=base_url, timeout=30) as http:
        brand = Brand(http, credentials)
        _reward_the_first_open(brand)
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
                    geolocation=SHANGHAI,
                    permissions=["geolocation"],
                )
                page = phone.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))

                def shot(target: Page, name: str) -> None:
                    target.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled")

                # Anonymous: the bottle's page shows the bottle's own specification; opening it pays.
                page.goto(sample["item_uri"])
                expect(page.locator(".scan-hero .muted").last).to_have_text("500ml")
                assert "× 6" not in page.locator(".scan-hero").inner_text()
                page.fill("input[name=pin]", sample["item_pin"])
                page.click("#pin-form button[type=submit]")
                expect(page.locator("#verdict")).to_have_attribute("data-verdict", "genuine", timeout=15_000)
                packet = page.locator("#red-packet")
                expect(packet).to_be_visible(timeout=15_000)
                expect(packet.locator("p").first).to_have_text("恭喜获得 12.88 元红包。")
                expect(packet).to_contain_text("在本机登录即可把红包存入钱包并提现。")
                packet.scroll_into_view_if_needed()
                shot(page, "70-wallet-red-packet")

                # Sign in on this phone (the sandbox SMS inbox of the development server).
                packet.get_by_role("link", name="登录").click()
                expect(page).to_have_url(re.compile(rf"/h5/{brand.slug}/login$"))
                page.fill("input[name=phone]", PHONE)
                page.click("#send-code")
                expect(page.locator("#otp-status")).to_contain_text("验证码已发送")
                inbox = phone.new_page()
                inbox.goto(f"{base_url}/h5/{brand.slug}/dev/sms")
                found = re.search(r"验证码 (\d{6})", inbox.locator(".messages").inner_text())
                assert found, inbox.content()
                inbox.close()
                page.fill("input[name=code]", found.group(1))
                page.click("#sign-in")
                expect(page.locator("#signed-in")).to_be_visible()

                # Back to the bottle, and through the packet's link to the wallet: claimed on load.
                page.goto(sample["item_uri"])
                page.locator("#red-packet-wallet").click()
                expect(page).to_have_url(re.compile(rf"/h5/{brand.slug}/wallet$"))
                expect(page.locator("h1")).to_have_text("我的钱包")
                expect(page.locator("#claim-status")).to_have_text(
                    "本机收到的 1 个红包已存入你的钱包：12.88 元。", timeout=10_000
                )
                expect(page.locator("#wallet-balance")).to_have_text("¥12.88")
                expect(page.locator("#wallet-held")).to_have_text("¥0.00")
                listed = page.locator("#wallet-packets li")
                expect(listed).to_have_count(1)
                expect(listed.first).to_contain_text("¥12.88 · 已支付")
                expect(listed.first).to_contain_text("示例酱香酒 53%vol 500ml")
                expect(page.locator("#withdraw-min")).to_have_text("≥ ¥10.00")
                shot(page, "71-wallet-claimed")

                # A withdrawal above the brand's minimum, through the payout flow.
                page.fill("input[name=amount]", "9.99")
                page.click("#withdraw")
                expect(page.locator("#wallet-status")).to_have_text("余额满 10.00 元即可提现。")
                page.fill("input[name=amount]", "10")
                page.fill("input[name=payee_name]", "张三")
                page.fill("input[name=payee_account]", "6222020200001234")
                page.click("#withdraw")
                expect(page.locator("#wallet-status")).to_contain_text("10.00", timeout=10_000)
                expect(page.locator("#wallet-balance")).to_have_text("¥2.88")
                expect(page.locator("#wallet-withdrawing")).to_have_text("¥10.00")
                expect(page.locator("#wallet-withdrawals li").first).to_contain_text("****1234")
                expect(page.locator("#withdraw-min")).to_have_text("余额满 10.00 元即可提现。")
                shot(page, "72-wallet-withdrawn")

                # The member centre links to the wallet too.
                page.goto(f"{base_url}/h5/{brand.slug}/me")
                expect(page.locator("#to-wallet")).to_have_attribute("href", f"/h5/{brand.slug}/wallet")
                assert errors == []
            finally:
                browser.close()
        withdrawals = brand.call("GET", "/api/v1/rewards/withdrawals", params={"per_page": 100})
        assert [(w["amount_fen"], w["status"]) for w in withdrawals["items"]] == [(1000, "requested")]
