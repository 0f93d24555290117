"""What every read-only account route of the gateway (getAcks, getAckBySmsId, getPull,
getPullBySmsId, getPulls, getInfo, getBlacklist) shares with sendSms: sign-in, throttle, rate
limit, methods, paths, body limits, Redis down; and hostile parameters never end in a 500.
Over real sockets, the gateway under uvicorn on a real redis-server."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from xml.etree import ElementTree

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from tests.helpers.gateway import BLOG, PATH, SHOP, gateway_settings, json_flux, post
from tests.helpers.gateway_api import call
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.endpoints import ITEM_NAMES, render_xml
from worker.gateway.server import running


ENDPOINTS = (
    "getAcks",
    "getAckBySmsId",
    "getPull",
    "getPullBySmsId",
    "getPulls",
    "getInfo",
    "getBlacklist",
    "smsqStatus",
)
ANSWER_KEYS = {"status", "statusText", "acks", "cliMsgId", "mos", "credits", "blacklist"}
ANSWER_KEYS |= {"phoneNumber", "statut", "comment", "receptionDate"}


@pytest.fixture
def base(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    """The gateway without AllMySMS credentials (getInfo and getBlacklist answer 501)."""
    settings = gateway_settings(redis_server.url, max_body_bytes=4096)
    with running(create_app(settings, redis)) as base_url:
        yield base_url


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_bad_login_is_102_on_every_path_and_method(base: str, endpoint: str) -> None:
    """A bad login is 102 at every path with GET and POST, with the security headers."""
    for path in ("/http/9.0/{}/", "/http/9.0/{}", "/{}/", "/{}"):
        for method in ("GET", "POST"):
            response = call(base, endpoint, (SHOP[0], "wrong-key-000000"), method=method, path=path)
            assert response.status_code == 200, (path, method)
            assert json.loads(response.text) == {
                "status": 102,
                "statusText": json.loads(response.text)["statusText"],
            }
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_methods_bodies_and_multipart_are_read_as_sendsms_reads_them(
    base: str, endpoint: str
) -> None:
    """PUT and HEAD are 405, a large body 413, a broken multipart 400, a multipart form is read."""
    url = f"{base}/http/9.0/{endpoint}/"
    wrong = httpx.put(url, timeout=10)
    head = httpx.head(url, params={"login": SHOP[0], "apiKey": SHOP[1]}, timeout=10)
    huge = httpx.post(url, data={"login": SHOP[0], "apiKey": SHOP[1], "x": "y" * 5000}, timeout=10)
    broken = httpx.post(
        url,
        content=b"--b\r\nnot a part",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
        timeout=10,
    )
    multipart = httpx.post(
        url, files={"login": (None, BLOG[0]), "apiKey": (None, "wrong-key-000000")}, timeout=10
    )

    assert (wrong.status_code, wrong.json()["status"]) == (405, 405)
    assert head.status_code == 405
    assert head.headers["allow"] == "GET, POST"
    assert (huge.status_code, huge.json()) == (
        413,
        {"status": 413, "statusText": "Request body larger than 4096 bytes"},
    )
    assert (broken.status_code, broken.json()["status"]) == (400, 400)
    assert (multipart.status_code, multipart.json()["status"]) == (200, 102)


def test_the_rate_limit_is_shared_with_sendsms(redis_server: RedisServer, redis: Redis) -> None:
    """sendSms and the read routes share one rate budget per login."""
    settings = dataclasses.replace(
        gateway_settings(redis_server.url),
        gateway_rate_per_s=0.01,
        gateway_rate_burst=len(ENDPOINTS),
    )
    with running(create_app(settings, redis)) as base:
        sent = post(base + PATH, json_flux())
        answers = [call(base, endpoint) for endpoint in ENDPOINTS]
        other = call(base, "getPulls", BLOG)

    assert sent.status_code == 200
    assert [a.status_code for a in answers] == [200] * 5 + [501, 501, 429]  # sendSms took one
    assert (
        answers[-1]
        .json()["statusText"]
        .startswith("Too many requests: login shop is over 0.01 requests per second")
    )
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert other.status_code == 200  # another login has its own budget


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_failed_logins_lock_the_address_out(
    redis_server: RedisServer, redis: Redis, endpoint: str
) -> None:
    """Failed logins on a read route lock the address out even with the right key."""
    settings = dataclasses.replace(
        gateway_settings(redis_server.url), gateway_login_failures_per_address=2
    )
    with running(create_app(settings, redis)) as base:
        failures = [call(base, endpoint, (SHOP[0], "wrong-key-000000")) for _ in range(2)]
        locked = call(base, endpoint)  # the right key, from a locked-out address

    assert [f.json()["status"] for f in failures] == [102, 102]
    assert locked.status_code == 429
    assert "too many failed logins from this address" in locked.json()["statusText"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_redis_down_answers_503(redis_server: RedisServer, endpoint: str) -> None:
    """Redis down answers 503 with Retry-After in the client's format."""
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    with running(create_app(gateway_settings(redis_server.url), down)) as base:
        response = call(base, endpoint, campId="0" * 32, smsId="0" * 32 + "-1", returnformat="xml")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "<status>503</status>" in response.text
    assert "Traceback" not in response.text


@pytest.fixture(scope="module")
def client(redis_server: RedisServer) -> Iterator[httpx.Client]:
    """One keep-alive client on a gateway that never locks anyone out (examples fail logins)."""
    connection = Redis.from_url(redis_server.url)
    app_settings = dataclasses.replace(
        gateway_settings(redis_server.url),
        gateway_login_failures_per_address=0,
        gateway_login_failures_per_login=0,
    )
    with running(create_app(app_settings, connection)) as url, httpx.Client(base_url=url) as http:
        yield http
    connection.close()


NAMES = st.sampled_from(["campId", "smsId", "limit", "returnformat", "login", "apiKey"])
VALUES = (
    st.text(max_size=60)
    | st.sampled_from(["", " ", "0" * 32, "0" * 32 + "-1", "xml", "XML", "json", "1000", "-1"])
    | st.from_regex(r"[0-9a-f]{32}(-[0-9]{1,7})?", fullmatch=True)
)


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=max(settings().max_examples // 2, 1),  # each example is a real HTTP request
)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    params=st.dictionaries(NAMES, VALUES, max_size=6),
    signed_in=st.booleans(),
    method=st.sampled_from(["GET", "POST"]),
)
def test_hostile_parameters_get_a_clear_answer_never_a_500(
    client: httpx.Client, endpoint: str, params: dict[str, str], signed_in: bool, method: str
) -> None:
    """Any parameters get a 200 or 501 answer in the endpoint's keys, never a 500."""
    fields = {**params, "login": SHOP[0], "apiKey": SHOP[1]} if signed_in else params
    safe = {
        k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for k, v in fields.items()
    }
    url = f"/http/9.0/{endpoint}/"
    response = client.get(url, params=safe) if method == "GET" else client.post(url, data=safe)

    assert response.status_code in {200, 501}, response.text
    if response.headers["content-type"].startswith("text/xml"):
        root = ElementTree.fromstring(response.content)  # noqa: S314 - the gateway's own answer
        assert root.tag == "response"
        assert {child.tag for child in root} <= ANSWER_KEYS
    else:
        body = json.loads(response.text)
        assert set(body) <= ANSWER_KEYS
        if "status" in body and "statusText" in body:
            assert body["statusText"]


def xml_char(c: str) -> bool:
    """Whether XML 1.0 can carry ``c`` (its Char production)."""
    return c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"


@given(text=st.text(), key=st.sampled_from(["acks", "mos", "blacklist"]))
def test_any_text_renders_as_well_formed_xml(text: str, key: str) -> None:
    """Any text renders as well-formed XML, characters XML cannot carry as U+FFFD."""
    body = render_xml({key: [{"message": text}], "cliMsgId": text})

    root = ElementTree.fromstring(body)  # noqa: S314 - our own rendering
    [item] = root.find(key)  # type: ignore[misc]
    expected = "".join(c if xml_char(c) else "\ufffd" for c in text)
    got = item.find("message").text or ""  # type: ignore[union-attr]
    assert got == expected.replace("\r\n", "\n").replace("\r", "\n")  # XML's line ends
    assert item.tag == ITEM_NAMES[key]
