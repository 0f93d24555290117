"""Per account SMS quotas at the gateway: counted in Redis in parts x recipients, refused with
AllMySMS's out-of-credits status once passed, a duplicate never charged twice, per Paris day and
month."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from redis import Redis

from producers.config import ProducerSettings
from producers.errors import ConfigError
from tests.helpers.gateway import BLOG, SHOP, answer, json_flux, post
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.settings import ProducerAccount, Secret, Settings, read_producers
from worker.store.quotas import OverQuota, Quotas


PATH = "/http/9.0/sendSms/"
LONG = "x" * 200  # two SMS parts


@pytest.fixture
def gateway(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    settings = Settings(
        producer=ProducerSettings(redis_url=redis_server.url),
        producers=(
            ProducerAccount(SHOP[0], Secret(SHOP[1]), daily_quota=5, monthly_quota=100),
            ProducerAccount(BLOG[0], Secret(BLOG[1])),
        ),
    )
    with running(create_app(settings, redis)) as base_url:
        yield base_url + PATH


def _send(url: str, key: str, text: str = "Bonjour", phones: int = 1, account=SHOP):  # type: ignore[no-untyped-def]
    sms = [{"MOBILEPHONE": f"336123456{n:02d}"} for n in range(phones)]
    return answer(post(url, json_flux(MESSAGE=text, SMS=sms, CLIMSGID=key), account=account))


def test_the_daily_quota_counts_parts_times_recipients_and_refuses_past_it(
    gateway: str, redis: Redis
) -> None:
    first = _send(gateway, "q1", LONG, phones=2)  # 2 parts x 2 = 4
    again = _send(gateway, "q1", LONG, phones=2)  # the same key: a duplicate, not charged
    over = _send(gateway, "q2", LONG)  # 2 more would make 6 > 5
    fits = _send(gateway, "q3")  # 1 more: 5
    other = _send(gateway, "b1", LONG, phones=3, account=BLOG)  # no quota

    assert (first["status"], again["status"], fits["status"], other["status"]) == (100,) * 4
    assert over == {
        "status": 103,
        "statusText": "Quota exceeded: this account has sent 4 of its 5 SMS today (Paris time) "
        "and this request needs 2; nothing was enqueued",
    }
    assert Quotas(redis).used(SHOP[0]) == (5, 5)
    records = [k for k in redis.scan_iter("smsq:msg:*") if not k.endswith(b":history")]
    assert len(records) == 3  # q1, q3, b1: the refused q2 wrote nothing


def test_days_and_months_are_paris_calendar_ones(redis: Redis) -> None:
    quotas = Quotas(redis)
    before_midnight = datetime(2026, 12, 31, 22, 59, tzinfo=UTC)  # 23:59 in Paris
    after_midnight = datetime(2026, 12, 31, 23, 1, tzinfo=UTC)  # 00:01 on 1 January

    assert quotas.take("acct", 3, key="k1", daily=3, monthly=5, now=before_midnight) is True
    refused = quotas.take("acct", 1, key="k2", daily=3, monthly=5, now=before_midnight)
    new_day = quotas.take("acct", 3, key="k3", daily=3, monthly=5, now=after_midnight)
    month = quotas.take("acct", 3, key="k4", daily=10, monthly=5, now=after_midnight)

    assert refused == OverQuota("day", 3, 3, 1)
    assert new_day is True  # a new day and a new month
    assert month == OverQuota("month", 3, 5, 3)
    assert quotas.used("acct", now=before_midnight) == (3, 3)
    assert quotas.used("acct", now=after_midnight) == (3, 3)
    assert quotas.take("free", 9, key="k5", daily=None, monthly=None) is False


def test_quotas_are_checked_in_the_settings() -> None:
    with pytest.raises(ConfigError) as bad:
        read_producers(
            {
                "SMSQ_PRODUCERS": '[{"login": "a", "api_key": "a-key-0123456789abcd", '
                '"daily_quota": 0}]'
            }
        )
    [account] = read_producers(
        {
            "SMSQ_PRODUCERS": '[{"login": "a", "api_key": "a-key-0123456789abcd", '
            '"daily_quota": 1000, "monthly_quota": 20000}]'
        }
    )

    assert str(bad.value) == (
        "SMSQ_PRODUCERS: entry 0 (a): daily_quota must be a whole number of SMS above 0"
    )
    assert (account.daily_quota, account.monthly_quota) == (1000, 20000)
