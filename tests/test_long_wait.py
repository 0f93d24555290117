"""The long-wait alert: a lane whose oldest message waits past its threshold is logged at error
by one worker per interval and shown on the admin overview."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import structlog
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.errors import ConfigError
from tests.helpers.admin import admin_settings, log_in
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.send.long_wait import LongWaitWatch
from worker.settings import Settings, read_long_wait


THRESHOLDS = {"urgent": 60.0, "default": 600.0, "bulk": 0.0}


def _age(redis: Redis, key: str, seconds: float) -> None:
    """Make ``key``'s job look enqueued ``seconds`` ago."""
    then = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    redis.hset(keys.rq_job(keys.job_id(keys.message_id(key))), "enqueued_at", then)


def test_a_lane_over_its_threshold_is_logged_once_per_turn(
    redis: Redis, producer: Producer
) -> None:
    producer.enqueue({"key": "otp", "to": ["0612345678"], "text": "1234", "lane": "urgent"})
    producer.enqueue({"key": "news", "to": ["0612345678"], "text": "Hi", "lane": "bulk"})
    producer.enqueue({"key": "info", "to": ["0612345678"], "text": "Hi"})
    _age(redis, "otp", 90)
    _age(redis, "news", 90_000)  # bulk's alert is off
    _age(redis, "info", 30)
    first, second = (LongWaitWatch(redis, THRESHOLDS, by=w) for w in ("w1", "w2"))

    with structlog.testing.capture_logs() as logs:
        found = first.maybe_run()
        other = second.maybe_run()

    assert found is not None
    assert [(lane, threshold) for lane, _, threshold in found] == [("urgent", 60.0)]
    assert other is None  # another worker's turn
    [entry] = [e for e in logs if e["event"] == "sms.lane.long_wait"]
    assert (entry["log_level"], entry["lane"], entry["threshold_s"]) == ("error", "urgent", 60.0)
    assert 89 <= entry["oldest_age_s"] <= 95


@pytest.fixture
def client(redis_server: RedisServer, redis: Redis) -> Iterator[httpx.Client]:
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def test_the_overview_shows_the_long_wait(
    client: httpx.Client, redis: Redis, producer: Producer
) -> None:
    producer.enqueue({"key": "otp", "to": ["0612345678"], "text": "1234", "lane": "urgent"})
    log_in(client)
    calm = client.get("/").text
    _age(redis, "otp", 120)
    late = client.get("/").text

    assert 'id="long-wait-urgent"' not in calm
    assert 'id="long-wait-urgent"' in late
    assert "over its 60 s threshold (SMSQ_LONG_WAIT_S)" in late


def test_the_setting_is_read_per_lane() -> None:
    assert read_long_wait({"SMSQ_LONG_WAIT_S": "urgent=30, bulk=0"}) == {
        "urgent": 30.0,
        "default": 600.0,
        "bulk": 0.0,
    }
    assert Settings.from_env({}).long_wait_s == {"urgent": 60.0, "default": 600.0, "bulk": 3600.0}
    with pytest.raises(ConfigError) as bad:
        read_long_wait({"SMSQ_LONG_WAIT_S": "fast=3"})
    assert str(bad.value) == "SMSQ_LONG_WAIT_S: 'fast': must name urgent, default or bulk"
