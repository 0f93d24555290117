"""The sandbox speaks the AllMySMS v9.0 sendSms contract over real sockets, faults included."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import httpx
import pytest

from worker.sandbox import SandboxProvider


LOGIN = "demo"
API_KEY = "sandbox-key"
PHONE = "33612345678"
SUCCESS_KEYS = [
    "status",
    "statusText",
    "invalidNumbers",
    "campaignId",
    "credits",
    "creditsUsed",
    "nbContacts",
    "nbSms",
    "smsIds",
]
TEXT_114 = (
    "Aucun numéro de téléphone valide dans le flux. Veuillez-vous référer à la "
    "documentation en ligne pour connaitre les formats valides."
)


@pytest.fixture(name="provider")
def _provider() -> Iterator[SandboxProvider]:
    provider = SandboxProvider(login=LOGIN, api_key=API_KEY)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(name="control")
def _control(provider: SandboxProvider) -> str:
    """Root URL of the control endpoints (they sit beside, not under, /http/9.0)."""
    return f"http://127.0.0.1:{provider.port}/_sandbox"


@pytest.fixture(name="tls", scope="session")
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: building one per httpx.Client costs ~20 ms."""
    return ssl.create_default_context()


@pytest.fixture(name="client")
def _client(provider: SandboxProvider, tls: ssl.SSLContext) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.base_url, timeout=5, verify=tls) as client:
        yield client


def flux(
    message: str = "Bonjour",
    phones: tuple[str, ...] = (PHONE,),
    sms: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> str:
    """Build a JSON flux; ``sms`` replaces the entries built from ``phones``."""
    entries = sms if sms is not None else [{"MOBILEPHONE": p} for p in phones]
    return json.dumps({"DATA": {"MESSAGE": message, **fields, "SMS": entries}})


def xml_flux(message: str = "Bonjour", phones: tuple[str, ...] = (PHONE,)) -> str:
    entries = "".join(f"<SMS><MOBILEPHONE>{p}</MOBILEPHONE></SMS>" for p in phones)
    return f"<DATA><MESSAGE><![CDATA[{message}]]></MESSAGE><TPOA>Shop</TPOA>{entries}</DATA>"


def send(client: httpx.Client, sms_data: str, **params: str) -> httpx.Response:
    form = {"login": LOGIN, "apiKey": API_KEY, "smsData": sms_data, **params}
    return client.post("/sendSms/", data=form)


def xml_of(response: httpx.Response) -> ElementTree.Element:
    return ElementTree.fromstring(response.text)  # noqa: S314 - our own local server's answer


def status_of(response: httpx.Response) -> int:
    """Read ``status`` from a JSON or an XML answer."""
    if response.headers["content-type"].startswith("text/xml"):
        return int(xml_of(response).findtext("status") or 0)
    return int(response.json()["status"])


def paris(delta: timedelta) -> str:
    return (datetime.now(ZoneInfo("Europe/Paris")) + delta).strftime("%Y-%m-%d %H:%M:%S")


# --- transports and formats -------------------------------------------------------------------


def test_form_post_with_json_flux_is_sent(provider: SandboxProvider, client: httpx.Client) -> None:
    """A form POST of a JSON flux answers the full success body as text/html JSON."""
    before = time.time()
    response = send(client, flux(TPOA="Shop", CAMPAIGN_NAME="c1", CLIMSGID="m-1"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    body = response.json()
    assert list(body) == SUCCESS_KEYS
    sms_id = body["smsIds"][0]["smsId"]
    assert uuid.UUID(sms_id).version == 1
    assert body["campaignId"].startswith("sbx_")
    assert body == {
        "status": 100,
        "statusText": "Your messages have been sent",
        "invalidNumbers": "",
        "campaignId": body["campaignId"],
        "credits": "999985",
        "creditsUsed": "15",
        "nbContacts": "1",
        "nbSms": "1",
        "smsIds": [{"phoneNumber": PHONE, "smsId": sms_id}],
    }
    [entry] = provider.requests()
    processed = datetime.fromisoformat(entry.pop("at"))
    assert processed.utcoffset() == timedelta(0)
    received = entry.pop("received_at")
    assert before <= received <= processed.timestamp() + 0.001
    assert entry == {
        "seq": 1,
        "method": "POST",
        "encoding": "form",
        "login": LOGIN,
        "api_key_ok": True,
        "returnformat": None,
        "flux_format": "json",
        "data": {
            "MESSAGE": "Bonjour",
            "TPOA": "Shop",
            "CAMPAIGN_NAME": "c1",
            "CLIMSGID": "m-1",
            "SMS": [{"MOBILEPHONE": PHONE}],
        },
        "status": 100,
        "fault": None,
        "sms_ids": [sms_id],
        "cli_msg_id": "m-1",
    }


def test_multipart_post_is_read(provider: SandboxProvider, client: httpx.Client) -> None:
    """A multipart/form-data POST (httpx ``files=``) is read like a form."""
    response = client.post(
        "/sendSms",
        data={"login": LOGIN, "apiKey": API_KEY},
        files={"smsData": (None, flux("Café crème"))},
    )

    assert response.json()["status"] == 100
    [entry] = provider.requests()
    assert (entry["encoding"], entry["data"]["MESSAGE"]) == ("multipart", "Café crème")


def test_get_query_is_read(provider: SandboxProvider, client: httpx.Client) -> None:
    """A GET with the parameters in the query string is sent."""
    response = client.get(
        "/sendSms/", params={"login": LOGIN, "apiKey": API_KEY, "smsData": flux()}
    )

    assert response.json()["status"] == 100
    [entry] = provider.requests()
    assert (entry["method"], entry["encoding"]) == ("GET", "query")


def test_post_reads_query_string_and_body_wins(client: httpx.Client) -> None:
    """On POST the query string is read too, and a body parameter overrides it."""
    response = client.post(
        "/sendSms/",
        params={"login": LOGIN, "apiKey": "wrong"},
        data={"apiKey": API_KEY, "smsData": flux()},
    )

    assert response.json()["status"] == 100


def test_xml_flux_gets_xml_answer(provider: SandboxProvider, client: httpx.Client) -> None:
    """An XML flux is answered in XML with children named like the JSON keys."""
    response = send(client, xml_flux("Prix <5€> & plus", phones=(PHONE, "33699999999")))

    assert response.headers["content-type"] == "text/xml; charset=UTF-8"
    root = xml_of(response)
    assert root.tag == "response"
    assert [child.tag for child in root] == SUCCESS_KEYS
    assert root.findtext("status") == "113"
    assert root.findtext("invalidNumbers") == "33699999999"
    assert root.findtext("nbSms") == "1"
    [sms] = root.findall("smsIds/sms")
    assert sms.findtext("phoneNumber") == PHONE
    assert uuid.UUID(sms.findtext("smsId") or "").version == 1
    [entry] = provider.requests()
    assert entry["flux_format"] == "xml"
    assert entry["data"] == {
        "MESSAGE": "Prix <5€> & plus",
        "TPOA": "Shop",
        "SMS": [{"MOBILEPHONE": PHONE}, {"MOBILEPHONE": "33699999999"}],
    }


def test_official_xml_example_is_sent(provider: SandboxProvider, client: httpx.Client) -> None:
    """The seed page's XML example (declaration, indentation, DYNAMIC) is personalised and sent."""
    sms_data = """
<?xml version="1.0" encoding="UTF-8"?>
<DATA>
   <MESSAGE><![CDATA[Bonjour #param_1# #param_2#]]></MESSAGE>
   <DYNAMIC>2</DYNAMIC>
   <CAMPAIGN_NAME>nom de campagne </CAMPAIGN_NAME>
   <TPOA>allmysms</TPOA>
   <SMS>
      <MOBILEPHONE>33611111111</MOBILEPHONE>
      <PARAM_1>Parametre 1</PARAM_1>
      <PARAM_2>Parametre 2</PARAM_2>
   </SMS>
   <SMS>
      <MOBILEPHONE>33622222222</MOBILEPHONE>
      <PARAM_1>Parametre 1</PARAM_1>
      <PARAM_2>Parametre 2</PARAM_2>
   </SMS>
</DATA>
"""
    root = xml_of(send(client, sms_data))

    assert [root.findtext(k) for k in ("status", "nbContacts", "nbSms", "creditsUsed")] == [
        "100",
        "2",
        "2",
        "30",
    ]
    [entry] = provider.requests()
    assert entry["data"] == {
        "MESSAGE": "Bonjour #param_1# #param_2#",
        "DYNAMIC": "2",
        "CAMPAIGN_NAME": "nom de campagne",
        "TPOA": "allmysms",
        "SMS": [
            {"MOBILEPHONE": "33611111111", "PARAM_1": "Parametre 1", "PARAM_2": "Parametre 2"},
            {"MOBILEPHONE": "33622222222", "PARAM_1": "Parametre 1", "PARAM_2": "Parametre 2"},
        ],
    }


@pytest.mark.parametrize("returnformat", ["json", "JSON"])
def test_returnformat_json_answers_json_to_xml_flux(
    client: httpx.Client, returnformat: str
) -> None:
    """``returnformat=json`` (either case) answers JSON even to an XML flux."""
    response = send(client, xml_flux(), returnformat=returnformat)

    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    assert response.json()["status"] == 100


def test_returnformat_xml_answers_xml_errors_too(client: httpx.Client) -> None:
    """``returnformat=xml`` turns a refusal into the two-element XML answer."""
    response = send(client, flux(message=""), returnformat="xml")

    root = xml_of(response)
    assert [(c.tag, c.text) for c in root] == [
        ("status", "110"),
        ("statusText", "Message non défini (vide) dans le flux XML"),
    ]


# --- business refusals -----------------------------------------------------------------------


@pytest.mark.parametrize(("login", "api_key"), [(LOGIN, "nope"), ("other", API_KEY), ("", "")])
def test_wrong_account_is_102(
    provider: SandboxProvider, client: httpx.Client, login: str, api_key: str
) -> None:
    """A login or apiKey that does not match the account is answered 102 and logged."""
    response = client.post("/sendSms/", data={"login": login, "apiKey": api_key, "smsData": flux()})

    assert response.status_code == 200
    assert response.json() == {
        "status": 102,
        "statusText": "Problème de connexion – Aucun compte ne correspond aux clientcode et "  # noqa: RUF001
        "passcode spécifiés",
    }
    [entry] = provider.requests()
    assert (entry["status"], entry["api_key_ok"]) == (102, api_key == API_KEY)


@pytest.mark.parametrize("sms_data", [None, "", "  \n"])
def test_missing_or_blank_flux_is_105(client: httpx.Client, sms_data: str | None) -> None:
    """No smsData, or a blank one, is answered 105."""
    form = {"login": LOGIN, "apiKey": API_KEY}
    if sms_data is not None:
        form["smsData"] = sms_data

    assert client.post("/sendSms/", data=form).json() == {
        "status": 105,
        "statusText": "Flux XML Vide",
    }


@pytest.mark.parametrize(
    "sms_data",
    [
        '{"DATA": {"MESSAGE": "x", ',
        '{"MESSAGE": "x"}',
        '{"DATA": "x"}',
        "<DATA><MESSAGE>x</MESSAGE>",
        "<SMSDATA><MESSAGE>x</MESSAGE></SMSDATA>",
        '<!DOCTYPE d [<!ENTITY e "x">]><DATA><MESSAGE>&e;</MESSAGE></DATA>',
        "MESSAGE=x",
    ],
    ids=["json-cut", "json-no-data", "json-data-str", "xml-cut", "xml-root", "xml-dtd", "text"],
)
def test_malformed_flux_is_106(
    provider: SandboxProvider, client: httpx.Client, sms_data: str
) -> None:
    """Neither ``{"DATA": {...}}`` nor ``<DATA>`` (and no DTD) is answered 106."""
    assert status_of(send(client, sms_data)) == 106
    assert provider.requests()[0]["data"] is None


@pytest.mark.parametrize(
    "sms_data",
    [
        '{"DATA": {"MESSAGE": "x"}}',
        '{"DATA": {"MESSAGE": "x", "SMS": []}}',
        '{"DATA": {"MESSAGE": "x", "SMS": [{"PARAM_1": "y"}]}}',
        "<DATA><MESSAGE>x</MESSAGE></DATA>",
    ],
)
def test_flux_without_recipient_is_107(client: httpx.Client, sms_data: str) -> None:
    """A flux with no SMS entry (or one without MOBILEPHONE) is answered 107."""
    assert status_of(send(client, sms_data)) == 107


@pytest.mark.parametrize("sms_data", [flux(""), flux("   "), json.dumps({"DATA": {"SMS": []}})])
def test_empty_message_is_110(client: httpx.Client, sms_data: str) -> None:
    """A missing or empty MESSAGE is answered 110 (107 first when SMS is empty too)."""
    expected = 107 if '"SMS": []' in sms_data else 110
    assert send(client, sms_data).json()["status"] == expected


def test_message_over_640_chars_is_111_and_640_is_sent(client: httpx.Client) -> None:
    """641 characters are answered 111; 640 are sent as five 153-character parts."""
    assert send(client, flux("a" * 641)).json() == {
        "status": 111,
        "statusText": "Le message dépasse 640 caractères",
    }

    body = send(client, flux("a" * 640)).json()
    assert (body["status"], body["nbSms"], body["creditsUsed"]) == (100, "5", "75")


def test_some_invalid_numbers_is_113_and_others_are_sent(client: httpx.Client) -> None:
    """An unknown (999999) and a malformed number among valid ones give 113 with the full body."""
    phones = ("33611111111", "33600999999", "12ab", "+44 7700 900123")
    body = send(client, flux(phones=phones)).json()

    assert list(body) == SUCCESS_KEYS
    assert body["status"] == 113
    assert (
        body["statusText"] == "Certains numéros de téléphone sont invalides ou non pris en charge"
    )
    assert body["invalidNumbers"] == "33600999999|12ab"
    assert [s["phoneNumber"] for s in body["smsIds"]] == ["33611111111", "447700900123"]
    assert (body["nbContacts"], body["nbSms"], body["creditsUsed"]) == ("2", "2", "30")


@pytest.mark.parametrize("phones", [("33600999999", "0612"), ("33600888888",)])
def test_no_sendable_number_is_114(
    provider: SandboxProvider, client: httpx.Client, phones: tuple[str, ...]
) -> None:
    """When no valid, non-blacklisted number remains the answer is 114 and nothing is spent."""
    assert send(client, flux(phones=phones)).json() == {"status": 114, "statusText": TEXT_114}
    assert provider.requests()[0]["sms_ids"] == []


def test_blacklisted_number_is_listed_with_status_100(client: httpx.Client) -> None:
    """A STOP-listed (888888) number is refused in invalidNumbers while the status stays 100."""
    body = send(client, flux(phones=("33600888888", PHONE))).json()

    assert (body["status"], body["invalidNumbers"]) == (100, "33600888888")
    assert [s["phoneNumber"] for s in body["smsIds"]] == [PHONE]
    assert body["nbContacts"] == "1"


@pytest.mark.parametrize(
    ("number", "international"),
    [
        ("06 12 34 56 78", "33612345678"),
        ("+33612345678", "33612345678"),
        ("0033612345678", "33612345678"),
        ("4915112345678", "4915112345678"),
    ],
)
def test_numbers_are_answered_in_international_form(
    client: httpx.Client, number: str, international: str
) -> None:
    """National, ``+`` and ``00`` forms are answered as international digits."""
    body = send(client, flux(phones=(number,))).json()

    assert body["smsIds"][0]["phoneNumber"] == international


@pytest.mark.parametrize(
    "date", ["2026-13-01 10:00:00", "2026-02-30 10:00:00", "2026-01-01T10:00:00", "demain"]
)
def test_badly_formatted_date_is_115(client: httpx.Client, date: str) -> None:
    """A DATE that is not a real ``YYYY-MM-DD HH:MM:SS`` is answered 115."""
    assert send(client, flux(DATE=date)).json()["status"] == 115


def test_future_date_is_scheduled_101_and_past_date_is_sent_100(client: httpx.Client) -> None:
    """A DATE ahead in Paris time is scheduled (101); one behind is sent at once (100)."""
    future = send(client, flux(DATE=paris(timedelta(hours=1)))).json()
    past = send(client, flux(DATE=paris(-timedelta(minutes=5)))).json()

    assert (future["status"], future["statusText"]) == (101, "Your messages have been scheduled")
    assert (past["status"], past["statusText"]) == (100, "Your messages have been sent")


# --- credits and segments --------------------------------------------------------------------


def test_zero_credits_is_103(provider: SandboxProvider, client: httpx.Client) -> None:
    """An account with no credit left answers 103."""
    provider.set_credits(0)

    assert send(client, flux()).json() == {
        "status": 103,
        "statusText": "Crédit SMS épuisé. Veuillez re-créditer votre compte sur AllMySMS.com",
    }


def test_insufficient_credits_is_104_and_nothing_is_spent(
    provider: SandboxProvider, client: httpx.Client
) -> None:
    """Credits short of this send answer 104 with both amounts, and the balance is untouched."""
    provider.set_credits(15)

    assert send(client, flux(phones=(PHONE, "33622222222"))).json() == {
        "status": 104,
        "statusText": "Crédits insuffisants. A utiliser: 30 Crédits, Disponibles: 15",
    }
    assert send(client, flux()).json()["credits"] == "0"


def test_credits_decrease_with_every_send(provider: SandboxProvider, client: httpx.Client) -> None:
    """Each send spends 15 credits per SMS part and reports the remaining balance."""
    provider.set_credits(100)

    first = send(client, flux(phones=(PHONE, "33622222222"))).json()
    second = send(client, flux("b" * 161)).json()

    assert (first["credits"], first["creditsUsed"]) == ("70", "30")
    assert (second["credits"], second["creditsUsed"]) == ("40", "30")


def test_personalised_message_counts_parts_after_substitution(client: httpx.Client) -> None:
    """``#param_1#`` is replaced by each recipient's PARAM_1 before counting parts."""
    sms = [
        {"MOBILEPHONE": PHONE, "PARAM_1": "x" * 155},
        {"MOBILEPHONE": "33622222222", "PARAM_1": "Bob"},
    ]
    body = send(client, flux("Bonjour #param_1# !", sms=sms, DYNAMIC=1)).json()

    assert (body["status"], body["nbContacts"], body["nbSms"], body["creditsUsed"]) == (
        100,
        "2",
        "3",
        "45",
    )


@pytest.mark.parametrize(("length", "parts"), [(70, "1"), (71, "2"), (134, "2"), (135, "3")])
def test_ucs2_text_counts_70_then_67_per_part(
    client: httpx.Client, length: int, parts: str
) -> None:
    """A text outside GSM-7 takes one part up to 70 characters, then 67 per part."""
    assert send(client, flux("ç" * length)).json()["nbSms"] == parts


def test_161_gsm_chars_take_two_parts(client: httpx.Client) -> None:
    """A 161-character GSM-7 text takes two parts; extension characters count two."""
    assert send(client, flux("a" * 161)).json()["nbSms"] == "2"
    assert send(client, flux("€" * 80 + "a")).json()["nbSms"] == "2"
    assert send(client, flux("a" * 160)).json()["nbSms"] == "1"


# --- faults ----------------------------------------------------------------------------------


def test_status_fault_answers_without_processing(
    provider: SandboxProvider, client: httpx.Client
) -> None:
    """A status fault answers its status ``times`` times, spends nothing, then sends normally."""
    provider.add_fault({"action": "status", "status": 103, "times": 2})
    provider.add_fault({"action": "status", "status": 117, "statusText": "lien"})

    answers = [send(client, flux()).json() for _ in range(4)]

    assert answers[:3] == [
        {"status": 103, "statusText": answers[0]["statusText"]},
        {"status": 103, "statusText": answers[0]["statusText"]},
        {"status": 117, "statusText": "lien"},
    ]
    assert answers[0]["statusText"].startswith("Crédit SMS épuisé")
    assert (answers[3]["status"], answers[3]["credits"]) == (100, "999985")
    log = provider.requests()
    assert [(e["status"], e["fault"]) for e in log] == [
        (103, "status"),
        (103, "status"),
        (117, "status"),
        (100, None),
    ]


def test_forever_fault_applies_until_cleared(
    provider: SandboxProvider, client: httpx.Client
) -> None:
    """``times: -1`` applies to every request until ``clear_faults``."""
    provider.add_fault({"action": "html502", "times": -1})

    assert [send(client, flux()).status_code for _ in range(3)] == [502, 502, 502]
    provider.clear_faults()
    assert send(client, flux()).status_code == 200


def test_html502_fault_looks_like_a_proxy(provider: SandboxProvider, client: httpx.Client) -> None:
    """An html502 fault answers HTTP 502 with an HTML page and sends nothing."""
    provider.add_fault({"action": "html502"})

    response = send(client, flux())

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    assert provider.requests()[0]["status"] is None
    assert send(client, flux()).json()["credits"] == "999985"


@pytest.mark.parametrize("action", ["drop", "not_http"])
def test_drop_and_not_http_faults_break_the_protocol(
    provider: SandboxProvider, client: httpx.Client, action: str
) -> None:
    """drop and not_http faults make httpx raise RemoteProtocolError; the request is logged."""
    provider.add_fault({"action": action})

    with pytest.raises(httpx.RemoteProtocolError):
        send(client, flux())

    [entry] = provider.requests()
    assert (entry["status"], entry["fault"], entry["sms_ids"]) == (None, action, [])
    assert send(client, flux()).json()["credits"] == "999985"


def test_truncated_fault_cuts_a_send_that_took_effect(
    provider: SandboxProvider, client: httpx.Client
) -> None:
    """A truncated fault answers 200 with half of the success JSON; the credits are spent."""
    provider.add_fault({"action": "truncated"})

    response = send(client, flux())

    assert response.status_code == 200
    assert response.text.startswith('{"status":100,"statusText":"Your messages have been sent"')
    with pytest.raises(json.JSONDecodeError):
        response.json()
    [entry] = provider.requests()
    assert (entry["status"], entry["fault"], len(entry["sms_ids"])) == (100, "truncated", 1)
    assert send(client, flux()).json()["credits"] == "999970"


def test_delay_fault_beyond_read_timeout_still_sends(
    provider: SandboxProvider, client: httpx.Client
) -> None:
    """A delay longer than the client's read timeout raises ReadTimeout, yet the SMS was sent."""
    provider.add_fault({"action": "delay", "delay_ms": 2000})

    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/sendSms/",
            data={"login": LOGIN, "apiKey": API_KEY, "smsData": flux()},
            timeout=httpx.Timeout(5, read=0.2),
        )

    [entry] = provider.requests()
    assert (entry["status"], entry["fault"], len(entry["sms_ids"])) == (100, "delay", 1)


def test_delay_fault_within_timeout_answers_late(
    client: httpx.Client, provider: SandboxProvider
) -> None:
    """A short delay fault answers normally, after the delay."""
    provider.add_fault({"action": "delay", "delay_ms": 150})

    started = time.monotonic()
    body = send(client, flux()).json()

    assert time.monotonic() - started >= 0.15
    assert body["status"] == 100


@pytest.mark.parametrize(
    ("match", "hit", "miss"),
    [
        ({"phone": "0611111111"}, flux(phones=("33699000000", "33611111111")), flux()),
        ({"campaign": "promo"}, flux(CAMPAIGN_NAME="promo"), flux(CAMPAIGN_NAME="promo2")),
        ({"text_contains": "code"}, flux("Votre code: 1234"), flux("Bonjour")),
    ],
    ids=["phone", "campaign", "text_contains"],
)
def test_fault_applies_only_to_matching_requests(
    provider: SandboxProvider, client: httpx.Client, match: dict[str, str], hit: str, miss: str
) -> None:
    """A fault with ``match`` skips other requests and waits for a matching one."""
    provider.add_fault({"action": "status", "status": 110, "match": match})

    statuses = [send(client, body).json()["status"] for body in (miss, hit, hit)]

    assert statuses == [100, 110, 100]


def test_faults_are_consumed_first_added_first(
    client: httpx.Client, provider: SandboxProvider
) -> None:
    """Two faults matching the same request apply in the order they were added."""
    provider.add_fault({"action": "status", "status": 112})
    provider.add_fault({"action": "status", "status": 109})

    assert [send(client, flux()).json()["status"] for _ in range(3)] == [112, 109, 100]


@pytest.mark.parametrize(
    ("fault", "key"),
    [
        ({"action": "explode"}, "action"),
        ({"times": 2}, "action"),
        ({"action": "status"}, "status"),
        ({"action": "status", "status": 99}, "status"),
        ({"action": "status", "status": True}, "status"),
        ({"action": "delay"}, "delay_ms"),
        ({"action": "drop", "delay_ms": 5}, "delay_ms"),
        ({"action": "drop", "times": 0}, "times"),
        ({"action": "drop", "colour": "red"}, "colour"),
        ({"action": "drop", "match": {"zip": "06000"}}, "match"),
        ({"action": "drop", "match": {"phone": "12"}}, "match"),
    ],
)
def test_invalid_fault_raises_value_error_naming_the_key(
    provider: SandboxProvider, fault: dict[str, Any], key: str
) -> None:
    """An invalid fault spec raises ValueError whose message starts with the bad key."""
    with pytest.raises(ValueError, match=rf"^{key}: "):
        provider.add_fault(fault)


# --- HTTP behaviour ----------------------------------------------------------------------------


def test_keep_alive_connection_is_reused(provider: SandboxProvider, client: httpx.Client) -> None:
    """Two requests on one httpx.Client travel over a single TCP connection."""
    send(client, flux())
    send(client, flux())

    assert provider.connections_accepted == 1


def test_latency_delays_every_answer(tls: ssl.SSLContext) -> None:
    """``latency_ms`` delays each sendSms answer."""
    with (
        SandboxProvider(login=LOGIN, api_key=API_KEY, latency_ms=150) as provider,
        httpx.Client(base_url=provider.base_url, verify=tls) as client,
    ):
        started = time.monotonic()
        assert send(client, flux()).json()["status"] == 100
        assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/sendSMS/"),
        ("PUT", "/sendSms/"),
        ("DELETE", "/sendSms"),
        ("GET", "/getSubAccounts/"),
    ],
)
def test_other_paths_and_methods_are_404(
    provider: SandboxProvider, client: httpx.Client, method: str, path: str
) -> None:
    """Anything but GET/POST on the exact sendSms path is a 404 and is not logged."""
    response = client.request(method, path)

    assert (response.status_code, response.text) == (404, "not found\n")
    assert provider.requests() == []


def test_oversized_body_is_413(provider: SandboxProvider) -> None:
    """A body announced over 8 MiB is refused with 413 before it is read."""
    request = (
        b"POST /http/9.0/sendSms/ HTTP/1.1\r\nHost: sandbox\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 9000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", provider.port), timeout=5) as sock:
        sock.sendall(request)
        head = sock.recv(4096)

    assert head.startswith(b"HTTP/1.1 413 ")
    assert provider.requests() == []


def test_api_key_is_never_stored(provider: SandboxProvider, client: httpx.Client) -> None:
    """Neither a right nor a wrong apiKey value reaches the request log."""
    client.get("/sendSms/", params={"login": LOGIN, "apiKey": API_KEY, "smsData": flux()})
    send(client, flux(), apiKey="a-wrong-key")
    provider.add_fault({"action": "drop"})
    with pytest.raises(httpx.RemoteProtocolError):
        send(client, flux())

    dumped = json.dumps(provider.requests())
    assert API_KEY not in dumped
    assert "a-wrong-key" not in dumped
    assert [e["api_key_ok"] for e in provider.requests()] == [True, False, True]


def test_reset_restores_credits_and_forgets_everything(
    provider: SandboxProvider, client: httpx.Client
) -> None:
    """``reset`` clears the log and the faults and restores the starting credits."""
    send(client, flux())
    provider.add_fault({"action": "drop"})

    provider.reset()

    assert provider.requests() == []
    assert send(client, flux()).json()["credits"] == "999985"


# --- control endpoints -------------------------------------------------------------------------


def test_control_endpoints_drive_the_sandbox(client: httpx.Client, control: str) -> None:
    """Health, faults, credits and the request log can all be driven over HTTP."""
    assert client.get(f"{control}/health").json() == {"ok": True}

    fault = {"action": "status", "status": 118}
    assert client.post(f"{control}/faults", json=fault).status_code == 201
    assert send(client, flux()).json()["status"] == 118

    client.post(f"{control}/faults", json={"action": "drop", "times": -1})
    assert client.delete(f"{control}/faults").json() == {"ok": True}

    assert client.post(f"{control}/credits", json={"credits": 0}).json() == {"credits": 0}
    assert send(client, flux()).json()["status"] == 103

    log = client.get(f"{control}/requests").json()
    assert [(e["seq"], e["status"], e["fault"]) for e in log] == [
        (1, 118, "status"),
        (2, 103, None),
    ]
    assert client.delete(f"{control}/requests").json() == {"ok": True}
    assert client.get(f"{control}/requests").json() == []


@pytest.mark.parametrize(
    ("path", "payload", "error"),
    [
        ("faults", {"action": "status", "status": 42}, "status: must be an integer from 100"),
        ("faults", {"action": "drop", "when": 1}, "when: unknown key"),
        ("faults", [1, 2], "fault: expected an object"),
        ("credits", {"credits": -5}, "credits: must be a non-negative integer"),
        ("credits", {}, "credits: required"),
    ],
)
def test_control_endpoints_reject_bad_input_with_400(
    client: httpx.Client, control: str, path: str, payload: Any, error: str
) -> None:
    """A bad fault or credit amount is answered 400 with an ``error`` naming the key."""
    response = client.post(f"{control}/{path}", json=payload)

    assert response.status_code == 400
    assert response.json()["error"].startswith(error)


def test_control_endpoint_rejects_malformed_json_with_400(
    client: httpx.Client, control: str
) -> None:
    """A control body that is not JSON is answered 400."""
    response = client.post(f"{control}/faults", content=b"{nope")

    assert response.status_code == 400
    assert "error" in response.json()


def test_serve_prints_its_address_and_stops_on_sigterm(tls: ssl.SSLContext) -> None:
    """``serve`` announces its URL on stdout and exits cleanly on SIGTERM."""
    code = (
        "from worker.sandbox import serve; serve(host='127.0.0.1', port=0, login='d', api_key='k')"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        base_url = line.split()[-1]
        assert base_url.endswith("/http/9.0")
        with httpx.Client(verify=tls) as client:
            health = client.get(base_url.removesuffix("/http/9.0") + "/_sandbox/health")
        assert health.json() == {"ok": True}
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert (process.returncode, stdout, stderr) == (0, "", "")
