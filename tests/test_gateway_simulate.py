"""The gateway's simulateCampaign and ``producers.estimate()``: a producer asks the cost through
smsq (its own gateway key; smsq's AllMySMS credentials), over real sockets to the sandbox."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog.testing
from redis import Redis

import producers
from producers.errors import ConfigError, InvalidRequestError, NotSentError, OutcomeUnknownError
from producers.simulation import Simulation
from tests.helpers.gateway import PHONE, SHOP, gateway_settings, json_flux, post
from tests.helpers.processes import API_KEY, LOGIN
from worker.allmysms.flux import STATUS_TEXTS
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.gateway.simulate import NO_CREDENTIALS_TEXT
from worker.sandbox import SandboxProvider
from worker.settings import Secret, Settings


REQUEST = {
    "key": "order-42",
    "text": "Bonjour #param_1#",
    "to": [
        {"phone": "0612345678", "params": ["Ann"]},
        {"phone": "0612345679", "params": ["x" * 200]},
        {"phone": "0630999999", "params": ["Bob"]},
        {"phone": "0140000000", "params": ["Land"]},
    ],
}


def _settings(redis_url: str, base_url: str, **changes: Any) -> Settings:
    return dataclasses.replace(
        gateway_settings(redis_url),
        base_url=base_url,
        login=LOGIN,
        api_key=Secret(API_KEY),
        **changes,
    )


@pytest.fixture
def gateway(redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider) -> Iterator[str]:
    """The gateway with smsq's AllMySMS credentials for the sandbox; yields its base URL."""
    app = create_app(_settings(redis_server.url, sandbox.base_url), redis)
    with running(app) as base_url:
        yield base_url + "/http/9.0"


def _estimate(gateway: str, request: Any = None, **kwargs: Any) -> Simulation:
    kwargs.setdefault("login", SHOP[0])
    kwargs.setdefault("api_key", SHOP[1])
    return producers.estimate(
        REQUEST if request is None else request, gateway_url=gateway, **kwargs
    )


def _messages(redis: Redis) -> list[str]:
    """Message records and RQ keys: what an enqueue writes."""
    names = [k.decode() if isinstance(k, bytes) else str(k) for k in redis.keys("*")]
    return [name for name in names if name.startswith(("smsq:msg:", "rq:"))]


def test_producer_estimate_asks_allmysms_through_the_gateway_and_enqueues_nothing(
    redis: Redis, sandbox: SandboxProvider, gateway: str
) -> None:
    """The gateway asks simulateCampaign with smsq's credentials; the landline the contract
    drops is listed after AllMySMS's invalid number; no message exists afterwards."""
    simulation = _estimate(gateway)

    assert simulation == Simulation(
        status=113,
        status_text=STATUS_TEXTS[113],
        nb_sms=3,
        nb_credits=45,
        nb_contacts=2,
        invalid_numbers=["33630999999", "0140000000"],
    )
    assert simulation.would_send
    [asked] = sandbox.requests()
    assert (asked["endpoint"], asked["login"], asked["api_key_ok"]) == (
        "simulateCampaign",
        LOGIN,
        True,
    )
    assert [s["MOBILEPHONE"] for s in asked["data"]["SMS"]] == [
        "33612345678",
        "33612345679",
        "33630999999",
    ]
    assert _messages(redis) == []


def test_the_gateway_answers_in_allmysms_simulate_shape(
    sandbox: SandboxProvider, gateway: str
) -> None:
    """An AllMySMS client's own request (form, JSON flux) gets AllMySMS's keys, counts as ints;
    an XML flux gets XML."""
    response = post(f"{gateway}/simulateCampaign/", json_flux())
    assert response.status_code == 200
    assert json.loads(response.text) == {
        "status": 100,
        "statusText": STATUS_TEXTS[100],
        "invalidNumbers": "",
        "nbCredits": 15,
        "nbContacts": 1,
        "nbSms": 1,
    }
    xml = f"<DATA><MESSAGE>Bonjour</MESSAGE><SMS><MOBILEPHONE>{PHONE}</MOBILEPHONE></SMS></DATA>"
    as_xml = post(f"{gateway.removesuffix('/http/9.0')}/simulateCampaign", xml, returnformat=None)
    assert as_xml.headers["content-type"] == "text/xml; charset=UTF-8"
    assert "<nbSms>1</nbSms>" in as_xml.text
    assert API_KEY not in response.text + as_xml.text


def test_a_campaign_larger_than_a_part_is_asked_part_by_part(
    redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider
) -> None:
    settings = _settings(redis_server.url, sandbox.base_url)
    settings = dataclasses.replace(
        settings, producer=dataclasses.replace(settings.producer, chunk_recipients=2)
    )
    with running(create_app(settings, redis)) as base_url:
        simulation = _estimate(base_url + "/http/9.0")
    assert (simulation.status, simulation.nb_sms, simulation.nb_contacts) == (113, 3, 2)
    assert [len(r["data"]["SMS"]) for r in sandbox.requests()] == [2, 1]


@pytest.mark.parametrize(
    "sms_data",
    [
        json_flux(MESSAGE=""),
        json_flux(MESSAGE="y" * 641),
        json_flux(SMS=[{"MOBILEPHONE": "hello"}]),
        json_flux(TPOA="1bad"),
        "not a flux",
        "",
    ],
)
def test_a_bad_flux_gets_the_answer_the_gateways_sendsms_gives(
    redis: Redis, sandbox: SandboxProvider, gateway: str, sms_data: str
) -> None:
    """Refused by the gateway itself, exactly as its sendSms refuses it; AllMySMS is not asked."""
    simulated = post(f"{gateway}/simulateCampaign/", sms_data)
    sent = post(f"{gateway}/sendSms/", sms_data)
    assert simulated.status_code == sent.status_code == 200
    assert json.loads(simulated.text) == json.loads(sent.text)
    assert json.loads(simulated.text)["status"] != 100
    assert sandbox.requests() == []
    assert _messages(redis) == []


def test_wrong_producer_credentials_are_102_and_a_config_error(
    sandbox: SandboxProvider, gateway: str
) -> None:
    wrong = post(f"{gateway}/simulateCampaign/", json_flux(), account=(SHOP[0], "nope" * 5))
    assert json.loads(wrong.text) == {"status": 102, "statusText": STATUS_TEXTS[102]}
    with pytest.raises(ConfigError) as caught:
        _estimate(gateway, api_key="wrong-key-0123456789")
    assert str(caught.value) == "api_key: the smsq gateway refused this login and api_key (102)"
    assert sandbox.requests() == []


def test_a_gateway_without_allmysms_credentials_answers_501(
    redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider
) -> None:
    with running(create_app(gateway_settings(redis_server.url), redis)) as base_url:
        raw = post(f"{base_url}/http/9.0/simulateCampaign/", json_flux())
        with pytest.raises(OutcomeUnknownError) as caught:
            _estimate(base_url + "/http/9.0")
    assert raw.status_code == 501
    assert json.loads(raw.text) == {"status": 501, "statusText": NO_CREDENTIALS_TEXT}
    assert str(caught.value) == f"the smsq gateway answered HTTP 501: {NO_CREDENTIALS_TEXT}"
    assert sandbox.requests() == []


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        (
            {"action": "html502"},
            "AllMySMS simulateCampaign could not be asked: AllMySMS simulateCampaign answered "
            "HTTP 502; nothing was sent",
        ),
        (
            {"action": "status", "status": 102},
            "AllMySMS refused smsq's own credentials (status 102); nothing was sent",
        ),
    ],
)
def test_allmysms_failing_is_a_502_naming_why(
    sandbox: SandboxProvider, gateway: str, fault: dict[str, Any], text: str
) -> None:
    sandbox.add_fault({"endpoint": "simulateCampaign", **fault})
    response = post(f"{gateway}/simulateCampaign/", json_flux())
    assert response.status_code == 502
    assert json.loads(response.text) == {"status": 502, "statusText": text}


def test_allmysms_unreachable_is_a_502(redis_server: RedisServer, redis: Redis) -> None:
    app = create_app(_settings(redis_server.url, "http://127.0.0.1:9/http/9.0"), redis)
    with running(app) as base_url, pytest.raises(OutcomeUnknownError) as caught:
        _estimate(base_url + "/http/9.0")
    assert str(caught.value) == (
        "the smsq gateway answered HTTP 502: AllMySMS simulateCampaign could not be asked: "
        "ConnectError: AllMySMS simulateCampaign was not reached; nothing was sent"
    )


def test_estimate_checks_the_request_before_asking(gateway: str, sandbox: SandboxProvider) -> None:
    with pytest.raises(InvalidRequestError, match=r"^text: must not be empty$"):
        _estimate(gateway, {**REQUEST, "text": ""})
    assert sandbox.requests() == []


def test_estimate_of_an_unreachable_gateway_is_not_sent() -> None:
    with pytest.raises(NotSentError, match=r"^ConnectError: the smsq gateway was not reached$"):
        _estimate("http://127.0.0.1:9/http/9.0")


def test_estimate_reads_a_broken_gateway_answer_clearly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"status": 100}')

    with pytest.raises(
        OutcomeUnknownError,
        match=r"^AllMySMS simulateCampaign answered status 100 without a whole non-negative nbSms$",
    ):
        _estimate("http://gateway.test/http/9.0", transport=httpx.MockTransport(handler))


def test_simulations_count_against_the_producers_rate(
    redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider
) -> None:
    """A simulation is a request like a send: over the login's rate it is 429, AllMySMS unasked."""
    settings = _settings(
        redis_server.url, sandbox.base_url, gateway_rate_per_s=0.01, gateway_rate_burst=1
    )
    with running(create_app(settings, redis)) as base_url:
        first = post(f"{base_url}/http/9.0/simulateCampaign/", json_flux())
        second = post(f"{base_url}/http/9.0/simulateCampaign/", json_flux())
    assert first.status_code == 200
    assert second.status_code == 429
    assert "Retry-After" in second.headers
    assert len(sandbox.requests()) == 1


def test_the_simulated_log_line_names_counts_not_content(
    sandbox: SandboxProvider, gateway: str
) -> None:
    """One ``gateway.simulated`` line: producer, status and counts; no number, text or key."""
    with structlog.testing.capture_logs() as logs:
        _estimate(gateway)
    assert [e for e in logs if e["event"] == "gateway.simulated"] == [
        {
            "event": "gateway.simulated",
            "log_level": "info",
            "producer": SHOP[0],
            "status": 113,
            "recipients": 3,
            "refused": 0,
            "parts": 1,
            "nb_sms": 3,
            "nb_credits": 45,
        }
    ]
    shown = repr(logs)
    assert "0612345678" not in shown
    assert "33612345678" not in shown
    assert "Bonjour" not in shown
    assert API_KEY not in shown
    assert SHOP[1] not in shown
