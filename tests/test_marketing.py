"""Marketing messages at enqueue: the purpose, the STOP mention, senders that are phone numbers,
and the gateway's marketing-only accounts. Transactional messages are untouched by all of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis

from producers.config import ProducerSettings, read_stop_rule
from producers.contract import parse_request
from producers.enqueue import Producer
from producers.errors import ConfigError, InvalidRequestError
from producers.marketing import STOP_MENTION, Purpose, StopPolicy, StopRule, carries_mention
from producers.store import MessageStore
from tests.helpers.gateway import SHOP, answer, json_flux, post
from tests.helpers.processes import Workers
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider
from worker.settings import ProducerAccount, Secret, Settings, read_producers


def _request(**fields: object) -> dict[str, object]:
    return {"key": "m1", "to": ["0612345678"], "text": "Soldes -20% ce week-end", **fields}


def test_a_marketing_text_with_a_custom_sender_gets_the_mention_counted_in_its_segments() -> None:
    text = "x" * 150
    request = parse_request(_request(text=text, sender="Shop", purpose="marketing"))

    assert request.purpose is Purpose.MARKETING
    assert request.text == f"{text}\n{STOP_MENTION}"
    assert request.segments == 2  # 150 + 1 + 13 = 164 septets: two parts
    assert request.to_stored()["purpose"] == "marketing"


def test_transactional_texts_and_the_short_code_sender_are_left_alone() -> None:
    transactional = parse_request(_request(text="Votre code : 1234", sender="Shop"))
    no_sender = parse_request(_request(purpose="marketing"))

    assert transactional.purpose is Purpose.TRANSACTIONAL
    assert transactional.text == "Votre code : 1234"
    assert "purpose" not in transactional.to_stored()
    assert no_sender.text == "Soldes -20% ce week-end"  # sent from 36180, which takes the STOP


@pytest.mark.parametrize(
    "text", ["Promo ! Stop au 36180", "Promo STOP  AU   36180 merci", "stop au 36180: promo"]
)
def test_a_mention_already_there_is_not_added_twice(text: str) -> None:
    request = parse_request(_request(text=text, sender="Shop", purpose="marketing"))

    assert request.text == text


def test_the_refuse_policy_and_the_length_limit_name_the_text() -> None:
    refuse = StopRule(policy=StopPolicy.REFUSE)

    with pytest.raises(InvalidRequestError) as refused:
        parse_request(_request(sender="Shop", purpose="marketing"), stop=refuse)
    with pytest.raises(InvalidRequestError) as too_long:
        parse_request(_request(text="a" * 630, sender="Shop", purpose="marketing"))

    assert refused.value.field == "text"
    assert refused.value.reason == (
        'a marketing message with a custom sender must carry "STOP au 36180" (the free opt-out '
        "French law requires; operators hide a custom sender without it)"
    )
    assert too_long.value.field == "text"
    assert too_long.value.reason == (
        'is 644 characters with "STOP au 36180" appended (a marketing message with a custom '
        "sender needs it); AllMySMS accepts at most 640"
    )


@pytest.mark.parametrize("sender", ["0612345678", "+33612345678", "36180", "06 12 34 56 78"])
def test_a_sender_that_is_a_phone_number_is_refused(sender: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parse_request(_request(sender=sender))

    assert refused.value.field == "sender"
    assert refused.value.reason.startswith(
        "must not be a phone number or short code (ARCEP decision 2022-1583"
    )


@pytest.mark.parametrize("purpose", ["promo", "", 1, ["marketing"]])
def test_an_unknown_purpose_is_refused(purpose: object) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parse_request(_request(purpose=purpose))

    assert refused.value.as_dict() == {
        "field": "purpose",
        "reason": "must be one of transactional | marketing",
    }


@given(st.text(max_size=300))
def test_carries_mention_after_appending_whatever_the_text(text: str) -> None:
    appended = f"{text}\n{STOP_MENTION}"

    assert carries_mention(appended, STOP_MENTION)


def test_stop_settings_are_read_and_checked() -> None:
    custom = read_stop_rule(
        {"SMSQ_MARKETING_STOP_MENTION": "  STOP  au 36105 ", "SMSQ_MARKETING_STOP_POLICY": "Refuse"}
    )

    assert custom == StopRule("STOP au 36105", StopPolicy.REFUSE)
    assert read_stop_rule({}) == StopRule(STOP_MENTION, StopPolicy.APPEND)
    with pytest.raises(ConfigError) as bad:
        read_stop_rule({"SMSQ_MARKETING_STOP_POLICY": "warn"})
    assert str(bad.value) == "SMSQ_MARKETING_STOP_POLICY: must be one of append | refuse"
    with pytest.raises(ConfigError) as long:
        read_stop_rule({"SMSQ_MARKETING_STOP_MENTION": "x" * 41})
    assert str(long.value) == "SMSQ_MARKETING_STOP_MENTION: must be at most 40 characters"


def test_the_producer_stores_the_mention_and_the_purpose(
    producer: Producer, store: MessageStore
) -> None:
    producer.enqueue(_request(key="promo-1", sender="Shop", purpose="marketing"))
    producer.enqueue(_request(key="code-1", sender="Shop", text="Code 1234"))

    promo, code = store.get("promo-1"), store.get("code-1")
    assert promo is not None
    assert code is not None
    assert promo.request["text"] == f"Soldes -20% ce week-end\n{STOP_MENTION}"
    assert promo.request["purpose"] == "marketing"
    assert code.request["text"] == "Code 1234"
    assert "purpose" not in code.request


def test_producer_accounts_may_be_marketing_only() -> None:
    accounts = read_producers(
        {
            "SMSQ_PRODUCERS": '[{"login": "promo", "api_key": "promo-key-0123456789", '
            '"purpose": "marketing"}, {"login": "app", "api_key": "app-key-0123456789ab"}]'
        }
    )

    assert [(a.login, a.purpose) for a in accounts] == [("promo", Purpose.MARKETING), ("app", None)]
    with pytest.raises(ConfigError) as bad:
        read_producers(
            {
                "SMSQ_PRODUCERS": '[{"login": "promo", "api_key": "promo-key-0123456789", '
                '"purpose": "ads"}]'
            }
        )
    assert str(bad.value) == (
        "SMSQ_PRODUCERS: entry 0 (promo): purpose must be one of transactional | marketing"
    )


PROMO = ("promo", "promo-key-5d1c0b9a8e7f")


@pytest.fixture
def gateway(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    settings = Settings(
        producer=ProducerSettings(redis_url=redis_server.url),
        producers=(
            ProducerAccount(SHOP[0], Secret(SHOP[1])),
            ProducerAccount(PROMO[0], Secret(PROMO[1]), purpose=Purpose.MARKETING),
        ),
    )
    with running(create_app(settings, redis)) as base_url:
        yield base_url + "/http/9.0/sendSms/"


def test_the_gateway_applies_the_purpose_of_the_account_or_of_the_request(
    gateway: str, store: MessageStore
) -> None:
    promo = answer(post(gateway, json_flux(TPOA="Shop", CLIMSGID="p1"), account=PROMO))
    asked = answer(post(gateway, json_flux(TPOA="Shop", CLIMSGID="s1"), purpose="marketing"))
    plain = answer(post(gateway, json_flux(TPOA="Shop", CLIMSGID="s2")))
    refused = answer(
        post(gateway, json_flux(CLIMSGID="p2"), account=PROMO, purpose="transactional")
    )

    records = [store.get_by_id(str(a["campaignId"])) for a in (promo, asked, plain)]
    assert [r.request["text"] if r else None for r in records] == [
        f"Bonjour\n{STOP_MENTION}",
        f"Bonjour\n{STOP_MENTION}",
        "Bonjour",
    ]
    assert [r.request.get("purpose") if r else None for r in records] == [
        "marketing",
        "marketing",
        None,
    ]
    assert refused == {
        "status": 106,
        "statusText": "purpose: this account may only send marketing messages",
    }


def test_a_marketing_campaign_file_gets_the_purpose_and_the_mention(
    store: MessageStore, workers: Workers, tmp_path: Path
) -> None:
    file = tmp_path / "promo.csv"
    file.write_text("phone\n0612345678\n0612345679\n", encoding="utf-8")

    done = workers.smsq(
        "enqueue",
        "--file",
        str(file),
        "--text",
        "Soldes ce week-end",
        "--key",
        "winter",
        "--sender",
        "Shop",
        "--purpose",
        "marketing",
    )
    wrong = workers.smsq(
        "enqueue", "--file", str(file), "--text", "x", "--key", "w2", "--purpose", "ads"
    )

    assert done.returncode == 0, done.stderr
    record = store.get("winter:1")
    assert record is not None
    assert record.request["purpose"] == "marketing"
    assert record.request["text"] == f"Soldes ce week-end\n{STOP_MENTION}"
    assert wrong.returncode == 1
    assert json.loads(wrong.stdout)["error"] == {
        "field": "purpose",
        "reason": "must be one of transactional | marketing",
    }


def test_the_dry_run_costs_a_marketing_text_with_its_mention(
    sandbox: SandboxProvider, workers: Workers
) -> None:
    """150 characters fit one SMS; with "STOP au 36180" appended they take two."""
    lines = "\n".join(
        json.dumps({"key": key, "to": ["0612345678"], "text": "x" * 150, "sender": "Shop", **extra})
        for key, extra in (("t", {}), ("m", {"purpose": "marketing"}))
    )

    run = workers.smsq("enqueue", "--dry-run", "--json", stdin=lines + "\n")

    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert [(r["key"], r["nb_sms"]) for r in answer["requests"]] == [("t", 1), ("m", 2)]
    assert [r["data"]["MESSAGE"][-13:] for r in sandbox.requests()] == ["x" * 13, STOP_MENTION]
