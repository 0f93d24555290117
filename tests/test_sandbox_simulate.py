"""The sandbox's simulateCampaign and getBlacklist, and sendSms refusing blacklisted numbers, over
real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from worker.allmysms.flux import STATUS_TEXTS
from worker.sandbox import SandboxProvider


LOGIN = "demo"
API_KEY = "sandbox-key"
LONG = "x" * 200
"""A PARAM_1 that makes "Bonjour #param_1#" two GSM-7 parts."""


@pytest.fixture(name="provider")
def _provider() -> Iterator[SandboxProvider]:
    provider = SandboxProvider(login=LOGIN, api_key=API_KEY, credits=1000)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(name="control")
def _control(provider: SandboxProvider) -> str:
    return f"http://127.0.0.1:{provider.port}/_sandbox"


def _post(
    provider: SandboxProvider, endpoint: str, sms_data: str | None = None, **extra: str
) -> httpx.Response:
    params = {"login": LOGIN, "apiKey": API_KEY, **extra}
    if sms_data is not None:
        params["smsData"] = sms_data
    return httpx.post(f"{provider.base_url}/{endpoint}/", data=params)


def _flux(*phones: str, message: str = "Bonjour #param_1#", **data: Any) -> str:
    entries = [{"MOBILEPHONE": phone, "PARAM_1": "Ann"} for phone in phones]
    return json.dumps({"DATA": {"MESSAGE": message, "SMS": entries, **data}})


def _credits(provider: SandboxProvider) -> int:
    return int(_post(provider, "getInfo").json()["credits"])


def test_simulate_counts_parts_credits_and_refusals_without_sending(
    provider: SandboxProvider, control: str
) -> None:
    """nbSms counts each valid recipient's parts, nbCredits 15 per part, invalidNumbers lists the
    invalid and blacklisted numbers as sent; no credit, message or receipt, one log entry."""
    provider.set_receipts_url("http://127.0.0.1:9/receipts", delay_ms=0)
    added = httpx.post(f"{control}/blacklist", json={"phoneNumber": "+33 6 11 22 33 44"})
    assert added.status_code == 201
    flux = json.dumps(
        {
            "DATA": {
                "MESSAGE": "Bonjour #param_1#",
                "SMS": [
                    {"MOBILEPHONE": "0612345678", "PARAM_1": "Ann"},
                    {"MOBILEPHONE": "33612345679", "PARAM_1": LONG},
                    {"MOBILEPHONE": "33600999999", "PARAM_1": "Bob"},
                    {"MOBILEPHONE": "0611223344", "PARAM_1": "Eve"},
                    {"MOBILEPHONE": "33600888888", "PARAM_1": "Zoe"},
                ],
            }
        }
    )

    answer = _post(provider, "simulateCampaign", flux)

    assert answer.status_code == 200
    assert answer.json() == {
        "status": 113,
        "statusText": STATUS_TEXTS[113],
        "invalidNumbers": "33600999999|0611223344|33600888888",
        "nbCredits": 45,
        "nbContacts": 2,
        "nbSms": 3,
    }
    assert _credits(provider) == 1000
    assert provider.receipts.pending() == 0
    assert provider.receipts.log() == []
    logged = provider.requests()
    assert [(r.get("endpoint", "sendSms"), r["status"]) for r in logged] == [
        ("simulateCampaign", 113),
        ("getInfo", "Active Account"),
    ]
    assert logged[0]["sms_ids"] == []
    assert logged[0]["data"]["SMS"][0] == {"MOBILEPHONE": "0612345678", "PARAM_1": "Ann"}


def test_simulate_all_valid_is_100_and_a_future_date_101(provider: SandboxProvider) -> None:
    """Only valid numbers: 100; a DATE ahead (Paris time): 101; the counts are JSON ints."""
    now = _post(provider, "simulateCampaign", _flux("33612345678", "33612345679")).json()
    assert now == {
        "status": 100,
        "statusText": STATUS_TEXTS[100],
        "invalidNumbers": "",
        "nbCredits": 30,
        "nbContacts": 2,
        "nbSms": 2,
    }
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")
    deferred = _post(provider, "simulateCampaign", _flux("33612345678", DATE=later)).json()
    assert (deferred["status"], deferred["nbSms"]) == (101, 1)


def test_simulate_without_a_valid_number_is_114_listing_them(provider: SandboxProvider) -> None:
    """No recipient left: 114, counts 0, the refused numbers still listed."""
    answer = _post(provider, "simulateCampaign", _flux("33600999999", "12")).json()
    assert answer == {
        "status": 114,
        "statusText": STATUS_TEXTS[114],
        "invalidNumbers": "33600999999|12",
        "nbCredits": 0,
        "nbContacts": 0,
        "nbSms": 0,
    }


@pytest.mark.parametrize(
    ("sms_data", "status"),
    [
        (None, 105),
        ("   ", 105),
        ("not a flux", 106),
        ('{"DATA": {"MESSAGE": "x"}}', 107),
        ('{"DATA": {"MESSAGE": "x", "SMS": [{"PARAM_1": "a"}]}}', 107),
        (_flux("33612345678", message=" "), 110),
        (_flux("33612345678", message="y" * 641), 111),
        (_flux("33612345678", DATE="tomorrow"), 115),
        ("<DATA><MESSAGE>x</MESSAGE></DATA>", 107),
    ],
)
def test_simulate_refuses_a_bad_flux_with_the_status_sendsms_gives(
    provider: SandboxProvider, sms_data: str | None, status: int
) -> None:
    """The same flux gets the same status from simulateCampaign as from sendSms."""
    simulated = _post(provider, "simulateCampaign", sms_data, returnformat="json")
    sent = _post(provider, "sendSms", sms_data, returnformat="json")
    assert simulated.json() == {"status": status, "statusText": STATUS_TEXTS[status]}
    assert sent.json() == simulated.json()


def test_simulate_with_wrong_credentials_is_102(provider: SandboxProvider) -> None:
    answer = httpx.post(
        f"{provider.base_url}/simulateCampaign",
        data={"login": LOGIN, "apiKey": "nope", "smsData": _flux("33612345678")},
    )
    assert answer.json()["status"] == 102
    assert provider.requests()[0]["api_key_ok"] is False


def test_simulate_answers_xml_to_an_xml_flux(provider: SandboxProvider) -> None:
    xml = "<DATA><MESSAGE>hi</MESSAGE><SMS><MOBILEPHONE>33612345678</MOBILEPHONE></SMS></DATA>"
    answer = _post(provider, "simulateCampaign", xml)
    assert answer.headers["content-type"] == "text/xml; charset=UTF-8"
    assert "<nbSms>1</nbSms>" in answer.text
    assert "<nbCredits>15</nbCredits>" in answer.text


def test_simulate_faults_are_its_own(provider: SandboxProvider, control: str) -> None:
    """A simulateCampaign fault meets only simulateCampaign (and may match its flux); a sendSms
    fault never meets a simulation."""
    provider.add_fault({"action": "status", "status": 103})
    provider.add_fault(
        {
            "endpoint": "simulateCampaign",
            "action": "status",
            "status": 104,
            "match": {"phone": "33612345679"},
        }
    )
    fault = {"endpoint": "simulateCampaign", "action": "html502"}
    assert httpx.post(f"{control}/faults", json=fault).status_code == 201

    assert _post(provider, "simulateCampaign", _flux("33612345679")).json()["status"] == 104
    broken = _post(provider, "simulateCampaign", _flux("33612345678"))
    assert broken.status_code == 502
    assert _post(provider, "simulateCampaign", _flux("33612345678")).json()["status"] == 100
    assert _post(provider, "sendSms", _flux("33612345678")).json()["status"] == 103
    assert [(r.get("endpoint", "sendSms"), r["fault"]) for r in provider.requests()] == [
        ("simulateCampaign", "status"),
        ("simulateCampaign", "html502"),
        ("simulateCampaign", None),
        ("sendSms", "status"),
    ]


@pytest.mark.parametrize("action", ["drop", "not_http", "truncated", "busy"])
def test_simulate_fault_actions_apply(provider: SandboxProvider, action: str) -> None:
    provider.add_fault({"endpoint": "simulateCampaign", "action": action})
    try:
        answer = _post(provider, "simulateCampaign", _flux("33612345678"))
    except httpx.TransportError:
        assert action in ("drop", "not_http")
    else:
        assert action in ("truncated", "busy")
        if action == "busy":
            assert answer.status_code == 503
        else:
            with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
                json.loads(answer.content)
    assert provider.requests()[0]["fault"] == action


def test_blacklist_control_adds_and_get_blacklist_lists(
    provider: SandboxProvider, control: str
) -> None:
    """Entries are normalised to international digits, comment defaults to stop, the date to
    now; getBlacklist answers them in AllMySMS's shape, and logs the request."""
    first = httpx.post(
        f"{control}/blacklist",
        json={
            "phoneNumber": "06 12 34 56 78",
            "comment": "manual unsubscribe",
            "receptionDate": "2026-11-30 18:05:00",
        },
    )
    assert first.status_code == 201
    assert first.json() == {
        "phoneNumber": "33612345678",
        "comment": "manual unsubscribe",
        "receptionDate": "2026-11-30 18:05:00",
    }
    second = provider.blacklist({"phoneNumber": "+33611223344"})
    assert second["comment"] == "stop"
    datetime.strptime(second["receptionDate"], "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007

    answer = _post(provider, "getBlacklist")

    assert answer.status_code == 200
    assert answer.json() == {"blacklist": [first.json(), second]}
    assert httpx.get(f"{control}/blacklist").json() == [first.json(), second]
    assert provider.requests() == [
        {
            "seq": 1,
            "at": provider.requests()[0]["at"],
            "endpoint": "getBlacklist",
            "login": LOGIN,
            "api_key_ok": True,
            "status": None,
            "fault": None,
        }
    ]


def test_get_blacklist_needs_the_credentials_and_takes_faults(provider: SandboxProvider) -> None:
    provider.blacklist({"phoneNumber": "33612345678"})
    wrong = httpx.get(
        f"{provider.base_url}/getBlacklist", params={"login": LOGIN, "apiKey": "nope"}
    )
    assert wrong.json() == {"status": 102, "statusText": STATUS_TEXTS[102]}
    assert API_KEY not in wrong.text
    provider.add_fault({"endpoint": "getBlacklist", "action": "html502"})
    assert _post(provider, "getBlacklist").status_code == 502
    assert len(_post(provider, "getBlacklist").json()["blacklist"]) == 1


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({}, "phoneNumber: required, a phone number"),
        ({"phoneNumber": "hello"}, "phoneNumber: is not a valid number"),
        ({"phoneNumber": "33612345678", "why": "x"}, "why: unknown key (allowed: comment, "),
        ({"phoneNumber": "33612345678", "comment": ""}, "comment: must be a string of 1 to 200"),
        (
            {"phoneNumber": "33612345678", "receptionDate": "2026-11-30"},
            "receptionDate: must be YYYY-MM-DD HH:MM:SS",
        ),
        ([], "blacklist: expected an object"),
    ],
)
def test_blacklist_control_refuses_a_bad_entry(
    provider: SandboxProvider, control: str, entry: Any, error: str
) -> None:
    answer = httpx.post(f"{control}/blacklist", json=entry)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(error)
    assert provider.blacklisted() == []


def test_send_refuses_a_blacklisted_number_inside_a_100(
    provider: SandboxProvider, control: str
) -> None:
    """A blacklisted number is listed in invalidNumbers as written, the answer stays 100, only
    the others get an smsId and cost credits; after DELETE it is sent again."""
    provider.blacklist({"phoneNumber": "33612345678"})

    answer = _post(provider, "sendSms", _flux("06 12 34 56 78", "33612345679")).json()

    assert answer["status"] == 100
    assert answer["invalidNumbers"] == "06 12 34 56 78"
    assert [s["phoneNumber"] for s in answer["smsIds"]] == ["33612345679"]
    assert (answer["creditsUsed"], answer["nbContacts"], answer["nbSms"]) == ("15", "1", "1")
    alone = _post(provider, "sendSms", _flux("33612345678")).json()
    assert alone == {"status": 114, "statusText": STATUS_TEXTS[114]}
    assert httpx.delete(f"{control}/blacklist").json() == {"ok": True}
    again = _post(provider, "sendSms", _flux("33612345678")).json()
    assert (again["status"], again["invalidNumbers"]) == (100, "")


def test_reset_empties_the_blacklist(provider: SandboxProvider, control: str) -> None:
    provider.blacklist({"phoneNumber": "33612345678"})
    assert httpx.post(f"{control}/reset").json() == {"ok": True}
    assert provider.blacklisted() == []
