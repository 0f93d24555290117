"""The operators' page's test account and dead letters to look at."""

from __future__ import annotations

import re
import time

import httpx

from producers.config import ProducerSettings
from producers.enqueue import Producer
from tests.helpers.processes import API_KEY, LOGIN, Workers
from worker.sandbox import SandboxProvider
from worker.settings import Secret, Settings


USER = "ops"
PASSWORD = "correct horse battery staple"  # noqa: S105 - test credentials
SESSION_SECRET = "test-session-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0"  # noqa: S105


def admin_settings(redis_url: str) -> Settings:
    return Settings(
        producer=ProducerSettings(redis_url=redis_url),
        login=LOGIN,
        api_key=Secret(API_KEY),
        admin_user=USER,
        admin_password=Secret(PASSWORD),
        admin_session_secret=Secret(SESSION_SECRET),
        # The tests' clients speak plain HTTP: a Secure cookie would never be sent back.
        admin_cookie_secure=False,
    )


def make_dead_letters(producer: Producer, sandbox: SandboxProvider, workers: Workers) -> None:
    """One message rejected (114), one unknown (HTTP 502), one expired, one sent."""
    sandbox.add_fault({"action": "status", "status": 114, "match": {"campaign": "x"}})
    sandbox.add_fault({"action": "html502", "match": {"campaign": "u"}})
    producer.enqueue_many(
        [
            {"key": "rejected-1", "text": "Hi", "to": ["0612345678"], "campaign": "x"},
            {
                "key": "unknown-1",
                "text": "Hi",
                "to": ["0612345678"],
                "campaign": "u",
                "lane": "bulk",
            },
            {
                "key": "expired-1",
                "text": "Code 1234",
                "to": ["0612345678"],
                "lane": "urgent",
                "valid_for_s": 0.2,
            },
            {"key": "sent-1", "text": "Hi", "to": ["0612345678"]},
        ]
    )
    time.sleep(0.3)
    run = workers.run_burst()
    assert run.returncode == 0, run.log


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def log_in(client: httpx.Client) -> str:
    """Log in through the form; return the CSRF token of the new session."""
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"csrf": token, "user": USER, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)
