"""The client's polling methods (getAcks, getAckBySmsId, getPulls, getPull, getPullBySmsId):
tolerant parsers (MockTransport, hypothesis) and the sandbox over real sockets."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.errors import NotSentError, OutcomeUnknownError
from tests.helpers.processes import API_KEY, LOGIN
from worker.allmysms.client import AllMySmsClient
from worker.allmysms.polling import Ack, Acks, Mo, parse_ack, parse_acks, parse_mo, parse_mos
from worker.sandbox import SandboxProvider
from worker.settings import Secret


TIMEOUT = httpx.Timeout(2.0)


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> AllMySmsClient:
    return AllMySmsClient(
        base_url="https://api.example.test/http/9.0",
        login=LOGIN,
        api_key=Secret(API_KEY),
        timeout=TIMEOUT,
        transport=httpx.MockTransport(handler),
    )


def answering(body: Any, seen: list[httpx.Request] | None = None) -> AllMySmsClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, content=json.dumps(body).encode())

    return mocked(handler)


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    http = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=TIMEOUT
    )
    yield http
    http.close()


def test_get_acks_posts_the_campaign_and_reads_statut_or_status() -> None:
    """Both spellings of an ack's status are read; the top-level cliMsgId names each ack."""
    seen: list[httpx.Request] = []
    body = {
        "acks": [
            {"phoneNumber": "33612345678", "statut": "1", "comment": "Delivered"},
            {"phoneNumber": "+33611777777", "status": 5, "receptionDate": "2026-12-01 10:00:00"},
            {"phoneNumber": "33600000000"},
            "garbage",
        ],
        "cliMsgId": "a" * 32,
    }
    acks = answering(body, seen).get_acks("cmp-1")
    assert acks == Acks(
        (
            Ack("33612345678", 1, "Delivered", "", "a" * 32),
            Ack("33611777777", 5, "", "2026-12-01 10:00:00", "a" * 32),
            Ack("33600000000", None, "", "", "a" * 32),
        ),
        "a" * 32,
    )
    [request] = seen
    assert request.url.path == "/http/9.0/getAcks/"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {"login": LOGIN, "apiKey": API_KEY, "returnformat": "json", "campId": "cmp-1"}


@pytest.mark.parametrize("nothing", [{"status": "0"}, {"status": 0, "statusText": "x"}, {}])
def test_status_zero_means_nothing(nothing: dict[str, Any]) -> None:
    """A top-level status 0 (MedShake's guard) is an empty answer, not an error."""
    client = answering(nothing)
    assert client.get_acks("c") == Acks()
    assert client.get_ack_by_sms_id("s") is None
    assert client.get_pulls(10).mos == ()
    assert client.get_pull("c").mos == ()
    assert client.get_pull_by_sms_id("s") is None


def test_an_error_answer_names_its_status() -> None:
    with pytest.raises(OutcomeUnknownError) as caught:
        answering({"status": 102, "statusText": "nope"}).get_acks("c")
    assert str(caught.value) == "AllMySMS getAcks answered without acks (status 102)"
    with pytest.raises(OutcomeUnknownError) as caught:
        answering({"status": 102}).get_pulls(5)
    assert str(caught.value) == "AllMySMS getPulls answered without mos (status 102)"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(502, content=b"<html>"), "AllMySMS getPull answered HTTP 502"),
        (
            httpx.Response(200, content=b"{trunc"),
            "AllMySMS getPull answered HTTP 200 with a body that is not JSON",
        ),
        (
            httpx.Response(200, content=b"[1]"),
            "AllMySMS getPull answered HTTP 200 with JSON that is not an object",
        ),
    ],
)
def test_bad_answers_are_outcome_unknown(response: httpx.Response, message: str) -> None:
    with pytest.raises(OutcomeUnknownError) as caught:
        mocked(lambda _request: response).get_pull("c")
    assert str(caught.value) == message


def test_connect_failure_is_not_sent_and_a_timeout_is_unknown() -> None:
    """Same error semantics as getInfo: refused → NotSentError, read timeout → unknown."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(NotSentError) as not_sent:
        mocked(refuse).get_acks("c")
    assert str(not_sent.value) == "ConnectError: AllMySMS getAcks was not reached"
    with pytest.raises(OutcomeUnknownError) as unknown:
        mocked(stall).get_ack_by_sms_id("s")
    assert str(unknown.value) == "ReadTimeout during getAckBySmsId"
    assert API_KEY not in str(not_sent.value) + str(unknown.value)


def test_replies_without_an_id_are_skipped_and_a_single_object_is_a_list() -> None:
    mos = parse_mos(
        200,
        json.dumps(
            {
                "mos": {
                    "phoneNumber": "33611555555",
                    "id": "mo-1",
                    "campaignId": "cmp",
                    "message": "OUI",
                    "receptionDate": "2026-12-01 10:00:00",
                    "climsgid": "b" * 32,
                }
            }
        ).encode(),
    )
    assert mos.mos == (Mo("mo-1", "33611555555", "OUI", "cmp", "2026-12-01 10:00:00", "b" * 32),)
    assert parse_mos(200, b'{"mos": [{"message": "x"}, {"id": "y"}]}').mos == ()


def test_get_ack_by_sms_id_and_get_pull_by_sms_id_read_one_object() -> None:
    assert parse_ack(200, b'{"phoneNumber": "33612345678", "statut": "2"}') == Ack("33612345678", 2)
    assert parse_ack(200, b'{"acks": [{"phoneNumber": "1", "status": "3"}]}') == Ack("1", 3)
    assert parse_mo(200, b'{"phoneNumber": "336", "message": "hi", "campaignId": "c"}') == Mo(
        "", "336", "hi", "c"
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["acks", "mos", "status", "statut", "phoneNumber", "id", "message", "cliMsgId", "x"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(JSON)
def test_parsers_return_or_raise_outcome_unknown_on_any_json(document: Any) -> None:
    """No JSON value makes a parser raise anything but OutcomeUnknownError."""
    body = json.dumps(document).encode()
    for parse in (parse_acks, parse_ack, parse_mos, parse_mo):
        messages = []
        try:
            parse(200, body)
        except OutcomeUnknownError as exc:
            messages.append(str(exc))
        assert all(m.startswith("AllMySMS ") for m in messages)


@given(st.binary(max_size=64), st.integers(100, 599))
def test_parsers_take_any_bytes(body: bytes, status: int) -> None:
    for parse in (parse_acks, parse_ack, parse_mos, parse_mo):
        statuses = []
        try:
            parse(status, body)
        except OutcomeUnknownError as exc:
            statuses.append(exc.http_status)
        assert statuses in ([], [status])


def test_client_against_the_sandbox(client: AllMySmsClient, sandbox: SandboxProvider) -> None:
    """Every polling method over real sockets, against what the sandbox sent."""
    flux = {
        "DATA": {
            "MESSAGE": "hello",
            "CLIMSGID": "c" * 32,
            "SMS": [{"MOBILEPHONE": "33612345678"}, {"MOBILEPHONE": "33611555555"}],
        }
    }
    reply = client.send(flux)
    assert reply.campaign_id is not None
    acks = client.get_acks(reply.campaign_id)
    assert [(a.phone, a.status, a.cli_msg_id) for a in acks.acks] == [
        ("33612345678", 1, "c" * 32),
        ("33611555555", 1, "c" * 32),
    ]
    ack = client.get_ack_by_sms_id(reply.sms_ids["33612345678"])
    assert ack is not None
    assert (ack.status, ack.cli_msg_id) == (1, "c" * 32)
    [mo] = client.get_pulls(100).mos
    assert (mo.phone, mo.text, mo.campaign_id, mo.cli_msg_id) == (
        "33611555555",
        "OUI",
        reply.campaign_id,
        "c" * 32,
    )
    assert client.get_pulls(100).mos == ()
    assert [m.mo_id for m in client.get_pull(reply.campaign_id).mos] == [mo.mo_id]
    by_id = client.get_pull_by_sms_id(reply.sms_ids["33611555555"])
    assert by_id is not None
    assert by_id.text == "OUI"
    assert client.get_acks("sbx_other") == Acks()
    sandbox.add_fault({"endpoint": "getAcks", "action": "truncated"})
    with pytest.raises(OutcomeUnknownError) as caught:
        client.get_acks(reply.campaign_id)
    assert str(caught.value) == "AllMySMS getAcks answered HTTP 200 with a body that is not JSON"
    assert [r.get("endpoint", "sendSms") for r in sandbox.requests()] == [
        "sendSms",
        "getAcks",
        "getAckBySmsId",
        "getPulls",
        "getPulls",
        "getPull",
        "getPullBySmsId",
        "getAcks",
        "getAcks",
    ]
