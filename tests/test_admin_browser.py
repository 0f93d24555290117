"""The admin page in a real headless Chromium: an operator logs in, finds a rejected message
among the dead letters and requeues it through the confirmation page."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from redis import Redis

from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.admin import PASSWORD, USER, admin_settings, make_dead_letters
from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.processes import Workers
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider


pytestmark = pytest.mark.browser

SCREENSHOT_MIN_BYTES = 10 * 1024
TIMEOUT_MS = 5_000
MESSAGE_PAGE_MAX_PX = 6_000
"""A message's page with a full page of recipients (4,470 px measured at 1280 px wide)."""


@pytest.fixture
def admin(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    with running(create_app(admin_settings(redis_server.url), redis), port=free_port()) as base_url:
        yield base_url


def test_operator_requeues_a_rejected_message_in_the_browser(
    chromium: Path,
    admin: str,
    producer: Producer,
    sandbox: SandboxProvider,
    workers: Workers,
    store: MessageStore,
    tmp_path: Path,
) -> None:
    """Login, dead letters, message, Requeue, confirm: the banner says so and Redis agrees."""
    make_dead_letters(producer, sandbox, workers)
    screenshot = tmp_path / "admin-dead-letters.png"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            # Given an operator who opens the dead letters and is asked to log in first
            page.goto(f"{admin}/dead")
            expect(page).to_have_url(f"{admin}/login?next=%2Fdead")
            page.get_by_label("User").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(f"{admin}/dead")
            expect(page.locator("#dead tbody tr")).to_have_count(3)
            page.screenshot(path=str(screenshot), full_page=True)

            # When they open the rejected message and requeue it, confirming
            page.get_by_role("link", name="rejected-1").click()
            expect(page.locator("#state")).to_have_text("rejected")
            page.get_by_role("button", name="Requeue").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Requeue this message?")
            page.get_by_role("button", name="Yes, requeue this message").click()

            # Then the page shows the success banner and the new state
            expect(page.locator(".notice.ok")).to_contain_text("Requeued: job smsq-")
            expect(page.locator("#state")).to_have_text("queued")
        finally:
            browser.close()

    record = store.get("rejected-1")
    assert record is not None
    assert record.state is State.QUEUED
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert screenshot.stat().st_size > SCREENSHOT_MIN_BYTES


def test_the_secure_cookie_default_works_through_an_ssh_tunnel_on_localhost(
    chromium: Path, redis_server: RedisServer, redis: Redis
) -> None:
    """SMSQ_ADMIN_COOKIE_SECURE's default (true) still lets an operator log in over
    http://localhost (the runbook's ``ssh -L`` tunnel): Chromium keeps Secure cookies there."""
    settings = dataclasses.replace(admin_settings(redis_server.url), admin_cookie_secure=True)
    with (
        running(create_app(settings, redis), port=free_port()) as base_url,
        sync_playwright() as playwright,
    ):
        local = base_url.replace("127.0.0.1", "localhost")
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{local}/dead")
            page.get_by_label("User").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(f"{local}/dead")
            cookies = {c["name"]: c for c in page.context.cookies()}
        finally:
            browser.close()
    assert (cookies["smsq_admin"]["secure"], cookies["smsq_admin"]["httpOnly"]) == (True, True)
    assert cookies["smsq_admin"]["sameSite"] == "Strict"


def test_a_1200_recipient_message_is_one_screenful_of_pages(
    chromium: Path,
    admin: str,
    producer: Producer,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """Sent in three parts, its page lists 100 recipients at a time (it was 113,075 px tall at
    this width before); next goes to the second hundred, a part link to that part."""
    phones = [f"336{n:08d}" for n in range(20_000_000, 20_001_200)]
    producer.enqueue({"key": "big", "text": "Hi", "to": phones})
    assert workers.run_burst().returncode == 0

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{admin}/login?next=/messages/big")
            page.get_by_label("User").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(f"{admin}/messages/big")
            height = page.evaluate("document.documentElement.scrollHeight")
            expect(page.locator("#recipients tbody tr")).to_have_count(100)
            page.get_by_role("link", name="next").click()
            expect(page).to_have_url(f"{admin}/messages/big?page=2")
            expect(page.locator("#recipient-range")).to_have_text(
                "Recipients 101\u2013200 of 1,200"
            )
            expect(page.locator("#recipients tbody tr").first).to_contain_text(phones[100])
            page.locator("#parts").get_by_role("link", name="big#3/3").click()
            expect(page.locator("#parent")).to_have_text("Part of message big.")
            expect(page.locator("#recipient-range")).to_have_text("Recipients 1\u2013100 of 200")
        finally:
            browser.close()
    assert height < MESSAGE_PAGE_MAX_PX
