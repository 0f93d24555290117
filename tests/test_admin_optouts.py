"""The admin page's opt-outs: check, add and remove a number with a reason, audited, CSRF-bound,
and the number never shown back in clear."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from producers.optouts import OptOuts
from tests.helpers.admin import admin_settings, log_in
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.store.audit import AuditLog


ANNE = "33612345678"


@pytest.fixture
def client(redis_server: RedisServer, redis: Redis) -> Iterator[httpx.Client]:
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def _notice(page: str) -> str:
    found = re.search(r'<div class="notice [a-z]+" role="[a-z]+">(.*?)</div>', page, re.S)
    assert found, page
    return html.unescape(found.group(1))


def test_an_operator_checks_adds_and_removes_a_number(client: httpx.Client, redis: Redis) -> None:
    token = log_in(client)
    digest = OptOuts(redis).digest(ANNE)

    def post(**data: str) -> httpx.Response:
        return client.post("/optouts", data={"csrf": token, **data})

    empty = client.get("/optouts")
    unknown = post(action="check", phone="06 12 34 56 78")
    no_reason = post(action="add", phone="0612345678", why="")
    added = post(action="add", phone="0612345678", why="asked at the shop")
    again = post(action="add", phone="+33612345678", why="again")
    checked = post(action="check", phone="0612345678")
    bad_phone = post(action="check", phone="12")
    removed = post(action="remove", phone="0612345678", why="consented again")
    forged = client.post("/optouts", data={"csrf": "x", "action": "add", "phone": "0612345678"})

    assert '<p id="count">0 number(s)' in empty.text
    assert _notice(unknown.text) == f"{digest}: not on the list."
    assert (no_reason.status_code, _notice(no_reason.text)) == (400, "Say why (it is recorded).")
    assert _notice(added.text) == f"{digest}: added."
    assert '<p id="count">1 number(s)' in added.text
    assert _notice(again.text) == f"{digest}: already on the list."
    assert re.fullmatch(
        rf"{digest}: opted out \S+ \(manual: asked at the shop\)\.", _notice(checked.text)
    )
    assert bad_phone.status_code == 400
    assert _notice(bad_phone.text).startswith("Phone: ")
    assert _notice(removed.text) == f"{digest}: removed."
    assert forged.status_code == 403
    for page in (unknown, added, checked, removed):
        assert "612345678" not in page.text
    entries = AuditLog(redis, ttl_s=3600).entries()
    assert [(e.action, e.actor, e.count, e.targets) for e in entries] == [
        ("optout.remove", "web:ops", 1, ()),
        ("optout.add", "web:ops", 1, ()),
    ]
    assert OptOuts(redis).count() == 0
