"""The trace log verifier script in a real browser: a real proof verifies, tampered ones do not.

Seeds a brand's log (and a signed checkpoint) in a fresh embedded install, serves it with granian,
and drives Debian's Chromium through Playwright on the verify-demo page, which runs
/static/trace-verify.js (WebCrypto SHA-256 and Ed25519). Skipped without /usr/bin/chromium, except
with CI=true.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ZHONGTAI, _free_port, _need_browser, _wait_until_up
from zhongtai.core import accounts, migrate
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.trace import checkpoint, log

pytestmark = pytest.mark.browser

SLUG = "trace-demo"
ENTRIES = [f"ni:///sha-256;{n:064x}?ver=CBV2.0" for n in range(11)]


async def _seed(settings: Settings) -> None:
    runtime = Runtime(settings)
    await runtime.start(with_worker=False)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            tenant, _ = await accounts.do_create_tenant(
                session,
                slug=SLUG,
                name="Trace demo",
                owner_email="owner@trace.example",
                owner_password="correct horse battery",
            )
        async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
            await log.append(session, tenant.id, [entry.encode() for entry in ENTRIES])
            await checkpoint.do_sign_tree_head(session, runtime.crypto, tenant.id, public_url=settings.public_url)
    finally:
        await runtime.stop()


@pytest.fixture
def log_server(tmp_path: Path) -> Iterator[str]:
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
    settings = Settings(env="development", data_dir=tmp_path / "data", public_url=base_url, database_url=None)

    def seed() -> None:  # in a thread of its own: the test session's event loop is running here
        migrate.upgrade(settings)
        asyncio.run(_seed(settings))

    with ThreadPoolExecutor(1) as pool:
        pool.submit(seed).result()
    server_log = tmp_path / "server.log"
    with server_log.open("wb") as sink:
        server = subprocess.Popen(
            [str(ZHONGTAI), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-migrate"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(base_url, server, server_log)
            yield base_url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)


def test_the_browser_verifies_a_real_proof_and_refuses_tampered_ones(log_server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    demo = f"{log_server}/epcis/log/{SLUG}/verify-demo"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(f"{demo}?entry={ENTRIES[3]}")
            verdict = page.locator("#verdict")
            expect(verdict).to_have_attribute("data-state", "verified", timeout=10_000)
            expect(verdict).to_contain_text("VERIFIED: the entry is leaf 3 of the tree of size 11")
            page.screenshot(path=str(ARTIFACTS / "trace-verify-ok.png"))

            # A tampered event: leaf 3's proof offered for another event.
            page.goto(f"{demo}?leaf_index=3&claim={ENTRIES[4]}")
            expect(verdict).to_have_attribute("data-state", "failed", timeout=10_000)
            expect(verdict).to_contain_text("NOT VERIFIED")
            page.screenshot(path=str(ARTIFACTS / "trace-verify-tampered.png"))

            # A tampered proof, a tampered checkpoint and a wrong key, through the script's functions.
            results = page.evaluate(
                """async ([base, entry]) => {
                    const key = (await (await fetch(base + "/public-key")).json()).current.verifier_key;
                    const proof = await (await fetch(base + "/proof/inclusion?leaf_index=3")).json();
                    const good = await ztVerifyEvent(entry, proof, key);
                    const flipped = structuredClone(proof);
                    const first = atob(flipped.inclusion_path[0]);
                    flipped.inclusion_path[0] = btoa(String.fromCharCode(first.charCodeAt(0) ^ 1) + first.slice(1));
                    const edited = structuredClone(proof);
                    edited.checkpoint = edited.checkpoint.replace("\\n11\\n", "\\n12\\n");
                    edited.tree_size = 12;
                    const otherKey = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
                    return {
                        good: good.ok,
                        tamperedProof: (await ztVerifyEvent(entry, flipped, key)).ok,
                        tamperedCheckpoint: (await ztVerifyEvent(entry, edited, key)).reason,
                        wrongKey: (await ztVerifyEvent(entry, proof, otherKey)).ok,
                    };
                }""",
                [f"{log_server}/epcis/log/{SLUG}", ENTRIES[3]],
            )
            assert results["good"] is True
            assert results["tamperedProof"] is False
            assert "does not verify" in results["tamperedCheckpoint"]
            assert results["wrongKey"] is False
            assert errors == []
        finally:
            browser.close()


def test_the_consumer_trace_shows_a_step_declared_in_error() -> None:
    """static/trace-view.js on the consumer partial: a step declared in error is marked and shows its
    reason, declaration time and corrective events (trace data served by the page's own routes)."""
    import json
    from types import SimpleNamespace

    from playwright.sync_api import expect, sync_playwright

    from zhongtai.kit.rendering import templates

    _need_browser()
    static = Path(__file__).resolve().parents[1] / "src" / "zhongtai" / "static"
    partial = templates.get_template("h5/_trace.html").render(
        _=lambda message, **values: message, tenant=SimpleNamespace(slug=SLUG), code="ABC"
    )
    step = {
        "time": "2025-03-01T12:00:00.000+08:00",
        "what": {"biz_step": "shipping", "action": "OBSERVE", "label": "Shipped"},
        "where": {"read_point": None, "read_point_name": "Dock 7", "biz_location": None},
        "via": None,
        "hash_id": ENTRIES[0],
        "leaf_index": 0,
        "pending": True,
        "proof": None,
        "error_declaration": None,
    }
    declared = {
        **step,
        "hash_id": ENTRIES[1],
        "error_declaration": {
            "declared_at": "2025-03-02T09:30:00.000+08:00",
            "reason": "incorrect_data",
            "label": "The event's data were incorrect",
            "corrective_event_ids": ["urn:uuid:c0de"],
        },
    }
    data = {"product": {"name": "Bottle", "gtin": "1"}, "lot": None, "code": {}, "log": None, "steps": [step, declared]}

    def serve(route: Any) -> None:
        url = route.request.url
        if "/trace-data" in url:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(data))
        elif "/static/" in url:
            route.fulfill(
                status=200,
                content_type="text/javascript; charset=utf-8",
                body=(static / url.rsplit("/", 1)[1]).read_text(),
            )
        else:
            route.fulfill(
                status=200,
                content_type="text/html; charset=utf-8",
                body=f"<!doctype html><html><body>{partial}</body></html>",
            )

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route("http://trace.test/**", serve)
            page.goto("http://trace.test/h5/page")
            expect(page.locator(".trace-step")).to_have_count(2, timeout=10_000)
            expect(page.locator(".trace-step.declared-in-error")).to_have_count(1)
            note = page.locator(".trace-step.declared-in-error .trace-declared")
            expect(note).to_contain_text("Declared in error · The event's data were incorrect")
            expect(note).to_contain_text("2025-03-02 09:30")
            expect(note).to_contain_text("Corrected by urn:uuid:c0de")
            expect(page.locator(".trace-step").first.locator(".trace-declared")).to_have_count(0)
            assert errors == []
        finally:
            browser.close()
