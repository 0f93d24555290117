"""``smsq gateway`` against hostile producers, over real sockets and a real redis-server: fluxes
that used to end as HTTP 500 (deep nesting, lone surrogates, dates at the calendar's edge),
client-sent values reflected as markup, and nesting that cost other producers their latency."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis
from starlette.requests import Request
from starlette.responses import Response

from tests.helpers.gateway import PATH, PHONE, SHOP, answer, gateway_settings, json_flux, post
from worker.allmysms.flux import STATUS_TEXTS
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running


BAD_FLUX = STATUS_TEXTS[106]
BAD_DATE = STATUS_TEXTS[115]
SECURITY = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
}


@pytest.fixture
def gateway(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    """The gateway under uvicorn on a free loopback port, reading bodies up to 8 MiB (2 MB of
    XML nesting is 4 MB form-encoded)."""
    settings = gateway_settings(redis_server.url, max_body_bytes=8 * 1024 * 1024)
    with running(create_app(settings, redis)) as base_url:
        yield base_url + PATH


def surrogate_flux(field: str) -> str:
    """A JSON flux whose ``field`` holds the escape ``\\ud800`` (a lone surrogate)."""
    data = json.loads(json_flux(MESSAGE="Bonjour #param_1#", TPOA="Shop", CLIMSGID="k1"))
    if field.startswith("SMS"):
        data["DATA"]["SMS"][0][field.split(".")[1]] = "\ud800"
    else:
        data["DATA"][field] = "ab\ud800"
    return json.dumps(data)  # ensure_ascii: the surrogate goes out as the text \ud800


@pytest.mark.parametrize(
    ("sms_data", "status", "text"),
    [
        (
            '{"DATA":{"MESSAGE":"hi","SMS":' + "[" * 100_000 + "]" * 100_000 + "}}",
            106,
            f"{BAD_FLUX} (smsData: nested deeper than 32 levels)",
        ),
        (
            '{"DATA":{"MESSAGE":"hi","SMS":[{"MOBILEPHONE":"1","x":' + "[" * 40 + "]" * 40 + "}]}}",
            106,
            f"{BAD_FLUX} (smsData: nested deeper than 32 levels)",
        ),
        (
            "<DATA><MESSAGE>hi</MESSAGE>" + "<a>" * 290_000 + "</a>" * 290_000 + "</DATA>",
            106,
            f"{BAD_FLUX} (smsData: nested deeper than 32 levels)",
        ),
        (
            "<DATA><MESSAGE>hi</MESSAGE>" + "<a/>" * 500_000 + "</DATA>",
            106,
            f"{BAD_FLUX} (smsData: more than 120100 elements or values)",
        ),
        (
            surrogate_flux("MESSAGE"),
            106,
            f"{BAD_FLUX} (MESSAGE: holds a lone surrogate (\\ud800), which is not text)",
        ),
        (
            surrogate_flux("CLIMSGID"),
            106,
            f"{BAD_FLUX} (CLIMSGID: holds a lone surrogate (\\ud800), which is not text)",
        ),
        (
            surrogate_flux("TPOA"),
            106,
            f"{BAD_FLUX} (TPOA: holds a lone surrogate (\\ud800), which is not text)",
        ),
        (
            surrogate_flux("SMS.PARAM_1"),
            106,
            f"{BAD_FLUX} (SMS[0].PARAM_1: holds a lone surrogate (\\ud800), which is not text)",
        ),
        (
            surrogate_flux("SMS.MOBILEPHONE"),
            106,
            f"{BAD_FLUX} (SMS[0].MOBILEPHONE: holds a lone surrogate (\\ud800), which is not text)",
        ),
        (
            json_flux(DATE="9999-12-31 23:59:59"),
            115,
            f"{BAD_DATE} (DATE: at most 366 days ahead)",
        ),
        (
            json_flux(DATE="0001-01-01 00:00:00"),
            115,
            f"{BAD_DATE} (DATE: outside the calendar once read as Paris time)",
        ),
    ],
    ids=[
        "json-100000-deep",
        "json-42-deep",
        "xml-290000-deep",
        "xml-500000-wide",
        "surrogate-MESSAGE",
        "surrogate-CLIMSGID",
        "surrogate-TPOA",
        "surrogate-PARAM_1",
        "surrogate-MOBILEPHONE",
        "date-9999",
        "date-0001",
    ],
)
def test_hostile_fluxes_get_the_flux_status_naming_the_field(
    gateway: str, redis: Redis, sms_data: str, status: int, text: str
) -> None:
    response = post(gateway, sms_data)
    assert response.status_code == 200
    assert answer(response) == {"status": status, "statusText": text}
    assert redis.keys("smsq:msg:*") == []


def test_a_surrogate_in_a_utf7_multipart_part_is_refused(gateway: str, redis: Redis) -> None:
    """The multipart charset is the client's choice; UTF-7 decodes to lone surrogates."""
    boundary = "b0undary"
    parts = {"login": SHOP[0], "apiKey": SHOP[1], "smsData": json_flux(), "returnformat": "json"}
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in parts.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="lane"\r\n\r\n'
        f"+2AA-\r\n--{boundary}--\r\n"
    )
    response = httpx.post(
        gateway,
        content=body.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}; charset=utf-7"},
        timeout=10,
    )
    assert answer(response) == {
        "status": 106,
        "statusText": f"{BAD_FLUX} (lane: holds a lone surrogate (\\ud800), which is not text)",
    }
    assert redis.keys("smsq:msg:*") == []


def test_a_refused_phone_is_not_reflected_as_markup(gateway: str) -> None:
    """A GET link carrying ``<script>`` in a number: the body escapes it, the headers forbid
    sniffing and running anything, and a JSON parser still reads the number as sent."""
    phone = "<script>alert(1)</script>"
    flux = json.dumps(
        {"DATA": {"MESSAGE": "hi", "SMS": [{"MOBILEPHONE": PHONE}, {"MOBILEPHONE": phone}]}}
    )
    response = httpx.get(
        gateway,
        params={"login": SHOP[0], "apiKey": SHOP[1], "smsData": flux},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    assert {name: response.headers.get(name) for name in SECURITY} == SECURITY
    assert b"<" not in response.content
    assert b">" not in response.content
    assert (
        b'"invalidNumbers":"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"' in response.content
    )
    reply = json.loads(response.content)
    assert reply["status"] == 113
    assert reply["invalidNumbers"] == phone


def test_every_response_carries_the_security_headers(gateway: str) -> None:
    base = gateway.removesuffix(PATH)
    responses = [
        post(gateway, json_flux()),
        post(gateway, json_flux(), account=(SHOP[0], "wrong-key-wrong-key")),
        post(gateway, "<DATA>", returnformat="xml"),
        httpx.get(base + "/healthz", timeout=10),
        httpx.get(base + "/nowhere?<b>", timeout=10),
        httpx.request("DELETE", gateway, timeout=10),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 404, 405]
    for response in responses:
        assert {name: response.headers.get(name) for name in SECURITY} == SECURITY
        assert b"<script" not in response.content


def test_a_status_text_with_tags_is_escaped_json(gateway: str) -> None:
    """107's provider text names ``<SMS>``: it goes out as ``\\u003cSMS\\u003e``."""
    response = post(gateway, '{"DATA": {"MESSAGE": "hi"}}')
    assert b"\\u003cSMS\\u003e" in response.content
    assert answer(response)["statusText"] == (
        f"{STATUS_TEXTS[107]} <SMS> (at least one SMS entry, each with a MOBILEPHONE)"
    )


def test_a_server_error_carries_the_security_headers(
    redis_server: RedisServer, redis: Redis
) -> None:
    """A 500 leaves through Starlette's outermost middleware: the headers come from the answer."""
    app = create_app(gateway_settings(redis_server.url), redis)

    async def boom(_request: Request) -> Response:
        raise RuntimeError("boom")

    app.add_route("/boom", boom)
    with running(app) as base_url:
        response = httpx.get(base_url + "/boom", timeout=10)
    assert response.status_code == 500
    assert {name: response.headers.get(name) for name in SECURITY} == SECURITY
    assert json.loads(response.text)["status"] == 500
