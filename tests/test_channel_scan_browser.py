"""End to end in a real browser on a phone screen (same server and Chromium as `test_browser.py`): the
brand sets up a dealer and a store, the dealer receives the demo's packed case and ships it; the store
clerk signs in on the partner H5 page, opens the scanning app, types a wrong code (refused, with the
reason), then points the camera at the case (Chromium's fake camera; the page reads codes through
`BarcodeDetector`, which headless Chromium lacks, so the test supplies one that sees the case's label):
recorded, six bottles, and the stock; the same case typed again is answered as before — with
screenshots under `test-artifacts/`."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser
API = "/api/v1/channel"


def _setup(base_url: str, credentials: dict[str, Any], clerk_phone: str) -> None:
    """Dealer, store and two partner accounts through the API; the dealer receives and ships the case."""
    slug = credentials["tenant"]["slug"]
    suffix = uuid.uuid4().hex[:4].upper()
    dealer_phone = "1360000" + str(uuid.uuid4().int % 10_000).zfill(4)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        brand = {"authorization": f"Bearer {credentials['api_token']['token']}"}

        def post(path: str, body: dict[str, Any], headers: dict[str, str], status: int = 201) -> dict[str, Any]:
            response = http.post(f"{API}{path}", json=body, headers=headers)
            assert response.status_code == status, response.text
            result: dict[str, Any] = response.json()
            return result

        dealer = post("/dealers", {"code": f"GZ-{suffix}", "name": "广州华南商贸", "region_codes": ["440100"]}, brand)
        store = post(
            "/stores",
            {
                "code": f"S-{suffix}",
                "name": "天河路店",
                "dealer_code": dealer["code"],
                "latitude": 23.1291,
                "longitude": 113.2644,
            },
            brand,
        )
        for role, target, phone, name in (
            ("dealer", dealer["id"], dealer_phone, "仓管老王"),
            ("store", store["id"], clerk_phone, "店员小张"),
        ):
            post(
                "/partners",
                {"role": role, "target_id": target, "phone": phone, "display_name": name, "password": "partner pass 1"},
                brand,
            )
        signed = post(f"/public/{slug}/partner/sessions", {"phone": dealer_phone, "password": "partner pass 1"}, {})
        staff = {"authorization": f"Bearer {signed['token']}"}
        case = credentials["sample_codes"]["packed_case_sscc"]
        post("/partner/scans", {"action": "dealer_receive", "codes": [case]}, staff, 200)
        post("/partner/scans", {"action": "ship", "codes": [case], "to_store_id": store["id"]}, staff, 200)


def test_store_clerk_receives_a_case_on_a_phone(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    slug = credentials["tenant"]["slug"]
    case = credentials["sample_codes"]["packed_case_sscc"]
    clerk_phone = "1370000" + str(uuid.uuid4().int % 10_000).zfill(4)
    _setup(base_url, credentials, clerk_phone)

    camera_args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *camera_args])
        try:
            phone = browser.new_context(
                locale="zh-CN",
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                permissions=["camera"],
            )
            # What a phone's BarcodeDetector would read off the case's label, once the camera runs.
            phone.add_init_script(
                "window.BarcodeDetector = class { constructor(options) { this.formats = options.formats; }"
                " detect(video) { return Promise.resolve(video.readyState >= 2 && !video.paused"
                f" ? [{{ rawValue: 'https://demo.example/00/{case}', format: 'qr_code' }}] : []); }} }};"
            )
            h5 = phone.new_page()
            errors: list[str] = []
            h5.on("pageerror", lambda exc: errors.append(str(exc)))
            h5.goto(f"{base_url}/h5/{slug}/partner")
            h5.fill("input[name=phone]", clerk_phone)
            h5.fill("input[name=password]", "partner pass 1")
            h5.click("#sign-in")
            expect(h5).to_have_url(re.compile(r"/partner/me$"))
            h5.click("#go-scan")
            expect(h5).to_have_url(re.compile(r"/partner/scan$"))
            expect(h5.locator("#scan-who")).to_have_text("店员小张 · 天河路店")
            # A clerk's steps only: receiving is chosen, the dealer's are hidden.
            expect(h5.locator("input[value=store_receive]")).to_be_checked()
            expect(h5.locator("label[data-roles=dealer]").first).to_be_hidden()

            h5.fill("#scan-code", "ZZZZZZZZZZZZZZZZ")
            h5.click("#scan-submit")
            refused = h5.locator("#results li.refused").first
            expect(refused).to_contain_text("被拒绝")
            expect(refused).to_contain_text("ZZZZZZZZZZZZZZZZ: 码不存在。")

            h5.click("#camera-start")
            expect(h5.locator("#camera")).to_be_visible()
            accepted = h5.locator("#results li.accepted").first
            expect(accepted).to_contain_text("已登记")
            expect(accepted).to_contain_text(f"{case} · 6 件")
            expect(h5.locator("#stock-rows tr")).to_have_count(1)
            expect(h5.locator("#stock-rows td").nth(3)).to_have_text("6")
            h5.screenshot(path=str(ARTIFACTS / "45-partner-scan-received.png"), full_page=True)
            h5.click("#camera-stop")
            expect(h5.locator("#camera")).to_be_hidden()
            # The camera saw the label for a while: one scan, one answer (a code read twice in ten
            # seconds counts once, and a later read of it is a replay).
            expect(h5.locator("#results li.accepted").filter(has_text="已登记 ")).to_have_count(1)

            # The same case again: recorded once, answered the same.
            h5.fill("#scan-code", case)
            h5.click("#scan-submit")
            expect(h5.locator("#results li.accepted").first).to_contain_text("已登记过")
            expect(h5.locator("#stock-rows td").nth(3)).to_have_text("6")

            # Opening the case.
            h5.check("input[value=case_open]")
            h5.fill("#scan-code", case)
            h5.click("#scan-submit")
            expect(h5.locator("#results li.accepted").first).to_contain_text(f"{case} · 6 件")
            h5.screenshot(path=str(ARTIFACTS / "46-partner-scan-opened.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
