"""The gateway's getInfo and getBlacklist: smsq's own AllMySMS account, asked with smsq's
credentials, never showing the account's apiKey or personal fields. Over real sockets: the
gateway under uvicorn, the sandbox as AllMySMS."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import pytest
from redis import Redis

from tests.helpers.gateway import BLOG, SHOP, gateway_settings
from tests.helpers.gateway_api import api_settings, ask, call
from tests.helpers.processes import API_KEY
from tests.helpers.redis_dump import redis_dump
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider
from worker.store.credits import CreditsStore


@pytest.fixture
def base(redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider) -> Iterator[str]:
    """The gateway (AllMySMS = the sandbox) under uvicorn; yields its base URL."""
    with running(create_app(api_settings(redis_server.url, sandbox), redis)) as base_url:
        yield base_url


def endpoints(sandbox: SandboxProvider) -> list[str]:
    return [r.get("endpoint", "sendSms") for r in sandbox.requests()]


def test_get_info_answers_status_and_credits_only_and_stores_the_balance(
    base: str, redis: Redis, sandbox: SandboxProvider
) -> None:
    """getInfo answers status and credits only, stores the balance and answers the next call from
    it."""
    sandbox.set_credits(4321)

    first = call(base, "getInfo")
    again = ask(base, "getInfo", BLOG)

    assert first.status_code == 200
    assert json.loads(first.text) == {"status": "Active Account", "credits": "4321"}
    for secret in ("***", API_KEY, "Sandbox", "sandbox@example.invalid", "apiKey", "email"):
        assert secret not in first.text
    assert again == {"status": "Active Account", "credits": "4321"}
    assert endpoints(sandbox) == ["getInfo"]  # the second is answered from the store
    balance = CreditsStore(redis).get()
    assert balance is not None
    assert (balance.credits, balance.source) == (4321, "getInfo")
    dump = redis_dump(redis)
    for secret in (API_KEY, "sandbox@example.invalid", "Sandbox"):
        assert secret.encode() not in dump


def test_get_info_asks_again_once_the_stored_balance_is_old(
    base: str, redis: Redis, sandbox: SandboxProvider
) -> None:
    """A stored balance older than INFO_FRESH_S is asked again."""
    CreditsStore(redis).record(99, source="sendSms", at=time.time() - 3600)
    sandbox.set_credits(150)

    assert ask(base, "getInfo") == {"status": "Active Account", "credits": "150"}
    assert endpoints(sandbox) == ["getInfo"]


def test_get_info_from_a_fresh_balance_needs_no_credentials(
    redis_server: RedisServer, redis: Redis
) -> None:
    """Without ALLMYSMS_* getInfo and getBlacklist are 501, but getInfo answers a fresh balance."""
    with running(create_app(gateway_settings(redis_server.url), redis)) as base:
        missing = call(base, "getInfo")
        blacklist = call(base, "getBlacklist", returnformat="xml")
        CreditsStore(redis).record(1500, source="sendSms")
        known = ask(base, "getInfo")

    assert missing.status_code == 501
    assert json.loads(missing.text) == {
        "status": 501,
        "statusText": "getInfo is not available: this gateway has no AllMySMS credentials "
        "(ALLMYSMS_LOGIN, ALLMYSMS_API_KEY)",
    }
    assert blacklist.status_code == 501
    assert blacklist.text == (
        '<?xml version="1.0" encoding="UTF-8"?><response><status>501</status><statusText>'
        "getBlacklist is not available: this gateway has no AllMySMS credentials "
        "(ALLMYSMS_LOGIN, ALLMYSMS_API_KEY)</statusText></response>"
    )
    assert known == {"status": "Active Account", "credits": "1500"}


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        (
            {"action": "html502"},
            "AllMySMS getInfo could not be asked: AllMySMS getInfo answered HTTP 502",
        ),
        (
            {"action": "status", "status": 102},
            "AllMySMS getInfo could not be asked: AllMySMS getInfo answered without a numeric "
            "credits (status 102)",
        ),
    ],
)
def test_get_info_failures_are_502_and_name_what_went_wrong(
    base: str, redis: Redis, sandbox: SandboxProvider, fault: dict[str, object], text: str
) -> None:
    """A 502 or a refusal of smsq's credentials is a 502 naming it, and nothing is stored."""
    sandbox.add_fault({"endpoint": "getInfo", **fault})

    failed = call(base, "getInfo")

    assert failed.status_code == 502
    assert json.loads(failed.text) == {"status": 502, "statusText": text}
    assert CreditsStore(redis).get() is None


def test_get_info_with_allmysms_unreachable_is_502(
    redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider
) -> None:
    """AllMySMS unreachable is a 502 naming the endpoint, never a traceback."""
    settings = dataclasses.replace(
        api_settings(redis_server.url, sandbox), base_url="http://127.0.0.1:9/http/9.0"
    )
    with running(create_app(settings, redis)) as base:
        failed = call(base, "getInfo")
        blacklist = call(base, "getBlacklist")

    assert failed.status_code == 502
    assert json.loads(failed.text) == {
        "status": 502,
        "statusText": "AllMySMS getInfo could not be asked: ConnectError: AllMySMS getInfo "
        "was not reached",
    }
    assert blacklist.status_code == 502
    assert json.loads(blacklist.text)["statusText"] == (
        "AllMySMS getBlacklist could not be asked: ConnectError: AllMySMS getBlacklist was not "
        "reached"
    )


def test_get_blacklist_is_proxied_as_allmysms_answers_it(
    base: str, sandbox: SandboxProvider
) -> None:
    """getBlacklist answers AllMySMS's STOP list as it is, asked with smsq's credentials, json or
    xml."""
    sandbox.blacklist({"phoneNumber": "33612345678", "receptionDate": "2026-12-01 09:00:00"})
    sandbox.blacklist(
        {
            "phoneNumber": "33698765432",
            "comment": "manual unsubscribe",
            "receptionDate": "2026-12-02 10:00:00",
        }
    )

    shop = ask(base, "getBlacklist")
    blog = call(base, "getBlacklist", BLOG, method="GET", path="/{}", returnformat="xml")

    assert shop == {
        "blacklist": [
            {
                "phoneNumber": "33612345678",
                "comment": "stop",
                "receptionDate": "2026-12-01 09:00:00",
            },
            {
                "phoneNumber": "33698765432",
                "comment": "manual unsubscribe",
                "receptionDate": "2026-12-02 10:00:00",
            },
        ]
    }
    assert blog.text == (
        '<?xml version="1.0" encoding="UTF-8"?><response><blacklist>'
        "<entry><phoneNumber>33612345678</phoneNumber><comment>stop</comment>"
        "<receptionDate>2026-12-01 09:00:00</receptionDate></entry>"
        "<entry><phoneNumber>33698765432</phoneNumber><comment>manual unsubscribe</comment>"
        "<receptionDate>2026-12-02 10:00:00</receptionDate></entry></blacklist></response>"
    )
    assert endpoints(sandbox) == ["getBlacklist", "getBlacklist"]
    assert all(r["api_key_ok"] for r in sandbox.requests())


def test_get_blacklist_when_allmysms_refuses_smsqs_credentials_is_502(
    base: str, sandbox: SandboxProvider
) -> None:
    """AllMySMS refusing smsq's credentials is a 502, never a 102."""
    sandbox.add_fault({"endpoint": "getBlacklist", "action": "status", "status": 102})

    failed = call(base, "getBlacklist")

    assert failed.status_code == 502
    assert json.loads(failed.text) == {
        "status": 502,
        "statusText": "AllMySMS getBlacklist could not be asked: AllMySMS getBlacklist "
        "answered without a blacklist (status 102)",
    }


def test_a_bad_login_is_102_and_asks_nothing(base: str, sandbox: SandboxProvider) -> None:
    """A bad producer login is 102 and AllMySMS is not asked."""
    info = ask(base, "getInfo", (SHOP[0], "wrong-key-0000000"))
    blacklist = ask(base, "getBlacklist", ("nobody", SHOP[1]))

    assert (info["status"], blacklist["status"]) == (102, 102)
    assert sandbox.requests() == []
