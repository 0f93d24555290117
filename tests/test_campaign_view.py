"""``smsq campaign NAME`` and the admin page ``/campaigns``: a campaign's recipients by state,
delivery, opt-outs, rate and end, found through the campaign index the enqueue writes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.optouts import OptOuts, Source
from tests.helpers.admin import admin_settings, log_in
from tests.helpers.processes import Workers
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.store.campaigns import campaign_ids, progress


def test_a_campaign_file_shows_its_progress_before_and_after_a_worker_sends(
    redis: Redis, producer: Producer, workers: Workers, tmp_path: Path
) -> None:
    """1,201 lines become one request of 1,200 valid recipients split into three parts, plus a
    single message of the same campaign; one number opted out."""
    numbers = [f"06{n:08d}" for n in range(30_000_000, 30_001_200)]
    file = tmp_path / "numbers.csv"
    file.write_text("phone\n0140000000\n" + "\n".join(numbers) + "\n", encoding="utf-8")
    assert (
        workers.smsq("enqueue", "--file", str(file), "--text", "Hi", "--key", "spring").returncode
        == 0
    )
    OptOuts(redis).add("33630000000", source=Source.MANUAL)
    producer.enqueue(
        {
            "key": "spring-extra",
            "to": ["0630000000", "0612345678"],
            "text": "Hi",
            "campaign": "spring",
            "purpose": "marketing",
        }
    )

    before = json.loads(workers.smsq("campaign", "spring", "--json").stdout)
    run = workers.run_burst(
        SMSQ_MARKETING_HOURS="00:00-24:00",
        SMSQ_MARKETING_DAYS="mon-sun",
        SMSQ_MARKETING_HOLIDAYS="0",
    )
    after = json.loads(workers.smsq("campaign", "spring", "--json").stdout)
    text = workers.smsq("campaign", "spring").stdout
    missing = workers.smsq("campaign", "autumn")

    assert (before["messages"], before["recipients"], before["states"]) == (
        2,
        1201,
        {"queued": 1201},
    )
    assert (before["done"], before["rate_per_min"], before["opted_out"]) == (0, None, 1)
    assert run.returncode == 0, run.log
    assert (after["states"], after["done"]) == ({"sent": 1201}, 1201)
    assert after["eta"] is None
    assert after["started_at"] <= after["last_update_at"]
    assert len(campaign_ids(redis, "spring")) == 2  # the split message once, not its parts
    assert text.splitlines()[1].startswith("[" + "#" * 30 + "] 100% gone through: 1201 sent")
    assert (missing.returncode, missing.stderr) == (
        1,
        "smsq campaign: no message in campaign 'autumn'\n",
    )


def test_purged_and_expired_messages_leave_the_index(redis: Redis, producer: Producer) -> None:
    producer.enqueue({"key": "c1", "to": ["0612345678"], "text": "Hi", "campaign": "winter"})
    producer.enqueue({"key": "c2", "to": ["0698765432"], "text": "Hi", "campaign": "winter"})
    redis.delete(keys.message(keys.message_id("c2")))  # as if it expired

    view = progress(redis, "winter")

    assert (view.messages, view.recipients) == (1, 1)
    assert campaign_ids(redis, "winter") == [keys.message_id("c1")]


@pytest.fixture
def client(redis_server: RedisServer, redis: Redis) -> Iterator[httpx.Client]:
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def test_the_admin_page_draws_the_progress(
    client: httpx.Client, producer: Producer, workers: Workers
) -> None:
    producer.enqueue({"key": "a1", "to": ["0612345678"], "text": "Hi", "campaign": "fall"})
    assert workers.run_burst().returncode == 0
    producer.enqueue({"key": "a2", "to": ["0698765432"], "text": "Hi", "campaign": "fall"})
    log_in(client)

    page = client.get("/campaigns", params={"name": "fall"})
    unknown = client.get("/campaigns", params={"name": "none"})

    assert page.status_code == 200
    assert '<progress id="progress" value="1" max="2">' in page.text
    assert re.search(r"<tr><td>queued</td><td class=\"num\">1</td></tr>", page.text)
    assert re.search(r"<tr><td>sent</td><td class=\"num\">1</td></tr>", page.text)
    assert unknown.status_code == 404
    assert "No message in campaign &#39;none&#39;." in unknown.text
