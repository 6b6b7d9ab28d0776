"""End to end in a real browser: the demo install served by granian, driven through Debian's Chromium.

Signs in with the demo credentials, creates a user, switches the language to English and back, signs a
consumer in on the H5 page, and signs out — saving a screenshot of every page under `test-artifacts/`.
Needs /usr/bin/chromium (never downloaded): skipped when it is missing, except with CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import click_nav

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ZT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
IS_CI = os.environ.get("CI", "").lower() == "true"
ZHONGTAI = Path(sys.executable).with_name("zhongtai")


def _need_browser() -> None:
    problem = None
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        problem = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed"
    if problem:
        if IS_CI:
            pytest.fail(f"CI=true requires the browser test: {problem}")
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"server did not answer within 60s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The demo brand without its generated month (`demo --days 0`): each test makes what it needs."""
    yield from _demo_server(tmp_path, days=0)


@pytest.fixture
def living_demo_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The demo brand as `make demo` makes it: with a generated month of activity."""
    yield from _demo_server(tmp_path, days=30)


def _demo_server(tmp_path: Path, *, days: int) -> Iterator[tuple[str, dict[str, Any]]]:
    _need_browser()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ZT_DATA_DIR": str(tmp_path / "data"),
        "ZT_ENV": "development",
        "ZT_PUBLIC_URL": base_url,
        "ZT_LOG_JSON": "false",
        "ZT_LOG_LEVEL": "WARNING",
    }
    env.pop("ZT_DATABASE_URL", None)
    env.pop("ZT_REDIS_URL", None)
    subprocess.run([str(ZHONGTAI), "demo", "--days", str(days)], env=env, check=True, capture_output=True, timeout=300)
    credentials = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(ZHONGTAI), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(base_url, server, log)
            yield base_url, credentials
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)


def test_operator_and_consumer_journeys(demo_server: tuple[str, dict[str, Any]]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base_url, credentials = demo_server
    ARTIFACTS.mkdir(exist_ok=True)
    operator = credentials["operator"]
    new_email = f"guide-{uuid.uuid4().hex[:6]}@demo-baijiu.example"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                locale="zh-CN", viewport={"width": 1366, "height": 860}, device_scale_factor=1
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled")

            # Sign in (Chinese by default, from the browser's language).
            page.goto(f"{base_url}/console")
            expect(page).to_have_url(re.compile(r"/console/login"))
            expect(page.locator("h1")).to_have_text("登录")
            shot("01-login")
            page.fill("input[name=email]", operator["email"])
            page.fill("input[name=password]", "wrong password")
            page.click("button[type=submit]")
            expect(page.locator(".flash.error")).to_have_text("邮箱或密码错误，或账号已停用。")
            page.fill("input[name=password]", operator["password"])
            page.click("button[type=submit]")
            expect(page.locator(".page-title")).to_have_text("首页")
            # The menu is grouped by area, every area folded on the home page.
            settings_area = page.locator("details.nav-group[data-group=settings]")
            expect(settings_area.locator("summary")).to_have_text("设置")
            expect(page.locator("details.nav-group[open]")).to_have_count(0)
            nav_users = page.locator("a.nav-item[href='/console/users']")
            expect(nav_users).to_be_hidden()
            shot("02-home")

            # Create a user; first a refused password, then a good one.
            settings_area.locator("summary").click()
            expect(nav_users).to_have_text("用户")
            nav_users.click()
            expect(settings_area).to_have_attribute("open", "")  # the current page's area stays open
            page.click("#new-user")
            page.fill("input[name=email]", new_email)
            page.fill("input[name=display_name]", "门店导购 小王")
            page.select_option("select[name=role]", "operator")
            page.fill("input[name=password]", "short")
            page.click("button[type=submit].primary")
            expect(page.locator(".field-error")).to_have_text("密码不可用：至少使用 10 个字符。")
            expect(page.locator("input[name=email]")).to_have_value(new_email)
            shot("03-user-form-error")
            page.fill("input[name=password]", "a good long password")
            page.click("button[type=submit].primary")
            expect(page).to_have_url(f"{base_url}/console/users")
            expect(page.locator(".flash.ok")).to_have_text(f"已创建用户 {new_email}。")
            expect(page.locator("tbody")).to_contain_text("门店导购 小王")
            shot("04-users")
            page.fill("input[name=q]", new_email.split("@", maxsplit=1)[0])  # htmx filters as one types
            expect(page.locator("#results tbody tr")).to_have_count(1)
            expect(page).to_have_url(re.compile(r"/console/users\?q=guide-"))
            page.set_viewport_size({"width": 390, "height": 800})
            shot("04b-users-phone")
            page.set_viewport_size({"width": 1366, "height": 860})

            # The other pages render (screenshots for review).
            click_nav(page, "/console/tokens")
            expect(page.locator(".page-title")).to_have_text("API 令牌")
            shot("05-tokens")
            page.click("#new-token")
            page.fill("input[name=name]", "ERP 同步")
            page.check("input[value='users.read']")
            page.click("button[type=submit].primary")
            expect(page.locator("#token-secret")).to_have_value(re.compile(r"^zt_"))
            shot("06-token-created")
            page.goto(f"{base_url}/console/audit")
            expect(page.locator("tbody")).to_contain_text("user.create")
            shot("07-audit")
            page.goto(f"{base_url}/console/jobs")
            shot("08-jobs")

            # English and back.
            page.goto(f"{base_url}/console/users")
            page.click(".topbar .lang a[hreflang=en]")
            expect(page).to_have_url(f"{base_url}/console/users")
            expect(page.locator("a.nav-item[href='/console/users']")).to_have_text("Users")
            expect(page.locator(".page-title")).to_have_text("Users")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            shot("09-users-english")
            page.click(".topbar .lang a[hreflang=zh-CN]")
            expect(page.locator("a.nav-item[href='/console/users']")).to_have_text("用户")

            # Sign out.
            page.click("#logout")
            expect(page).to_have_url(re.compile(r"/console/login$"))
            page.goto(f"{base_url}/console/users")
            expect(page).to_have_url(re.compile(r"/console/login\?next="))
            shot("10-signed-out")

            # The platform administrator's tenant page.
            page.goto(f"{base_url}/console/login")
            page.fill("input[name=email]", credentials["platform_admin"]["email"])
            page.fill("input[name=password]", credentials["platform_admin"]["password"])
            page.click("button[type=submit]")
            click_nav(page, "/console/platform/tenants")
            expect(page.locator("tbody")).to_contain_text("demo-baijiu")
            shot("11-tenants")
            assert errors == [], errors
            context.close()

            _consumer_signs_in(browser, base_url, credentials["tenant"]["slug"])
        finally:
            browser.close()


def _consumer_signs_in(browser: Any, base_url: str, slug: str) -> None:
    from playwright.sync_api import expect

    phone = "13800138000"
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 780}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{base_url}/h5/{slug}/login")
    page.screenshot(path=str(ARTIFACTS / "12-h5-login.png"), full_page=True)
    page.click("#sign-in")
    expect(page.locator("#otp-status")).to_have_text("请输入手机号。")
    page.fill("input[name=phone]", phone)
    page.click("#send-code")
    expect(page.locator("#otp-status")).to_have_text("验证码已发送至 138****8000。")
    expect(page.locator("#send-code")).to_have_text(re.compile(r"^\d+ 秒后重发$"))
    expect(page.locator("#send-code")).to_be_disabled()
    page.fill("input[name=code]", "12345")
    page.click("#sign-in")
    expect(page.locator("#otp-status")).to_have_text("请输入 6 位验证码。")
    page.screenshot(path=str(ARTIFACTS / "13-h5-code-sent.png"), full_page=True)

    inbox = context.new_page()
    inbox.goto(f"{base_url}/h5/{slug}/dev/sms")
    found = re.search(r"验证码 (\d{6})", inbox.locator(".messages").inner_text())
    assert found, inbox.content()
    code = found.group(1)
    wrong = "000000" if code != "000000" else "111111"
    page.fill("input[name=code]", wrong)
    page.click("#sign-in")
    expect(page.locator("#otp-status")).to_have_text("验证码错误。")
    page.fill("input[name=code]", code)
    page.click("#sign-in")
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#signed-in-phone")).to_have_text("138****8000")
    token = page.evaluate(f"window.localStorage.getItem('zt_consumer_token:{slug}')")
    assert isinstance(token, str)
    assert token.startswith("ztc_")
    page.screenshot(path=str(ARTIFACTS / "14-h5-signed-in.png"), full_page=True)
    page.reload()
    expect(page.locator("#signed-in")).to_be_visible()
    context.close()
