"""Test and staging producer accounts (GOV.UK Notify's test and team keys): a test account's
messages are recorded sent and never reach AllMySMS; a staging account may send only to its
allow-list."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from producers.config import ProducerSettings
from producers.contract import parse_request
from producers.errors import ConfigError, InvalidRequestError
from producers.states import State
from producers.store import MessageStore
from tests.helpers.gateway import SHOP, answer, json_flux, post
from tests.helpers.processes import Workers
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider
from worker.settings import ProducerAccount, Secret, Settings, read_producers


TEST = ("qa", "qa-key-0a1b2c3d4e5f6a7b")
TEAM = ("team", "team-key-9f8e7d6c5b4a")
ALLOWED = "33612345678"
PATH = "/http/9.0/sendSms/"


@pytest.fixture
def gateway(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    settings = Settings(
        producer=ProducerSettings(redis_url=redis_server.url),
        producers=(
            ProducerAccount(SHOP[0], Secret(SHOP[1])),
            ProducerAccount(TEST[0], Secret(TEST[1]), test=True),
            ProducerAccount(TEAM[0], Secret(TEAM[1]), allowed_recipients=(ALLOWED,)),
        ),
    )
    with running(create_app(settings, redis)) as base_url:
        yield base_url + PATH


def _flux(*phones: str, key: str) -> str:
    return json_flux(SMS=[{"MOBILEPHONE": p} for p in phones], CLIMSGID=key)


def test_a_test_accounts_messages_are_recorded_sent_and_never_reach_allmysms(
    gateway: str, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    tested = answer(post(gateway, _flux("0612345678", "0698765432", key="t1"), account=TEST))
    live = answer(post(gateway, _flux("0612345678", key="l1")))

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    sends = [r["data"]["SMS"] for r in sandbox.requests()]
    assert sends == [[{"MOBILEPHONE": "33612345678"}]]  # the live account's only
    record = store.get_by_id(str(tested["campaignId"]))
    assert record is not None
    assert record.request["test"] is True
    assert record.state is State.SENT
    assert record.sms_ids == {
        "33612345678": f"test-{record.message_id}-1",
        "33698765432": f"test-{record.message_id}-2",
    }
    assert record.history[-1]["reason"] == (
        "test mode: accepted as AllMySMS would, nothing was sent to AllMySMS"
    )
    other = store.get_by_id(str(live["campaignId"]))
    assert other is not None
    assert "test" not in other.request


def test_a_staging_account_sends_only_to_its_allow_list(gateway: str, store: MessageStore) -> None:
    mixed = answer(post(gateway, _flux("0612345678", "0698765432", key="s1"), account=TEAM))
    refused = answer(post(gateway, _flux("0698765432", key="s2"), account=TEAM))

    record = store.get_by_id(str(mixed["campaignId"]))
    assert record is not None
    assert [r["phone"] for r in record.request["to"]] == [ALLOWED]
    assert record.refused_numbers == [
        {"field": "to", "phone": "33698765432", "reason": "not on this account's allow-list"}
    ]
    assert refused["status"] == 114
    assert refused["statusText"].endswith(
        "(no valid recipient (every one is not on this account's allow-list))"
    )


def test_the_settings_and_the_field_are_checked() -> None:
    env = {
        "SMSQ_PRODUCERS": '[{"login": "team", "api_key": "team-key-0123456789", '
        '"test": true, "allowed_recipients": ["06 12 34 56 78"]}]'
    }
    [account] = read_producers(env)
    with pytest.raises(ConfigError) as bad_phone:
        read_producers(
            {
                "SMSQ_PRODUCERS": '[{"login": "team", "api_key": "team-key-0123456789", '
                '"allowed_recipients": ["12"]}]'
            }
        )
    with pytest.raises(ConfigError) as bad_flag:
        read_producers(
            {"SMSQ_PRODUCERS": '[{"login": "t", "api_key": "t-key-0123456789abcd", "test": 1}]'}
        )
    with pytest.raises(InvalidRequestError) as bad_field:
        parse_request({"key": "k", "to": ["0612345678"], "text": "x", "test": "yes"})

    assert (account.test, account.allowed_recipients) == (True, ("33612345678",))
    assert str(bad_phone.value).startswith(
        "SMSQ_PRODUCERS: entry 0 (team): allowed_recipients[0]: "
    )
    assert str(bad_flag.value) == "SMSQ_PRODUCERS: entry 0 (t): test must be true or false"
    assert bad_field.value.as_dict() == {"field": "test", "reason": "must be true or false"}
    assert parse_request({"key": "k", "to": ["0612345678"], "text": "x"}).test is False
