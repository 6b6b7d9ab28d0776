"""A consumer opens a bottle and sees the red packet, end to end in a real browser on a phone screen (same
server and Chromium as `test_browser.py`). Through the HTTP API with the demo's brand token: a funded fee
pool, consumer_open rules (a random red packet for the consumer, fixed amounts for the store and the
dealer), a dealer that receives the demo's packed case and ships it to a store whose clerk receives it.
On the phone: a bottle of that case shows no reward box before it is opened; the hidden PIN answers
"genuine" in place and the red packet appears beside it (and stays on a reload) with the amount the
rewards API says was drawn; the store and the dealer were paid for the same open. Verified again: "verified before",
the same packet and still one consumer reward for the code. The English page shows the box in English.
Without JavaScript (the plain form POST) a second bottle's page answers with the verdict and its red
packet at once — screenshots under `test-artifacts/`."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture

if TYPE_CHECKING:
    from playwright.sync_api import Geolocation

pytestmark = pytest.mark.browser

PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
)
SHANGHAI: Geolocation = {"latitude": 31.2304, "longitude": 121.4737, "accuracy": 30}
PARTNER_PASSWORD = "partner pass 1"
CONSUMER_TIERS = (188, 888)  # the consumer's random red packet, in fen (1.88 or 8.88 yuan)
STORE_FEN, DEALER_FEN = 300, 120
FUNDED_FEN = 100_000


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


class Brand:
    """The brand's side over HTTP: setup and reading the rewards back."""

    def __init__(self, http: httpx.Client, credentials: dict[str, Any]) -> None:
        self.http = http
        self.slug: str = credentials["tenant"]["slug"]
        self.headers = {"authorization": f"Bearer {credentials['api_token']['token']}"}

    def call(self, method: str, path: str, status: int = 200, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        response = self.http.request(method, path, headers=headers if headers is not None else self.headers, **kw)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else response

    def partner(self, phone: str) -> dict[str, str]:
        signed = self.call(
            "POST",
            f"/api/v1/channel/public/{self.slug}/partner/sessions",
            201,
            headers={},
            json={"phone": phone, "password": PARTNER_PASSWORD},
        )
        return {"authorization": f"Bearer {signed['token']}"}

    def grants(self, **query: Any) -> list[dict[str, Any]]:
        page = self.call("GET", "/api/v1/rewards/grants", params={"per_page": 100, **query})
        assert page["total"] == len(page["items"])
        items: list[dict[str, Any]] = page["items"]
        return items


def _setup(brand: Brand, case: str) -> dict[str, Any]:
    """Pool, rules, dealer, store and their partner accounts; the case goes dealer → store."""
    suffix = uuid.uuid4().hex[:4].upper()
    dealer_phone, clerk_phone = (p + str(uuid.uuid4().int % 10_000).zfill(4) for p in ("1360000", "1370000"))
    pool = brand.call("POST", "/api/v1/rewards/pools", 201, json={"code": f"OPEN-{suffix}", "name": "开瓶红包"})
    funded = brand.call(
        "POST",
        f"/api/v1/rewards/pools/{pool['id']}/fund",
        headers={**brand.headers, "Idempotency-Key": f"fund-{suffix}-1"},
        json={"amount_fen": FUNDED_FEN},
    )
    assert funded["balance_fen"] == FUNDED_FEN
    period = {"valid_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
    tiers = {"type": "tiers", "tiers": [{"amount_fen": fen, "weight": 1} for fen in CONSUMER_TIERS]}
    for role, amounts in (
        ("consumer", {"mode": "random", "distribution": tiers}),
        ("store", {"mode": "fixed", "amount_fen": STORE_FEN}),
        ("dealer", {"mode": "fixed", "amount_fen": DEALER_FEN}),
    ):
        rule = brand.call(
            "POST",
            "/api/v1/rewards/rules",
            201,
            json={
                "name": f"开瓶 {role}",
                "event_kind": "consumer_open",
                "role": role,
                "pool_id": pool["id"],
                **period,
                **amounts,
            },
        )
        assert (rule["role"], rule["is_active"]) == (role, True)

    dealer = brand.call(
        "POST",
        "/api/v1/channel/dealers",
        201,
        json={"code": f"GZ-{suffix}", "name": "广州华南商贸", "region_codes": ["440100"]},
    )
    store = brand.call(
        "POST",
        "/api/v1/channel/stores",
        201,
        json={
            "code": f"S-{suffix}",
            "name": "天河路店",
            "dealer_code": dealer["code"],
            "latitude": 23.1291,
            "longitude": 113.2644,
        },
    )
    for role, target, phone, name in (
        ("dealer", dealer["id"], dealer_phone, "仓管老王"),
        ("store", store["id"], clerk_phone, "店员小张"),
    ):
        brand.call(
            "POST",
            "/api/v1/channel/partners",
            201,
            json={
                "role": role,
                "target_id": target,
                "phone": phone,
                "display_name": name,
                "password": PARTNER_PASSWORD,
            },
        )
    dealer_staff, clerk = brand.partner(dealer_phone), brand.partner(clerk_phone)
    scans = "/api/v1/channel/partner/scans"
    brand.call("POST", scans, headers=dealer_staff, json={"action": "dealer_receive", "codes": [case]})
    shipped = {"action": "ship", "codes": [case], "to_store_id": store["id"]}
    brand.call("POST", scans, headers=dealer_staff, json=shipped)
    brand.call("POST", scans, headers=clerk, json={"action": "store_receive", "codes": [case]})
    return {"pool": pool, "dealer": dealer, "store": store, "dealer_staff": dealer_staff, "clerk": clerk}


def _bottles(brand: Brand, case: str) -> list[dict[str, str]]:
    """The case's bottles: Digital Link and hidden PIN (from the scratch-off printer's PIN file)."""
    tree = brand.call("GET", "/api/v1/codes/tree", params={"code": case})
    serials = [child["serial"] for child in tree["children"]]
    assert len(serials) == 6
    looked = [brand.call("GET", "/api/v1/codes/lookup", params={"code": serial}) for serial in serials[:2]]
    [batch_id] = {view["batch_id"] for view in looked}
    exported = brand.call("GET", f"/api/v1/codes/batches/{batch_id}/export", params={"kind": "pins"})
    pins = {row["serial"]: row["pin"] for row in csv.DictReader(io.StringIO(exported.text))}
    return [{"serial": view["serial"], "uri": view["uri"], "pin": pins[view["serial"]]} for view in looked]


def test_a_consumer_opens_a_bottle_and_sees_the_red_packet(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import Page, expect, sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    case = credentials["sample_codes"]["packed_case_sscc"]

    with httpx.Client(base_url=base_url, timeout=30) as http:
        brand = Brand(http, credentials)
        world = _setup(brand, case)
        bottle, second = _bottles(brand, case)
        assert bottle["uri"].startswith(f"{base_url}/01/")
        assert brand.grants() == []  # the channel steps earn nothing: only consumer_open has rules
        store_party, dealer_party = f"store:{world['store']['id']}", f"dealer:{world['dealer']['id']}"

        def opened(code_id: int) -> dict[str, dict[str, Any]]:
            """The rewards of one code's consumer open, by role (each role at most once)."""
            rows = brand.grants(code_id=code_id)
            assert {row["event_kind"] for row in rows} == {"consumer_open"}
            by_role = {row["role"]: row for row in rows}
            assert len(by_role) == len(rows)
            return by_role

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

                packet = page.locator("#red-packet")
                verdict = page.locator("#verdict")

                # Before the bottle is opened: the page, and no reward box.
                page.goto(bottle["uri"])
                expect(page.locator("h1")).to_have_text("示例酱香酒 53%vol 500ml")
                expect(page.locator(".scan-serial")).to_have_text(bottle["serial"])
                expect(page.locator("#pin-form button[type=submit]")).to_have_text("验证")
                expect(packet).to_have_count(0)

                # The consumer opens it: the hidden PIN, verified in place by scan.js.
                page.fill("input[name=pin]", bottle["pin"])
                page.click("#pin-form button[type=submit]")
                expect(verdict).to_have_attribute("data-verdict", "genuine", timeout=15_000)
                expect(verdict.locator(".scan-verdict-title")).to_have_text("正品")
                expect(page.locator('[data-part="verifications"]')).to_have_text("1")
                shot(page, "60-reward-genuine")

                # What the open earned, read back through the rewards API: one reward per role.
                [granted] = {row["code_id"] for row in brand.grants()}
                first = opened(granted)
                assert sorted(first) == ["consumer", "dealer", "store"]
                consumer = first["consumer"]
                assert consumer["status"] == "paid"
                assert consumer["amount_fen"] in CONSUMER_TIERS
                assert consumer["party"].startswith("device:")  # not signed in: this phone's packet
                assert (first["store"]["party"], first["store"]["amount_fen"], first["store"]["status"]) == (
                    store_party,
                    STORE_FEN,
                    "paid",
                )
                assert (first["dealer"]["party"], first["dealer"]["amount_fen"], first["dealer"]["status"]) == (
                    dealer_party,
                    DEALER_FEN,
                    "paid",
                )
                amount = _yuan(consumer["amount_fen"])

                # The red packet appears in place: after a first genuine check scan.js fetches the
                # page's panels again (`?part=panels`) — no reload.
                expect(packet).to_be_visible()
                expect(page.locator('[data-part="verifications"]')).to_have_text("1")
                expect(packet.locator("h2")).to_have_text("🧧 红包")
                expect(packet.locator("p").first).to_have_text(f"恭喜获得 {amount} 元红包。")
                sign_in = packet.get_by_role("link", name="登录")
                expect(sign_in).to_have_attribute("href", f"/h5/{brand.slug}/login")
                expect(packet).to_contain_text("在本机登录即可把红包存入钱包并提现。")
                packet.scroll_into_view_if_needed()
                shot(page, "60-reward-red-packet")
                page.reload()  # and it stays: the page renders it itself on the next load
                expect(packet).to_be_visible()
                expect(packet.locator("p").first).to_have_text(f"恭喜获得 {amount} 元红包。")

                # Verified again: "verified before", the same packet, no second reward.
                page.fill("input[name=pin]", bottle["pin"])
                page.click("#pin-form button[type=submit]")
                expect(verdict).to_have_attribute("data-verdict", "verified_before", timeout=15_000)
                expect(verdict.locator(".scan-verdict-title")).to_have_text("正品 · 此前已验证")
                expect(verdict).to_contain_text("上海市")
                expect(page.locator('[data-part="verifications"]')).to_have_text("2")
                page.reload()
                expect(page.locator('[data-part="verifications"]')).to_have_text("2")
                expect(packet).to_have_count(1)
                expect(packet.locator("p").first).to_have_text(f"恭喜获得 {amount} 元红包。")
                shot(page, "60-reward-verified-before")
                assert [row["role"] for row in brand.grants(code_id=granted)].count("consumer") == 1
                assert opened(granted) == first
                assert len(brand.grants()) == 3

                # The same box in English.
                page.click(".scan-lang a[hreflang=en]")
                expect(page.locator("html")).to_have_attribute("lang", "en")
                expect(page.locator("#pin-form button[type=submit]")).to_have_text("Verify")
                expect(packet.locator("h2")).to_have_text("🧧 Red packet")
                expect(packet.locator("p").first).to_have_text(f"You received a red packet of {amount} yuan.")
                expect(packet).to_contain_text("Sign in on this phone to keep it in your wallet and withdraw it.")
                expect(packet.get_by_role("link", name="Sign in")).to_have_attribute("href", f"/h5/{brand.slug}/login")
                shot(page, "60-reward-english")
                assert errors == []

                # Without JavaScript the PIN form posts the page: the verdict and the packet at once.
                plain = browser.new_context(
                    locale="zh-CN",
                    viewport={"width": 390, "height": 844},
                    device_scale_factor=2,
                    is_mobile=True,
                    has_touch=True,
                    user_agent=PHONE_UA,
                    java_script_enabled=False,
                )
                other = plain.new_page()
                other.on("pageerror", lambda exc: errors.append(str(exc)))
                other.goto(second["uri"])
                expect(other.locator("#red-packet")).to_have_count(0)
                other.fill("input[name=pin]", second["pin"])
                other.click("#pin-form button[type=submit]")
                expect(other.locator("#verdict")).to_have_attribute("data-verdict", "genuine", timeout=15_000)
                expect(other.locator("#verdict .scan-verdict-title")).to_have_text("正品")
                [then] = {row["code_id"] for row in brand.grants()} - {granted}
                second_open = opened(then)
                assert sorted(second_open) == ["consumer", "dealer", "store"]
                assert second_open["consumer"]["amount_fen"] in CONSUMER_TIERS
                assert second_open["consumer"]["party"] != consumer["party"]  # another phone
                expect(other.locator("#red-packet p").first).to_have_text(
                    f"恭喜获得 {_yuan(second_open['consumer']['amount_fen'])} 元红包。"
                )
                shot(other, "60-reward-no-script")
                assert errors == []
            finally:
                browser.close()

        # The books: the pool paid exactly these rewards; the store's and the dealer's wallets got theirs.
        consumers = consumer["amount_fen"] + second_open["consumer"]["amount_fen"]
        pool = brand.call("GET", f"/api/v1/rewards/pools/{world['pool']['id']}")
        assert pool["balance_fen"] == FUNDED_FEN - consumers - 2 * (STORE_FEN + DEALER_FEN)
        for staff, party, fen in (
            (world["clerk"], store_party, STORE_FEN),
            (world["dealer_staff"], dealer_party, DEALER_FEN),
        ):
            wallet = brand.call("GET", "/api/v1/rewards/partner/wallet", headers=staff)
            assert (wallet["party"], wallet["balance_fen"], wallet["held_fen"]) == (party, 2 * fen, 0)
            assert sorted(g["code_id"] for g in wallet["recent"]) == sorted([granted, then])
        assert len([row for row in brand.grants() if row["role"] == "consumer"]) == 2
