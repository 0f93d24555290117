"""The client's simulate() and get_blacklist(): over real sockets against the sandbox, and their
lenient parsers (MockTransport, hypothesis)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.contract import parse_request
from producers.errors import NotSentError, OutcomeUnknownError
from producers.payload import build_flux, build_fluxes
from producers.simulation import (
    TEXT_113,
    BlacklistEntry,
    Simulation,
    combine,
    parse_blacklist,
    parse_simulation,
)
from tests.helpers.processes import API_KEY, LOGIN
from worker.allmysms.client import AllMySmsClient
from worker.allmysms.flux import STATUS_TEXTS
from worker.sandbox import SandboxProvider
from worker.settings import Secret


TIMEOUT = httpx.Timeout(2.0)
FLUX = {
    "DATA": {
        "MESSAGE": "Bonjour #param_1#",
        "SMS": [
            {"MOBILEPHONE": "33612345678", "PARAM_1": "Ann"},
            {"MOBILEPHONE": "33612345679", "PARAM_1": "x" * 200},
            {"MOBILEPHONE": "33600999999", "PARAM_1": "Bob"},
        ],
    }
}


def _client(base_url: str, transport: httpx.BaseTransport | None = None) -> AllMySmsClient:
    return AllMySmsClient(
        base_url=base_url,
        login=LOGIN,
        api_key=Secret(API_KEY),
        timeout=TIMEOUT,
        transport=transport,
    )


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    http = _client(sandbox.base_url)
    yield http
    http.close()


def _mock(body: bytes | str, status: int = 200) -> AllMySmsClient:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        content = body.encode() if isinstance(body, str) else body
        return httpx.Response(status, content=content, headers={"Content-Type": "text/html"})

    return _client("https://api.example.test/http/9.0", httpx.MockTransport(handler))


def test_simulate_asks_the_sandbox_and_sends_nothing(
    sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """One simulateCampaign request with the flux as sent; the counts come back as ints."""
    simulation = client.simulate(FLUX)
    assert simulation == Simulation(
        status=113,
        status_text=STATUS_TEXTS[113],
        nb_sms=3,
        nb_credits=45,
        nb_contacts=2,
        invalid_numbers=["33600999999"],
    )
    assert simulation.would_send
    logged = sandbox.requests()
    assert [(r["endpoint"], r["data"]) for r in logged] == [("simulateCampaign", FLUX["DATA"])]
    assert client.get_info() == 1_000_000


def test_simulate_of_a_refused_flux_is_a_simulation_that_would_not_send(
    client: AllMySmsClient,
) -> None:
    refused = client.simulate({"DATA": {"MESSAGE": "", "SMS": [{"MOBILEPHONE": "33612345678"}]}})
    assert refused == Simulation(status=110, status_text=STATUS_TEXTS[110])
    assert not refused.would_send
    nobody = client.simulate({"DATA": {"MESSAGE": "x", "SMS": [{"MOBILEPHONE": "33600999999"}]}})
    assert (nobody.status, nobody.nb_sms, nobody.invalid_numbers) == (114, 0, ["33600999999"])
    assert not nobody.would_send


def test_get_blacklist_reads_the_sandbox_stop_list(
    sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    assert client.get_blacklist() == []
    sandbox.blacklist({"phoneNumber": "0612345678", "receptionDate": "2026-12-01 08:00:00"})
    assert client.get_blacklist() == [
        BlacklistEntry(
            phone_number="33612345678", comment="stop", reception_date="2026-12-01 08:00:00"
        )
    ]
    assert [r["endpoint"] for r in sandbox.requests()] == ["getBlacklist", "getBlacklist"]


@pytest.mark.parametrize("endpoint", ["simulateCampaign", "getBlacklist"])
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"action": "html502"}, "AllMySMS {} answered HTTP 502"),
        ({"action": "truncated"}, "AllMySMS {} answered HTTP 200 with a body that is not JSON"),
        ({"action": "busy"}, "AllMySMS {} answered HTTP 503"),
        ({"action": "delay", "delay_ms": 3000}, "ReadTimeout during {}"),
        ({"action": "drop"}, "RemoteProtocolError during {}"),
    ],
)
def test_failures_are_clear_errors_without_the_key(
    sandbox: SandboxProvider,
    client: AllMySmsClient,
    endpoint: str,
    fault: dict[str, Any],
    error: str,
) -> None:
    sandbox.add_fault({"endpoint": endpoint, **fault})
    with pytest.raises(OutcomeUnknownError) as caught:
        _call(client, endpoint)
    assert str(caught.value) == error.format(endpoint)
    assert API_KEY not in str(caught.value)


def _call(client: AllMySmsClient, endpoint: str) -> object:
    if endpoint == "simulateCampaign":
        return client.simulate(FLUX)
    return client.get_blacklist()


def test_get_blacklist_error_answer_names_its_status(
    sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    sandbox.add_fault({"endpoint": "getBlacklist", "action": "status", "status": 102})
    with pytest.raises(
        OutcomeUnknownError,
        match=r"^AllMySMS getBlacklist answered without a blacklist "
        r"\(status 102\)$",
    ):
        client.get_blacklist()


def test_unreachable_is_not_sent() -> None:
    http = _client("http://127.0.0.1:9/http/9.0")
    with pytest.raises(
        NotSentError, match=r"^ConnectError: AllMySMS simulateCampaign was not reached$"
    ):
        http.simulate(FLUX)
    with pytest.raises(
        NotSentError, match=r"^ConnectError: AllMySMS getBlacklist was not reached$"
    ):
        http.get_blacklist()
    http.close()


def test_simulate_posts_a_form_with_the_flux() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"status": 100, "nbSms": 1, "nbCredits": 15, "nbContacts": 1}
        )

    http = _client("https://api.example.test/http/9.0/", httpx.MockTransport(handler))
    http.simulate({"DATA": {"MESSAGE": "é", "SMS": [{"MOBILEPHONE": "33612345678"}]}})
    (request,) = seen
    assert str(request.url) == "https://api.example.test/http/9.0/simulateCampaign/"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {
        "login": LOGIN,
        "apiKey": API_KEY,
        "smsData": '{"DATA":{"MESSAGE":"é","SMS":[{"MOBILEPHONE":"33612345678"}]}}',
        "returnformat": "json",
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '{"status":"100","statusText":"ok","invalidNumbers":"","nbCredits":"30",'
            '"nbContacts":"2","nbSms":"2"}',
            Simulation(status=100, status_text="ok", nb_sms=2, nb_credits=30, nb_contacts=2),
        ),
        (
            '{"status":113,"invalidNumbers":"1|2 | ","nbCredits":15.0,"nbContacts":1,"nbSms":1}',
            Simulation(
                status=113,
                status_text="",
                nb_sms=1,
                nb_credits=15,
                nb_contacts=1,
                invalid_numbers=["1", "2"],
            ),
        ),
        (
            '{"status":101,"invalidNumbers":["33600999999",33600999998],'
            '"nbCredits":15,"nbContacts":1,"nbSms":1}',
            Simulation(
                status=101,
                status_text="",
                nb_sms=1,
                nb_credits=15,
                nb_contacts=1,
                invalid_numbers=["33600999999", "33600999998"],
            ),
        ),
        (
            '{"status":114,"invalidNumbers":"12"}',
            Simulation(status=114, status_text="", invalid_numbers=["12"]),
        ),
        ('{"status":102,"statusText":"no"}', Simulation(status=102, status_text="no")),
    ],
)
def test_parse_simulation_is_lenient(body: str, expected: Simulation) -> None:
    assert _mock(body).simulate(FLUX) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", "AllMySMS simulateCampaign answered HTTP 200 with JSON that is not an object"),
        ("{}", "AllMySMS simulateCampaign answered without a status from 100 to 118"),
        ('{"status": 99}', "AllMySMS simulateCampaign answered without a status from 100 to 118"),
        ('{"status": true}', "AllMySMS simulateCampaign answered without a status from 100 to 118"),
        (
            '{"status": 100, "nbCredits": 15, "nbContacts": 1}',
            "AllMySMS simulateCampaign answered status 100 without a whole non-negative nbSms",
        ),
        (
            '{"status": 113, "nbSms": 1, "nbCredits": "many", "nbContacts": 1}',
            "AllMySMS simulateCampaign answered status 113 without a whole non-negative nbCredits",
        ),
        (
            '{"status": 100, "nbSms": 1, "nbCredits": 15, "nbContacts": -1}',
            "AllMySMS simulateCampaign answered status 100 without a whole non-negative nbContacts",
        ),
        (
            '{"status": 114, "nbSms": 1.5}',
            "AllMySMS simulateCampaign answered status 114 without a whole non-negative nbSms",
        ),
        (b"\xff\xfe", "AllMySMS simulateCampaign answered HTTP 200 with a body that is not JSON"),
        ("[" * 100_000, "AllMySMS simulateCampaign answered HTTP 200 with a body that is not JSON"),
    ],
)
def test_parse_simulation_names_what_is_missing(body: str | bytes, message: str) -> None:
    with pytest.raises(OutcomeUnknownError) as caught:
        _mock(body).simulate(FLUX)
    assert str(caught.value) == message


def test_parse_simulation_refuses_another_http_status() -> None:
    with pytest.raises(OutcomeUnknownError, match=r"^AllMySMS simulateCampaign answered HTTP 404$"):
        _mock('{"status": 100}', status=404).simulate(FLUX)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"blacklist": []}', []),
        ('{"blacklist": ""}', []),
        ('{"blacklist": null}', []),
        (
            '{"blacklist": [{"phoneNumber": 33612345678, "comment": "Refused"}]}',
            [BlacklistEntry(phone_number="33612345678", comment="Refused")],
        ),
    ],
)
def test_parse_blacklist_is_lenient(body: str, expected: list[BlacklistEntry]) -> None:
    assert parse_blacklist(200, body.encode()) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{}", "AllMySMS getBlacklist answered without a blacklist"),
        (
            '{"blacklist": {"a": 1}}',
            "AllMySMS getBlacklist answered a blacklist that is not a list",
        ),
        (
            '{"blacklist": [{"phoneNumber": "1"}, {"comment": "stop"}]}',
            "AllMySMS getBlacklist answered blacklist[1] without a phoneNumber",
        ),
        (
            '{"blacklist": ["33612345678"]}',
            "AllMySMS getBlacklist answered blacklist[0] without a phoneNumber",
        ),
        ("nope", "AllMySMS getBlacklist answered HTTP 200 with a body that is not JSON"),
    ],
)
def test_parse_blacklist_names_what_is_wrong(body: str, message: str) -> None:
    with pytest.raises(OutcomeUnknownError) as caught:
        parse_blacklist(200, body.encode())
    assert str(caught.value) == message


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    ["status", "statusText", "invalidNumbers", "nbSms", "nbCredits", "nbContacts", "blacklist"]
)
ANSWERS = st.dictionaries(KEYS, JSON_VALUES, max_size=7) | st.dictionaries(
    KEYS,
    st.dictionaries(st.sampled_from(["phoneNumber", "comment", "receptionDate"]), JSON_VALUES)
    | st.lists(
        st.dictionaries(st.sampled_from(["phoneNumber", "comment", "receptionDate"]), JSON_VALUES),
        max_size=3,
    ),
)


def _outcome(parse: Any, body: bytes) -> str:
    """``value`` or ``error`` (an OutcomeUnknownError naming AllMySMS); anything else raises."""
    try:
        value = parse(200, body)
    except OutcomeUnknownError as exc:
        message = str(exc)
        return (
            "error" if message.startswith("AllMySMS ") and "Traceback" not in message else message
        )
    if isinstance(value, Simulation):
        counts = (value.nb_sms, value.nb_credits, value.nb_contacts)
        ok = 100 <= value.status <= 118 and min(counts) >= 0
        ok = ok and all(isinstance(n, str) and n for n in value.invalid_numbers)
    else:
        ok = all(isinstance(e, BlacklistEntry) and e.phone_number for e in value)
    return "value" if ok else repr(value)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_value_or_a_clear_error(body: bytes) -> None:
    """Whatever comes back, the parsers answer a value or an OutcomeUnknownError, nothing else."""
    assert _outcome(parse_simulation, body) in {"value", "error"}
    assert _outcome(parse_blacklist, body) in {"value", "error"}


@given(ANSWERS)
def test_any_json_answer_gives_a_value_or_a_clear_error(answer: dict[str, Any]) -> None:
    body = json.dumps(answer).encode()
    assert _outcome(parse_simulation, body) in {"value", "error"}
    assert _outcome(parse_blacklist, body) in {"value", "error"}


def _part(status: int, nb_sms: int = 0, invalid: tuple[str, ...] = ()) -> Simulation:
    return Simulation(
        status=status,
        status_text=STATUS_TEXTS[status],
        nb_sms=nb_sms,
        nb_credits=15 * nb_sms,
        nb_contacts=nb_sms,
        invalid_numbers=list(invalid),
    )


@pytest.mark.parametrize(
    ("parts", "status"),
    [
        ([_part(100, 2)], 100),
        ([_part(101, 2), _part(101, 1)], 101),
        ([_part(100, 2), _part(114, 0, ("1",))], 113),
        ([_part(100, 2), _part(113, 1, ("1",))], 113),
        ([_part(114, 0, ("1",)), _part(114, 0, ("2",))], 114),
        ([_part(100, 2), _part(104), _part(110)], 104),
    ],
)
def test_combine_answers_like_one_send_of_the_whole(parts: list[Simulation], status: int) -> None:
    whole = combine(parts)
    assert (whole.status, whole.status_text) == (status, STATUS_TEXTS[status])
    assert whole.nb_sms == sum(p.nb_sms for p in parts)
    assert whole.nb_credits == 15 * whole.nb_sms
    assert whole.invalid_numbers == [n for p in parts for n in p.invalid_numbers]
    assert whole.would_send is (status in (100, 101, 113))


def test_the_113_text_is_the_status_tables() -> None:
    assert STATUS_TEXTS[113] == TEXT_113


def test_combine_needs_a_part() -> None:
    with pytest.raises(ValueError, match=r"^simulations: at least one is needed$"):
        combine([])


def test_build_fluxes_splits_like_the_workers() -> None:
    request = parse_request(
        {
            "key": "k",
            "text": "Hi #param_1#",
            "to": [{"phone": f"061234567{n}", "params": [f"P{n}"]} for n in range(5)],
        }
    )
    now = datetime.now(UTC)
    assert build_fluxes(request, now=now, chunk=5) == [build_flux(request, now=now)]
    parts = build_fluxes(request, now=now, chunk=2)
    assert [[e["PARAM_1"] for e in f["DATA"]["SMS"]] for f in parts] == [
        ["P0", "P1"],
        ["P2", "P3"],
        ["P4"],
    ]
    assert all(f["DATA"]["MESSAGE"] == "Hi #param_1#" for f in parts)
