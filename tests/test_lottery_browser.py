"""A reservation lottery end to end in a real browser on a phone screen (same server and Chromium as
`test_browser.py`): the brand sets up two pick-up stores and a session with one bottle at each through
the API; a member opens the lottery page (sign in first), signs in by SMS code, is refused before the
real-name verification, verifies (through the API: the H5 has no verification page), enters at the
nearest store and reads the receipt; the operator closes and draws; the member reads the win, the
inclusion proof and the winner's SMS; the published draw recomputes — screenshots under
`test-artifacts/`.

Not covered, because the product does not do it yet: a win becomes no sales order (nothing calls
`sales.service.create_order` with source "lottery"), and lottery stores are not channel stores, so
paying a win and a clerk's pickup cannot be reached from a lottery."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, demo_server  # noqa: F401 - the fixture

if TYPE_CHECKING:
    from playwright.sync_api import Geolocation

pytestmark = pytest.mark.browser

OPENS_IN_SECONDS = 5  # time to publish the commitment before the window opens
WINDOW_SECONDS = 20
CHINA = ZoneInfo("Asia/Shanghai")
# The member stands in Tianhe, Guangzhou: the Tianhe store is nearest, Beijing far.
HERE: Geolocation = {"latitude": 23.1350, "longitude": 113.3200, "accuracy": 20}
STORES = [
    ("GZ-TH01", "天河路店", "广州", 23.1291, 113.3277),
    ("BJ-GM01", "北京国贸店", "北京", 39.9087, 116.4605),
]
MEMBER_PHONE = "13912345678"
MEMBER_NAME = "李四"


def _resident_id(birth: str, serial: str, region: str = "440106") -> str:
    """A well-formed resident ID number (GB 11643 check digit) of someone born on `birth` (YYYYMMDD)."""
    from stdnum.cn import ric

    body = f"{region}{birth}{serial}"
    number = body + ric.calc_check_digit(body + "0")
    assert ric.is_valid(number)
    return number


def _js_number(value: float) -> str:
    """A number as JavaScript's String() writes it (1.5 → "1.5", 2.0 → "2")."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _local(moment: str) -> str:
    """`new Date(moment).toLocaleString()` in zh-CN on a phone set to China time."""
    when = datetime.fromisoformat(moment).astimezone(CHINA)
    return f"{when.year}/{when.month}/{when.day} {when:%H:%M:%S}"


class Api:
    def __init__(self, http: httpx.Client, headers: dict[str, str]) -> None:
        self.http, self.headers = http, headers

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.http.request(method, f"/api/v1{path}", json=body, headers=self.headers)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()


def _sleep_until(moment: datetime) -> None:
    """Wait until `moment` (and a little more) on this machine's clock — the phone's and the server's
    too: one machine. Python-side: the pages' Content-Security-Policy refuses script evaluation."""
    left = (moment - datetime.now(UTC)).total_seconds() + 0.2
    if left > 0:
        time.sleep(left)


def _poll(check: Callable[[], object], *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_member_enters_a_lottery_and_wins_on_a_phone(demo_server: tuple[str, dict[str, Any]]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    from zhongtai.geo import Point, distance_km
    from zhongtai.lottery import verify

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    slug = credentials["tenant"]["slug"]
    title = f"示例酱香酒 每日申购 {uuid.uuid4().hex[:4].upper()}"
    with httpx.Client(base_url=base_url, timeout=30) as http:
        brand = Api(http, {"authorization": f"Bearer {credentials['api_token']['token']}"})

        products = brand.call("GET", "/catalog/products")
        assert products["total"] == 1, products
        product = products["items"][0]
        assert product["name"] == "示例酱香酒 53%vol 500ml"
        stores = [
            brand.call(
                "POST",
                "/lottery/stores",
                {"code": code, "name": name, "city": city, "latitude": lat, "longitude": lon},
                201,
            )
            for code, name, city, lat, lon in STORES
        ]
        near = stores[0]
        here = Point(HERE["latitude"], HERE["longitude"])
        distances = [_js_number(round(distance_km(here, Point(s["latitude"], s["longitude"])), 2)) for s in stores]

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                phone = browser.new_context(
                    locale="zh-CN",
                    timezone_id="Asia/Shanghai",
                    viewport={"width": 390, "height": 844},
                    device_scale_factor=2,
                    is_mobile=True,
                    has_touch=True,
                    geolocation=HERE,
                    permissions=["geolocation"],
                )
                page = phone.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))

                def shot(name: str) -> None:
                    page.screenshot(
                        path=str(ARTIFACTS / f"70-lottery-{name}.png"), full_page=True, animations="disabled"
                    )

                # Not signed in yet: the page sends the member to the sign-in page.
                page.goto(f"{base_url}/h5/{slug}/lottery")
                expect(page.locator("h1")).to_have_text("申购抽签")
                expect(page).to_have_title(f"申购抽签 · {credentials['tenant']['name']}")
                expect(page.locator("#need-sign-in")).to_be_visible()
                expect(page.locator("#need-sign-in")).to_contain_text("请先登录。")
                shot("sign-in-first")
                page.click("#need-sign-in a")
                expect(page).to_have_url(f"{base_url}/h5/{slug}/login")

                # Sign in with the code from the sandbox SMS inbox.
                page.fill("input[name=phone]", MEMBER_PHONE)
                page.click("#send-code")
                expect(page.locator("#otp-status")).to_have_text("验证码已发送至 139****5678。")
                inbox = phone.new_page()
                inbox.goto(f"{base_url}/h5/{slug}/dev/sms")
                found = re.search(r"验证码 (\d{6})", inbox.locator(".messages li").first.inner_text())
                assert found, inbox.content()
                page.fill("input[name=code]", found.group(1))
                page.click("#sign-in")
                expect(page.locator("#signed-in-phone")).to_have_text("139****5678")
                token = page.evaluate(f"window.localStorage.getItem('zt_consumer_token:{slug}')")
                assert isinstance(token, str)
                assert token.startswith("ztc_")
                member = Api(http, {"authorization": f"Bearer {token}"})
                me = member.call("GET", "/consumer/me")

                # The session: one bottle at each store, opening in a few seconds.
                opens_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=OPENS_IN_SECONDS + 1)
                closes_at = opens_at + timedelta(seconds=WINDOW_SECONDS)
                session = brand.call(
                    "POST",
                    "/lottery/sessions",
                    {"title": title, "opens_at": opens_at.isoformat(), "closes_at": closes_at.isoformat()},
                    201,
                )
                sid = session["id"]
                stock = {"items": [{"store_id": s["id"], "product_id": product["id"], "quantity": 1} for s in stores]}
                brand.call("PUT", f"/lottery/sessions/{sid}/stock", stock)
                assert brand.call("POST", f"/lottery/sessions/{sid}/commit")["status"] == "committed"

                page.goto(f"{base_url}/h5/{slug}/lottery")
                card = page.locator(f'.lottery-session[data-session="{sid}"]')
                expect(card.locator(".title")).to_have_text(title)
                expect(card.locator(".window")).to_have_text(
                    f"{_local(session['opens_at'])} – {_local(session['closes_at'])}"
                )
                # Nearest store first, with its distance.
                options = card.locator("select.store option")
                expect(options).to_have_text([f"天河路店 · {distances[0]} 公里", f"北京国贸店 · {distances[1]} 公里"])
                expect(page.locator("#my-entries")).to_be_hidden()

                # The window opens (the phone's clock is the server's: same machine).
                _sleep_until(opens_at)
                card.locator("select.store").select_option(label=f"天河路店 · {distances[0]} 公里")
                card.locator("button.enter").click()
                status = card.locator(".h5-status")
                expect(status).to_have_text("请先完成实名认证。")
                expect(status).to_have_class("h5-status error")
                shot("not-verified")

                # Real-name verification (sandbox authority) with the member's own token.
                verified = member.call(
                    "POST",
                    "/consumer/identity",
                    {"name": MEMBER_NAME, "id_number": _resident_id("19880315", "123")},
                    201,
                )
                assert verified["identity"]["name_masked"] == "李*"
                assert verified["identity"]["meets_alcohol_age"] is True

                card.locator("button.enter").click()
                expect(status).to_have_text(re.compile(r"^申购成功，回执号 [0-9a-f]{8}。$"))
                expect(status).to_have_class("h5-status ok")
                receipt_number = status.inner_text().removeprefix("申购成功，回执号 ").removesuffix("。")
                entries = member.call("GET", "/consumer/lottery/entries")
                assert [(e["session_id"], e["store_id"], e["product_id"], e["result"]) for e in entries] == [
                    (sid, near["id"], product["id"], "pending")
                ]
                entry_id = entries[0]["entry_id"]
                assert entry_id[-8:] == receipt_number
                receipt = member.call("GET", f"/consumer/lottery/entries/{entry_id}")
                leaf = f"zt-lottery-v1|{entry_id}|{product['id']}|{near['id']}|{receipt['entrant']}|"
                assert re.fullmatch(r"[0-9a-f]{32}", receipt["entrant"])
                expect(page.locator("#receipt")).to_be_visible()
                expect(page.locator("#receipt-entry")).to_have_text(entry_id)
                expect(page.locator("#receipt-result")).to_have_text("等待抽签")
                expect(page.locator("#receipt-leaf")).to_have_text(leaf)
                expect(page.locator("#receipt-root")).to_have_text("—")
                expect(page.locator("#receipt-proof")).to_have_text("—")
                expect(page.locator("#entry-list a.entry-link")).to_have_text([f"{title} · 等待抽签"])
                shot("entered")

                # Entering again answers the same entry (200, not a second one).
                with page.expect_response(lambda r: r.url.endswith(f"/sessions/{sid}/entries")) as again:
                    card.locator("button.enter").click()
                assert again.value.status == 200
                assert again.value.json()["entry_id"] == entry_id
                expect(status).to_have_text(f"申购成功，回执号 {receipt_number}。")
                assert [e["entry_id"] for e in member.call("GET", "/consumer/lottery/entries")] == [entry_id]

                # The operator closes after the window and draws.
                _sleep_until(closes_at)
                closed = brand.call("POST", f"/lottery/sessions/{sid}/close")
                assert (closed["status"], closed["entries_count"], closed["excluded_count"]) == ("closed", 1, 0)
                root = hashlib.sha256(b"\x00" + leaf.encode()).hexdigest()  # the root of a one-entry list
                assert closed["entries_root"] == root
                drawn = brand.call("POST", f"/lottery/sessions/{sid}/draw", {})
                assert (drawn["status"], drawn["winners_count"]) == ("drawn", 1)
                wins = brand.call("GET", f"/lottery/sessions/{sid}/wins")
                assert [
                    (w["entry_id"], w["consumer_id"], w["store_id"], w["product_id"], w["rank"], w["status"])
                    for w in wins
                ] == [(entry_id, me["id"], near["id"], product["id"], 1, "pending_payment")]
                due = wins[0]["payment_due_at"]
                drawn_at = datetime.fromisoformat(drawn["drawn_at"])
                assert datetime.fromisoformat(due) == drawn_at + timedelta(hours=session["payment_hours"])

                # The member reads the win: the session has left the open list, the entry says won.
                page.reload()
                link = page.locator("#entry-list a.entry-link")
                expect(link).to_have_text([f"{title} · 已中签，请在截止时间前支付"])
                expect(page.locator(".lottery-session")).to_have_count(0)
                link.click()
                expect(page.locator("#receipt-entry")).to_have_text(entry_id)
                expect(page.locator("#receipt-result")).to_have_text(f"已中签，请在截止时间前支付 ({_local(due)})")
                expect(page.locator("#receipt-root")).to_have_text(root)
                expect(page.locator("#receipt-proof")).to_have_text("0 / 1:")  # one leaf: the proof is empty
                shot("won")

                # The winner's SMS names the session and the payment deadline in China time, as the receipt.
                sms = (
                    f"【{credentials['tenant']['name']}】恭喜，您在“{title}”申购中签，请于 "
                    f"{datetime.fromisoformat(due).astimezone(CHINA):%Y-%m-%d %H:%M} 前完成支付，逾期视为放弃。"
                )
                # A job sends it after the draw: the inbox page re-reads its own address until the SMS is in.
                inbox.evaluate(
                    """([url, text]) => {
                      window.smsFound = false;
                      const look = () => fetch(url).then((r) => r.text()).then((html) => {
                        const list = new DOMParser().parseFromString(html, "text/html").querySelector(".messages");
                        if (list && list.textContent.includes(text)) window.smsFound = true;
                        else setTimeout(look, 300);
                      });
                      look();
                    }""",
                    [f"{base_url}/h5/{slug}/dev/sms", sms],
                )
                _poll(lambda: inbox.evaluate("window.smsFound === true"), seconds=30)
                inbox.reload()
                expect(inbox.locator(".messages li").first).to_contain_text(sms)
                expect(inbox.locator(".messages li", has_text="申购中签")).to_have_count(1)
                inbox.screenshot(path=str(ARTIFACTS / "70-lottery-winner-sms.png"), full_page=True)
                assert errors == []
            finally:
                browser.close()

        # Anyone can recompute the published draw: the commitment, the root, the seed, the one winner.
        public = http.get(f"/api/v1/public/{slug}/lottery/{sid}/draw").json()
        assert public["winners"] == [
            {"entry_id": entry_id, "store_id": near["id"], "product_id": product["id"], "rank": 1}
        ]
        assert public["entries"] == [
            {
                "entry_id": entry_id,
                "product_id": product["id"],
                "store_id": near["id"],
                "entrant": receipt["entrant"],
                "excluded_reason": None,
            }
        ]
        report = verify.verify(public)
        assert report.ok, report.checks
