"""A gateway link opened in a real headless Chromium: a refused phone number carrying markup is
shown as text, never run (escaped JSON, nosniff, a sandboxing CSP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Dialog, sync_playwright
from redis import Redis

from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.gateway import PATH, PHONE, SHOP, gateway_settings
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running


pytestmark = pytest.mark.browser

TIMEOUT_MS = 5_000
PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]


@pytest.fixture
def gateway(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    with running(create_app(gateway_settings(redis_server.url), redis)) as base_url:
        yield base_url + PATH


def test_a_get_link_with_markup_in_a_phone_runs_nothing(chromium: Path, gateway: str) -> None:
    sms = [{"MOBILEPHONE": PHONE}, *({"MOBILEPHONE": p} for p in PAYLOADS)]
    flux = json.dumps({"DATA": {"MESSAGE": "hi", "SMS": sms}})
    link = gateway + "?" + urlencode({"login": SHOP[0], "apiKey": SHOP[1], "smsData": flux})
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("dialog", record)
            response = page.goto(link)
            assert response is not None
            assert response.status == 200
            page.wait_for_timeout(500)  # an onerror handler would have fired by now
            shown = page.inner_text("body")
        finally:
            browser.close()
    assert dialogs == []
    reply = json.loads(shown)
    assert reply["status"] == 113
    assert reply["invalidNumbers"] == "|".join(PAYLOADS)
