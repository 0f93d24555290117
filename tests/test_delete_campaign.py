"""deleteCampaign: the sandbox's deferred campaigns over real sockets, and the client's
answer parser (MockTransport and hypothesis)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.errors import NotSentError, OutcomeUnknownError, ProviderRefusedError
from tests.helpers.processes import API_KEY, LOGIN, wait_for
from worker.allmysms.campaigns import parse_delete
from worker.allmysms.client import AllMySmsClient
from worker.sandbox import SandboxProvider, campaigns
from worker.settings import Secret


TIMEOUT = httpx.Timeout(2.0)
PHONE = "33612345678"
NOT_FOUND = "AllMySMS deleteCampaign refused: status 0 (Campaign not found)"


def paris(delta: timedelta) -> str:
    return (datetime.now(ZoneInfo("Europe/Paris")) + delta).strftime("%Y-%m-%d %H:%M:%S")


def flux(date: str | None = None, phone: str = PHONE) -> dict[str, object]:
    data: dict[str, object] = {"MESSAGE": "Rappel", "SMS": [{"MOBILEPHONE": phone}]}
    if date is not None:
        data["DATE"] = date
    return {"DATA": data}


def _client(base_url: str, api_key: str = API_KEY) -> AllMySmsClient:
    return AllMySmsClient(base_url=base_url, login=LOGIN, api_key=Secret(api_key), timeout=TIMEOUT)


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    http = _client(sandbox.base_url)
    yield http
    http.close()


def deletes(sandbox: SandboxProvider) -> list[tuple[str, object, object]]:
    return [
        (r["campId"], r["status"], r["fault"])
        for r in sandbox.requests()
        if r.get("endpoint") == "deleteCampaign"
    ]


# --- the sandbox ----------------------------------------------------------------------------


def test_a_deferred_campaign_is_deleted_once_and_its_credits_come_back(
    sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """A 101 campaign is deleted with OK, gives its 15 credits back, and is then not found."""
    reply = client.send(flux(paris(timedelta(hours=1))))
    assert (reply.status, reply.credits) == (101, 999_985)
    assert reply.campaign_id is not None

    client.delete_campaign(reply.campaign_id)
    with pytest.raises(ProviderRefusedError) as again:
        client.delete_campaign(reply.campaign_id)

    assert str(again.value) == NOT_FOUND
    assert (again.value.status, again.value.status_text) == ("0", "Campaign not found")
    assert client.get_info() == 1_000_000
    assert deletes(sandbox) == [(reply.campaign_id, "OK", None), (reply.campaign_id, 0, None)]


def test_sent_unknown_and_unauthenticated_deletes_are_refused(
    sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """A campaign sent at once, a due one, an unknown id, a blank id and a wrong apiKey each
    get an error answer naming why."""
    now = client.send(flux())
    soon = client.send(flux(paris(timedelta(seconds=1))))
    assert (now.status, soon.status) == (100, 101)
    time.sleep(2.1)  # DATE has a one-second grain: past it for sure
    outcomes = {}
    for name, campaign in (
        ("now", now.campaign_id),
        ("soon", soon.campaign_id),
        ("nope", "x1"),
        ("blank", ""),
    ):
        with pytest.raises(ProviderRefusedError) as refused:
            client.delete_campaign(str(campaign))
        outcomes[name] = str(refused.value)
    wrong = _client(sandbox.base_url, api_key="wrong")
    with pytest.raises(ProviderRefusedError) as unauthenticated:
        wrong.delete_campaign(str(soon.campaign_id))
    wrong.close()

    assert outcomes == {
        "now": "AllMySMS deleteCampaign refused: status 0 (Campaign is not deferred: it was sent "
        "at once)",
        "soon": "AllMySMS deleteCampaign refused: status 0 (Campaign already sent: it can no "
        "longer be deleted)",
        "nope": NOT_FOUND,
        "blank": "AllMySMS deleteCampaign refused: status 0 (campId is required)",
    }
    assert unauthenticated.value.status == "102"
    assert API_KEY not in str(unauthenticated.value)
    assert [status for _, status, _ in deletes(sandbox)] == [0, 0, 0, 0, 102]


def test_a_deleted_campaign_never_sends_its_receipts_and_a_kept_one_does(
    sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """Receipts of a deferred campaign come at its DATE; deleting it first drops them."""
    sandbox.set_receipts_url(f"http://127.0.0.1:{sandbox.port}/webhook", delay_ms=0)
    date = paris(timedelta(seconds=2))
    kept = client.send(flux(date, phone="33611111111"))
    gone = client.send(flux(date, phone="33622222222"))
    assert sandbox.receipts.pending() == 4

    client.delete_campaign(str(gone.campaign_id))
    assert sandbox.receipts.pending() == 2
    assert sandbox.receipts.log() == []  # nothing before the DATE
    wait_for(lambda: len(sandbox.receipts.log()) == 2, what="the kept campaign's receipts")
    time.sleep(0.3)

    log = sandbox.receipts.log()
    assert [(e["campaignId"], e["status"]) for e in log] == [
        (kept.campaign_id, "3"),
        (kept.campaign_id, "1"),
    ]


def test_delete_campaign_reads_query_form_and_multipart(
    sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """Like every AllMySMS endpoint, the parameters may come as a query, a form or multipart."""
    ids = [client.send(flux(paris(timedelta(hours=1)))).campaign_id for _ in range(3)]
    url = f"{sandbox.base_url}/deleteCampaign"
    auth = {"login": LOGIN, "apiKey": API_KEY}
    query = httpx.get(url, params={**auth, "campId": str(ids[0])})
    form = httpx.post(url + "/", data={**auth, "campId": str(ids[1])})
    fields = {**auth, "campId": ids[2]}
    multipart = httpx.post(url, files={k: (None, str(v)) for k, v in fields.items()})

    assert [r.json() for r in (query, form, multipart)] == [{"status": "OK"}] * 3
    assert API_KEY not in json.dumps(sandbox.requests())


# --- faults and the client's error semantics --------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "message", "deleted"),
    [
        (
            {"action": "html502"},
            OutcomeUnknownError,
            "AllMySMS deleteCampaign answered HTTP 502",
            False,
        ),
        (
            {"action": "busy", "http_status": 503, "retry_after": 5},
            OutcomeUnknownError,
            "AllMySMS deleteCampaign answered HTTP 503",
            False,
        ),
        (
            {"action": "truncated"},
            OutcomeUnknownError,
            "AllMySMS deleteCampaign answered HTTP 200 with a body that is not a JSON object",
            True,
        ),
        (
            {"action": "status", "status": 102},
            ProviderRefusedError,
            "AllMySMS deleteCampaign refused: status 102 (Problème de connexion – Aucun compte "  # noqa: RUF001
            "ne correspond aux clientcode et passcode spécifiés)",
            False,
        ),
        (
            {"action": "delay", "delay_ms": 3000},
            OutcomeUnknownError,
            "ReadTimeout during deleteCampaign",
            True,
        ),
        (
            {"action": "drop"},
            OutcomeUnknownError,
            "RemoteProtocolError during deleteCampaign",
            False,
        ),
        (
            {"action": "not_http"},
            OutcomeUnknownError,
            "RemoteProtocolError during deleteCampaign",
            False,
        ),
    ],
)
def test_delete_campaign_faults_raise_a_clear_error(
    sandbox: SandboxProvider,
    client: AllMySmsClient,
    fault: dict[str, object],
    error: type[Exception],
    message: str,
    deleted: bool,
) -> None:
    """Each fault mode gives one error naming what happened (never the apiKey); where the
    sandbox processed the request (truncated, late answer) the campaign is gone, else a second
    try deletes it."""
    campaign = str(client.send(flux(paris(timedelta(hours=1)))).campaign_id)
    sandbox.add_fault({"endpoint": "deleteCampaign", **fault})

    with pytest.raises(error) as caught:
        client.delete_campaign(campaign)

    assert str(caught.value) == message
    assert API_KEY not in str(caught.value)
    if deleted:
        with pytest.raises(ProviderRefusedError, match=f"^{re.escape(NOT_FOUND)}$"):
            client.delete_campaign(campaign)
    else:
        client.delete_campaign(campaign)
    assert [f for _, _, f in deletes(sandbox)] == [fault["action"], None]


def test_delete_campaign_unreachable_is_not_sent() -> None:
    http = _client("http://127.0.0.1:9/http/9.0")
    with pytest.raises(
        NotSentError, match=r"^ConnectError: AllMySMS deleteCampaign was not reached$"
    ):
        http.delete_campaign("c1")
    http.close()


def test_delete_campaign_posts_its_form_to_delete_campaign() -> None:
    """login, apiKey, campId and returnformat=json go as a form POST to /deleteCampaign/."""
    seen: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text='{"status":"OK"}')

    http = AllMySmsClient(
        base_url="https://api.example/http/9.0/",
        login="acme",
        api_key=Secret("key-123456"),
        timeout=TIMEOUT,
        transport=httpx.MockTransport(provider),
    )
    http.delete_campaign("camp-7")
    http.close()

    [request] = seen
    assert (request.method, str(request.url)) == (
        "POST",
        "https://api.example/http/9.0/deleteCampaign/",
    )
    assert parse_qs(request.content.decode()) == {
        "login": ["acme"],
        "apiKey": ["key-123456"],
        "campId": ["camp-7"],
        "returnformat": ["json"],
    }


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b'{"status":"OK"}', None),
        (b'{"status":" ok "}', None),
        (b'{"status":"OK","statusText":"deleted"}', None),
        (b'{"status":100}', "AllMySMS deleteCampaign refused: status 100"),
        (
            b'{"status":"KO","statusText":"nope"}',
            "AllMySMS deleteCampaign refused: status KO (nope)",
        ),
        (
            b'{"statusText":"who knows"}',
            "AllMySMS deleteCampaign refused: status missing (who knows)",
        ),
        (b'{"status":true}', "AllMySMS deleteCampaign refused: status true"),
        (b'{"status":["OK"]}', "AllMySMS deleteCampaign refused: status list"),
        (
            b'{"status":0,"statusText":"' + b"x" * 150 + b'"}',
            "AllMySMS deleteCampaign refused: status 0 (" + "x" * 100 + "...)",
        ),
        (
            b'["OK"]',
            "AllMySMS deleteCampaign answered HTTP 200 with a body that is not a JSON object",
        ),
        (b"OK", "AllMySMS deleteCampaign answered HTTP 200 with a body that is not a JSON object"),
        (b"", "AllMySMS deleteCampaign answered HTTP 200 with a body that is not a JSON object"),
    ],
)
def test_parse_delete_accepts_only_ok(body: bytes, outcome: str | None) -> None:
    """Only ``status`` "OK" (any case, spaces around) is a deletion; the rest says what came."""
    if outcome is None:
        parse_delete(200, body)
        return
    with pytest.raises((OutcomeUnknownError, ProviderRefusedError)) as caught:
        parse_delete(200, body)
    assert str(caught.value) == outcome


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    http_status=st.sampled_from([200, 200, 200, 404, 500, 502]),
    body=st.binary(max_size=200)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({"status": JSON_VALUES}, optional={"statusText": JSON_VALUES}).map(
        lambda v: json.dumps(v).encode()
    ),
)
def test_any_answer_is_ok_or_one_clear_error(http_status: int, body: bytes) -> None:
    """Whatever the bytes, parse_delete returns (only for status OK) or raises one of the two
    documented errors with a one-line message."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    status = data.get("status") if isinstance(data, dict) else None
    if http_status == 200 and isinstance(status, str) and status.strip().upper() == "OK":
        parse_delete(http_status, body)
        return
    with pytest.raises((OutcomeUnknownError, ProviderRefusedError)) as caught:
        parse_delete(http_status, body)
    text = str(caught.value)
    assert text.startswith("AllMySMS deleteCampaign ")
    assert len(text) < 200


def test_the_sandbox_forgets_the_oldest_campaigns_past_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory stays bounded in a long soak: past the bound, the oldest is "not found"."""
    monkeypatch.setattr(campaigns, "REMEMBERED_MAX", 2)
    book = campaigns.DeferredCampaigns()
    for n in range(3):
        book.remember(f"d{n}", due_at=time.time() + 60, credits=15)
        book.remember(f"i{n}", due_at=None, credits=15)

    answers = {c: book.delete(c, time.time())[0] for c in ("d0", "d1", "i0", "i1")}

    assert answers == {
        "d0": {"status": 0, "statusText": "Campaign not found"},
        "d1": {"status": "OK"},
        "i0": {"status": 0, "statusText": "Campaign not found"},
        "i1": {"status": 0, "statusText": "Campaign is not deferred: it was sent at once"},
    }
