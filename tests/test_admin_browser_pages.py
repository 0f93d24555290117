"""The new admin pages in headless Chromium: a campaign's progress moves while a worker sends,
and the workers page lists the live worker; no page breaks the CSP (no inline script or style,
no remote origin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, expect, sync_playwright
from redis import Redis

from producers.enqueue import Producer
from tests.helpers.admin import PASSWORD, USER, admin_settings
from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.crashes import FAST
from tests.helpers.processes import Workers, wait_for
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.store.workers import board


pytestmark = pytest.mark.browser

TIMEOUT_MS = 10_000


@pytest.fixture
def admin(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    with running(create_app(admin_settings(redis_server.url), redis), port=free_port()) as base_url:
        yield base_url


def test_campaign_progress_moves_and_the_workers_page_lists_the_worker(
    chromium: Path, admin: str, redis: Redis, producer: Producer, workers: Workers
) -> None:
    producer.enqueue_many(
        [
            {"key": f"b{n}", "to": ["0612345678"], "text": "Hi", "campaign": "browser"}
            for n in range(4)
        ]
    )
    problems: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        # A CSP violation is reported as "Refused to execute/apply/load ... Content Security
        # Policy"; the browser's own /favicon.ico probe (404) is not one.
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("console", watch)
            page.goto(f"{admin}/login")
            page.get_by_label("User").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()

            # Given a campaign of four queued messages
            page.goto(f"{admin}/campaigns")
            page.get_by_label("Name").fill("browser")
            page.get_by_role("button", name="Show").click()
            expect(page.locator("#progress")).to_have_attribute("value", "0")
            expect(page.locator("#done")).to_have_text("0 of 4 recipient(s) gone through")

            # When a worker sends them, the page shows the progress
            workers.start(**FAST)
            wait_for(lambda: any(w.state == "alive" for w in board(redis)), what="a live worker")
            for _ in range(50):
                page.reload()
                if page.locator("#progress").get_attribute("value") == "4":
                    break
                page.wait_for_timeout(200)
            expect(page.locator("#progress")).to_have_attribute("value", "4")
            expect(page.locator("#rate")).to_contain_text("recipients/min")

            # And the workers page lists the live worker
            page.get_by_role("link", name="Workers").click()
            expect(page.locator("#workers tbody tr.alive")).to_have_count(1)
        finally:
            browser.close()

    assert problems == []
