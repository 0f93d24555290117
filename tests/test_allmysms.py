"""The AllMySMS client and the retry doctrine, over httpx.MockTransport (no sockets)."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import parse_qs

import httpx
import pytest

from producers.errors import NotSentError, OutcomeUnknownError
from worker.allmysms.client import AllMySmsClient, parse_reply
from worker.send.retries import send_retrying
from worker.settings import Secret, Settings


SETTINGS = Settings(
    login="acme",
    api_key=Secret("key-123456"),
    send_attempts=4,
    send_max_wait_s=30,
    retry_initial_wait_s=0.5,
    retry_max_wait_s=4,
)
FLUX = {"DATA": {"MESSAGE": "Hi", "SMS": [{"MOBILEPHONE": "33612345678"}]}}
OK = {
    "status": 100,
    "statusText": "Your messages have been sent",
    "invalidNumbers": "",
    "campaignId": "c1",
    "credits": "985",
    "creditsUsed": "15",
    "nbContacts": "1",
    "nbSms": "1",
    "smsIds": [{"phoneNumber": "33612345678", "smsId": "id-1"}],
}


class Provider:
    """A scripted MockTransport handler that records every request it sees."""

    def __init__(self, *responses: httpx.Response | type[Exception]) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(response, type):
            assert issubclass(response, httpx.TransportError)
            raise response("scripted", request=request)
        return response

    def client(self) -> AllMySmsClient:
        return AllMySmsClient.from_settings(SETTINGS, transport=httpx.MockTransport(self))


def test_send_posts_the_form_fields_to_send_sms() -> None:
    """login, apiKey, smsData (JSON) and returnformat=json go as a form POST to /sendSms/."""
    provider = Provider(httpx.Response(200, json=OK))

    reply = provider.client().send(FLUX)

    [request] = provider.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.allmysms.com/http/9.0/sendSms/"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "login": "acme",
        "apiKey": "key-123456",
        "smsData": json.dumps(FLUX, separators=(",", ":")),
        "returnformat": "json",
    }
    assert (reply.status, reply.sms_ids, reply.credits_used) == (100, {"33612345678": "id-1"}, 15)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_connect_failures_are_not_sent(error: type[Exception]) -> None:
    """Failures before any byte left are NotSentError."""
    with pytest.raises(NotSentError):
        Provider(error).client().send(FLUX)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.ReadError,
        httpx.RemoteProtocolError,
        httpx.WriteError,
    ],
)
def test_failures_after_sending_are_unknown(error: type[Exception]) -> None:
    """Anything after the request may have left is OutcomeUnknownError."""
    with pytest.raises(OutcomeUnknownError) as info:
        Provider(error).client().send(FLUX)
    assert info.value.reason == f"{error.__name__} after the request was sent"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (502, b"<html>Bad gateway</html>", "AllMySMS answered HTTP 502"),
        (500, b"{}", "AllMySMS answered HTTP 500"),
        (
            200,
            b'{"status": 100, "statusT',
            "AllMySMS answered HTTP 200 with a body that is not JSON",
        ),
        (200, b"[1, 2]", "AllMySMS answered HTTP 200 without a numeric status"),
        (200, b'{"status": "abc"}', "AllMySMS answered HTTP 200 without a numeric status"),
    ],
)
def test_unexpected_answers_are_unknown(status: int, body: bytes, reason: str) -> None:
    """HTTP errors and bodies that are not the expected JSON are OutcomeUnknownError."""
    with pytest.raises(OutcomeUnknownError) as info:
        parse_reply(status, body)
    assert info.value.reason == reason


def test_replies_are_parsed_leniently() -> None:
    """status as a string, numbers as strings or ints, pipe-separated invalidNumbers."""
    reply = parse_reply(
        200,
        json.dumps(
            {
                "status": "113",
                "statusText": "x",
                "invalidNumbers": "33611999999|33600000000",
                "creditsUsed": 30,
                "nbSms": "2",
                "smsIds": [{"phoneNumber": "33612345678", "smsId": "a"}],
            }
        ).encode(),
    )
    assert reply.status == 113
    assert reply.invalid_numbers == ["33611999999", "33600000000"]
    assert (reply.credits_used, reply.nb_sms) == (30, 2)


def test_only_not_sent_errors_are_retried_with_bounded_backoff() -> None:
    """Three refused connections then success: four POST attempts and three jittered sleeps."""
    provider = Provider(
        httpx.ConnectError, httpx.ConnectError, httpx.ConnectError, httpx.Response(200, json=OK)
    )
    client = provider.client()
    sleeps: list[float] = []

    reply = send_retrying(SETTINGS, sleep=sleeps.append)(client.send, FLUX)

    assert reply.status == 100
    assert len(provider.requests) == 4
    assert len(sleeps) == 3
    assert all(0 < s <= SETTINGS.retry_max_wait_s for s in sleeps)


def test_retries_stop_after_the_attempt_budget() -> None:
    """A provider that never accepts a connection gets send_attempts tries, then NotSentError."""
    provider = Provider(httpx.ConnectError)
    sleeps: list[float] = []

    with pytest.raises(NotSentError):
        send_retrying(SETTINGS, sleep=sleeps.append)(provider.client().send, FLUX)

    assert len(provider.requests) == SETTINGS.send_attempts
    assert len(sleeps) == SETTINGS.send_attempts - 1


@pytest.mark.parametrize(
    "outcome", [httpx.ReadTimeout, httpx.Response(200, json={"status": 103}), httpx.Response(502)]
)
def test_ambiguous_failures_and_business_statuses_are_never_retried(outcome: object) -> None:
    """A read timeout, a 103 answer or a 502 leads to exactly one POST."""
    provider = Provider(outcome)  # type: ignore[arg-type]
    sleeps: list[float] = []

    with contextlib.suppress(OutcomeUnknownError):
        send_retrying(SETTINGS, sleep=sleeps.append)(provider.client().send, FLUX)

    assert len(provider.requests) == 1
    assert sleeps == []


def test_the_api_key_is_hidden_from_reprs() -> None:
    """repr() of settings and secrets never shows the apiKey."""
    assert "key-123456" not in repr(SETTINGS)
    assert "key-123456" not in repr(SETTINGS.api_key)
    assert "key-123456" not in str(SETTINGS.api_key)


def test_job_timeout_exceeds_the_worst_case_send() -> None:
    """RQ's job timeout is derived from the send budget, so it cannot fire mid-request."""
    assert SETTINGS.job_timeout_s > SETTINGS.send_budget_s
