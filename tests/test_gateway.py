"""``smsq gateway`` over real sockets: AllMySMS clients (the provider page's own snippets in PHP,
curl, Perl, Ruby and Java) send through smsq by changing only their URL; real redis-server, real
``smsq worker`` processes against the sandbox for the end-to-end ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.errors import ConfigError
from producers.states import State
from producers.store import MessageStore
from tests.helpers.gateway import (
    BLOG,
    CLIENT_TIMEOUT_S,
    PATH,
    PHONE,
    SHOP,
    answer,
    gateway_settings,
    json_flux,
    need,
    post,
    self_signed,
)
from tests.helpers.processes import ROOT, Workers
from worker.allmysms.flux import PARIS, STATUS_TEXTS
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider
from worker.settings import Secret, Settings


PHONE_2 = "33698765432"
CLIENTS = ROOT / "tests" / "clients"
SUCCESS_KEYS = [
    "status",
    "statusText",
    "invalidNumbers",
    "campaignId",
    "nbContacts",
    "nbSms",
    "smsIds",
]


@pytest.fixture
def gateway(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    """The gateway under uvicorn on a free loopback port; yields its sendSms URL."""
    with running(create_app(gateway_settings(redis_server.url), redis)) as base_url:
        yield base_url + PATH


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (the Perl and Ruby snippets insist on https)."""
    return self_signed(tmp_path_factory.mktemp("tls"), "127.0.0.1", "IP:127.0.0.1")


@pytest.fixture
def tls_gateway(
    redis_server: RedisServer, redis: Redis, tls_files: tuple[str, str]
) -> Iterator[str]:
    """The gateway serving HTTPS itself; yields its sendSms URL."""
    cert, key = tls_files
    app = create_app(gateway_settings(redis_server.url), redis)
    with running(app, tls_cert=cert, tls_key=key) as base_url:
        yield base_url + PATH


def xml_flux(message: str = "Bonjour", *phones: str, extra: str = "") -> str:
    sms = "".join(f"<SMS><MOBILEPHONE>{p}</MOBILEPHONE></SMS>" for p in phones or (PHONE,))
    return f"<DATA><MESSAGE><![CDATA[{message}]]></MESSAGE>{extra}{sms}</DATA>"


def xml_answer(text: str) -> dict[str, Any]:
    root = ElementTree.fromstring(text)  # noqa: S314 - the gateway's own answer, no DTD
    assert root.tag == "response"
    out: dict[str, Any] = {}
    for child in root:
        if child.tag == "smsIds":
            out["smsIds"] = [{c.tag: c.text or "" for c in sms} for sms in child]
        else:
            out[child.tag] = child.text or ""
    return out


def messages(redis: Redis) -> list[str]:
    """The message records in Redis (not their histories)."""
    names = [k.decode() if isinstance(k, bytes) else str(k) for k in redis.keys("smsq:msg:*")]
    return [name for name in names if not name.endswith(":history")]


def assert_sent_once(
    workers: Workers,
    sandbox: SandboxProvider,
    store: MessageStore,
    reply: dict[str, Any],
    phones: list[str],
) -> dict[str, Any]:
    """Run a worker: exactly one provider request, to ``phones``; the message ends ``sent``.

    Returns the DATA the sandbox received.
    """
    run = workers.run_burst()
    assert run.returncode == 0, run.log
    requests = sandbox.requests()
    assert len(requests) == 1, requests
    data: dict[str, Any] = requests[0]["data"]
    assert [s["MOBILEPHONE"] for s in data["SMS"]] == phones
    record = store.get_by_id(str(reply["campaignId"]))
    assert record is not None
    assert record.state is State.SENT, record
    return data


# --- the provider page's client snippets ----------------------------------------------------


def client_env(url: str, account: tuple[str, str] = SHOP, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SMSQ_GATEWAY_URL": url,
        "SMSQ_GATEWAY_LOGIN": account[0],
        "SMSQ_GATEWAY_API_KEY": account[1],
        **extra,
    }


def run_client(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        cwd=CLIENTS,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_php_snippet_sends_once(
    gateway: str, workers: Workers, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """The page's PHP snippet, verbatim but for $url/$login/$apiKey: 100, one provider call."""
    php = need("php")
    out = run_client([php, "send.php"], client_env(gateway))
    reply = xml_answer(out)  # an XML flux without returnformat is answered in XML
    assert reply["status"] == "100", out
    assert reply["smsIds"][0]["phoneNumber"] == PHONE
    data = assert_sent_once(workers, sandbox, store, reply, [PHONE])
    assert data["MESSAGE"] == "Envoi de SMS test avec AllMySMS.com"
    assert data["TPOA"] == "allmysms"


def test_curl_equivalent_of_the_snippet_sends_once(
    gateway: str, workers: Workers, sandbox: SandboxProvider, store: MessageStore
) -> None:
    need("curl")
    out = run_client(["sh", "send.sh"], client_env(gateway))
    reply = xml_answer(out)
    assert reply["status"] == "100", out
    data = assert_sent_once(workers, sandbox, store, reply, [PHONE])
    assert data["MESSAGE"] == "Envoi de SMS test avec AllMySMS.com"


def test_curl_get_with_a_json_flux_sends_once(
    gateway: str, workers: Workers, sandbox: SandboxProvider, store: MessageStore
) -> None:
    curl = need("curl")
    out = run_client(
        [
            curl,
            "--silent",
            "--show-error",
            "--get",
            gateway,
            "--data-urlencode",
            f"login={SHOP[0]}",
            "--data-urlencode",
            f"apiKey={SHOP[1]}",
            "--data-urlencode",
            "smsData=" + json_flux(MESSAGE="Code 1234", TPOA="Shop"),
        ],
        os.environ.copy(),
    )
    reply = json.loads(out)
    assert reply["status"] == 100, out
    data = assert_sent_once(workers, sandbox, store, reply, [PHONE])
    assert data["MESSAGE"] == "Code 1234"


def test_perl_lwp_multipart_snippet_sends_once(
    tls_gateway: str,
    tls_files: tuple[str, str],
    workers: Workers,
    sandbox: SandboxProvider,
    store: MessageStore,
) -> None:
    """The page's Perl snippet insists on https: the gateway serves TLS here."""
    perl = need("perl")
    probe = subprocess.run(
        [perl, "-MLWP::UserAgent", "-MHTTP::Request::Common", "-MLWP::Protocol::https", "-e", "1"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(
                "perl LWP with https is missing (apt-get install liblwp-protocol-https-perl)"
            )
        pytest.skip("perl LWP with https is missing")
    out = run_client(
        [perl, "send.pl"],
        client_env(tls_gateway, HTTPS_CA_FILE=tls_files[0], PERL_LWP_SSL_CA_FILE=tls_files[0]),
    )
    reply = xml_answer(out)
    assert reply["status"] == "100", out
    data = assert_sent_once(workers, sandbox, store, reply, [PHONE])
    assert data["MESSAGE"] == "envoi de SMS en perl avec www.allmysms.com"
    assert data["TPOA"] == "EXPEDITEUR"


def test_ruby_net_http_snippet_sends_once(
    tls_gateway: str,
    tls_files: tuple[str, str],
    workers: Workers,
    sandbox: SandboxProvider,
    store: MessageStore,
) -> None:
    ruby = need("ruby")
    out = run_client([ruby, "send.rb"], client_env(tls_gateway, SSL_CERT_FILE=tls_files[0]))
    reply = xml_answer(out)
    assert reply["status"] == "100", out
    data = assert_sent_once(workers, sandbox, store, reply, [PHONE])
    assert data["MESSAGE"] == "envoi de SMS en windev avec www.allmysms.com"


def test_java_get_snippet_sends_once(
    gateway: str, workers: Workers, sandbox: SandboxProvider, store: MessageStore
) -> None:
    """The page's Java snippet sends the XML flux un-encoded in a GET query string."""
    java = need("java")
    out = run_client([java, "sendSms.java"], client_env(gateway))
    reply = xml_answer(out.strip())
    assert reply["status"] == "100", out
    data = assert_sent_once(workers, sandbox, store, reply, [PHONE])
    # URLEncoder turned spaces into '+', read back as spaces; the snippet's extra '[' stays.
    assert data["MESSAGE"] == "[Envoi de SMS en Java avec www.allmysms.com STOP au 36180"


# --- request forms --------------------------------------------------------------------------


def test_post_form_xml_flux_answers_like_allmysms_and_sends(
    gateway: str, workers: Workers, sandbox: SandboxProvider, store: MessageStore
) -> None:
    flux = (
        "<DATA><MESSAGE><![CDATA[Bonjour #param_1#, code #param_2#]]></MESSAGE>"
        "<TPOA>Shop</TPOA><DYNAMIC>2</DYNAMIC><CAMPAIGN_NAME>promo</CAMPAIGN_NAME>"
        "<SMS><MOBILEPHONE>0612345678</MOBILEPHONE><PARAM_1>Ann</PARAM_1>"
        "<PARAM_2>11</PARAM_2></SMS>"
        "<SMS><MOBILEPHONE>+33 6 98 76 54 32</MOBILEPHONE><PARAM_1>Bob</PARAM_1></SMS></DATA>"
    )
    response = post(gateway, flux, returnformat="json")
    reply = answer(response)
    assert list(reply) == SUCCESS_KEYS
    mid = reply["campaignId"]
    assert reply == {
        "status": 100,
        "statusText": STATUS_TEXTS[100],
        "invalidNumbers": "",
        "campaignId": mid,
        "nbContacts": "2",
        "nbSms": "2",
        "smsIds": [
            {"phoneNumber": PHONE, "smsId": f"{mid}-1"},
            {"phoneNumber": PHONE_2, "smsId": f"{mid}-2"},
        ],
    }
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    assert response.headers["x-smsq-message-id"] == mid
    record = store.get_by_id(mid)
    assert record is not None
    assert record.key.startswith("gw:shop:")
    assert record.request["producer"] == "shop"
    assert record.request["campaign"] == "promo"
    assert record.request["sender"] == "Shop"
    assert record.request["to"] == [
        {"phone": PHONE, "params": ["Ann", "11"]},
        {"phone": PHONE_2, "params": ["Bob", ""]},
    ]
    data = assert_sent_once(workers, sandbox, store, reply, [PHONE, PHONE_2])
    assert data["SMS"][0]["PARAM_1"] == "Ann"


def test_post_multipart_and_get_query_are_accepted(gateway: str, store: MessageStore) -> None:
    fields = {"login": SHOP[0], "apiKey": SHOP[1], "smsData": json_flux(), "returnformat": "json"}
    multipart = httpx.post(gateway, files={k: (None, v) for k, v in fields.items()}, timeout=10)
    assert answer(multipart)["status"] == 100
    query = httpx.get(gateway, params=fields, timeout=10)
    assert answer(query)["status"] == 100
    as_file = httpx.post(
        gateway,
        data={k: v for k, v in fields.items() if k != "smsData"},
        files={"smsData": ("flux.json", fields["smsData"].encode())},
        timeout=10,
    )
    assert answer(as_file)["status"] == 100
    for reply in (multipart, query, as_file):
        record = store.get_by_id(answer(reply)["campaignId"])
        assert record is not None
        assert record.state is State.QUEUED


def test_every_path_form_is_served(gateway: str) -> None:
    base = gateway.removesuffix(PATH)
    for path in ("/http/9.0/sendSms", "/http/9.0/sendSms/", "/sendSms", "/sendSms/"):
        response = post(base + path, json_flux())
        assert answer(response)["status"] == 100, path


def test_returnformat_xml_answers_xml(gateway: str) -> None:
    response = post(
        gateway, json_flux(SMS=[{"MOBILEPHONE": PHONE}, {"MOBILEPHONE": "12"}]), returnformat="XML"
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=UTF-8"
    reply = xml_answer(response.text)
    assert reply["status"] == "113"
    assert reply["invalidNumbers"] == "12"
    assert reply["nbContacts"] == "1"
    assert reply["smsIds"] == [{"phoneNumber": PHONE, "smsId": reply["campaignId"] + "-1"}]


def test_json_flux_without_returnformat_answers_json(gateway: str) -> None:
    response = post(gateway, json_flux(), returnformat=None)
    assert response.headers["content-type"] == "text/html; charset=UTF-8"
    assert answer(response)["status"] == 100


# --- scheduling and idempotency -------------------------------------------------------------


def test_future_date_answers_101_and_is_sent_with_that_date(
    gateway: str, workers: Workers, sandbox: SandboxProvider, store: MessageStore
) -> None:
    when = (datetime.now(PARIS) + timedelta(days=2)).replace(microsecond=0)
    date = when.strftime("%Y-%m-%d %H:%M:%S")
    reply = answer(post(gateway, xml_flux(extra=f"<DATE>{date}</DATE>")))
    assert reply["status"] == 101
    assert reply["statusText"] == STATUS_TEXTS[101]
    record = store.get_by_id(reply["campaignId"])
    assert record is not None
    assert datetime.fromisoformat(record.request["send_at"]) == when.astimezone(UTC)
    run = workers.run_burst()
    assert run.returncode == 0, run.log
    requests = sandbox.requests()
    assert len(requests) == 1
    assert requests[0]["data"]["DATE"] == date
    record = store.get_by_id(reply["campaignId"])
    assert record is not None
    assert record.state is State.SCHEDULED


def test_past_date_sends_now(gateway: str, store: MessageStore) -> None:
    reply = answer(post(gateway, xml_flux(extra="<DATE>2020-01-01 10:00:00</DATE>")))
    assert reply["status"] == 100
    record = store.get_by_id(reply["campaignId"])
    assert record is not None
    assert record.request["send_at"] is None


def test_climsgid_retried_twice_sends_once(
    gateway: str, workers: Workers, sandbox: SandboxProvider, store: MessageStore
) -> None:
    flux = json_flux(CLIMSGID="order-42")
    replies = [post(gateway, flux) for _ in range(3)]
    bodies = [answer(r) for r in replies]
    assert bodies[0] == bodies[1] == bodies[2]
    assert "x-smsq-duplicate" not in replies[0].headers
    assert replies[1].headers["x-smsq-duplicate"] == "true"
    record = store.get_by_id(bodies[0]["campaignId"])
    assert record is not None
    assert record.key == "gw:shop:order-42"
    data = assert_sent_once(workers, sandbox, store, bodies[0], [PHONE])
    # AllMySMS gets smsq's own id as CLIMSGID, not the client's: its echo names the message.
    assert data["CLIMSGID"] == record.message_id == keys.message_id("gw:shop:order-42")
    # A retry after the send still answers the same ids, and sends nothing more.
    assert answer(post(gateway, flux)) == bodies[0]
    assert workers.run_burst().returncode == 0
    assert len(sandbox.requests()) == 1


def test_idempotency_key_header_wins_over_climsgid(gateway: str, store: MessageStore) -> None:
    key = str(uuid.uuid4())
    first = answer(post(gateway, json_flux(CLIMSGID="a"), headers={"Idempotency-Key": key}))
    again = answer(post(gateway, json_flux(CLIMSGID="b"), headers={"Idempotency-Key": key}))
    assert first["campaignId"] == again["campaignId"]
    record = store.get_by_id(first["campaignId"])
    assert record is not None
    assert record.key == f"gw:shop:{key}"
    without = answer(post(gateway, json_flux()))
    assert without["campaignId"] != first["campaignId"]  # no key at all: a fresh uuid each time


def test_two_producers_with_the_same_climsgid_do_not_collide(
    gateway: str, store: MessageStore
) -> None:
    shop = answer(post(gateway, json_flux(CLIMSGID="1"), account=SHOP))
    blog = answer(post(gateway, json_flux(CLIMSGID="1"), account=BLOG))
    assert shop["campaignId"] != blog["campaignId"]
    keys = {
        r.key
        for r in (store.get_by_id(shop["campaignId"]), store.get_by_id(blog["campaignId"]))
        if r is not None
    }
    assert keys == {"gw:shop:1", "gw:blog:1"}


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "account",
    [
        (SHOP[0], BLOG[1]),
        ("nobody", SHOP[1]),
        (SHOP[0], ""),
        ("", ""),
        (SHOP[0], SHOP[1] + "x"),
        (SHOP[0], SHOP[1][:-1]),
    ],
)
def test_bad_credentials_answer_102(gateway: str, redis: Redis, account: tuple[str, str]) -> None:
    reply = answer(post(gateway, json_flux(), account=account))
    assert reply == {"status": 102, "statusText": STATUS_TEXTS[102]}
    assert redis.keys("smsq:msg:*") == []


def test_missing_credentials_answer_102(gateway: str) -> None:
    reply = answer(httpx.post(gateway, data={"smsData": json_flux()}, timeout=10))
    assert reply["status"] == 102


@pytest.mark.parametrize(
    ("sms_data", "status", "hint"),
    [
        ("", 105, "smsData is missing"),
        ("   ", 105, "smsData is missing"),
        ("<DATA><MESSAGE>hi</MESSAGE>", 106, "not well-formed XML"),
        ("<NOTDATA/>", 106, "<DATA>"),
        ('{"DATA": {"MESSAGE": "hi", "SMS": [', 106, "not valid JSON"),
        ('{"DATA": "x"}', 106, "<DATA>"),
        ('{"DATA": {"MESSAGE": {"x": 1}, "SMS": []}}', 106, "<DATA>"),
        ("hello", 106, "<DATA>"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><DATA/>', 106, "<DATA>"),
        ('{"DATA": {"MESSAGE": "hi"}}', 107, "MOBILEPHONE"),
        ('{"DATA": {"MESSAGE": "hi", "SMS": [{"PARAM_1": "x"}]}}', 107, "MOBILEPHONE"),
        (xml_flux(""), 110, ""),
        (xml_flux("   "), 110, ""),
        (json_flux(MESSAGE="x" * 641), 111, ""),
        (xml_flux(extra="<DATE>2026-13-01 10:00:00</DATE>"), 115, "YYYY-MM-DD"),
        (xml_flux(extra="<DATE>demain</DATE>"), 115, "YYYY-MM-DD"),
        (xml_flux(extra="<TPOA>1234</TPOA>"), 106, "TPOA: must not be a phone number"),
        (xml_flux(extra="<TPOA>1Shop</TPOA>"), 106, "TPOA: must be 3 to 11"),
        (xml_flux("#param_0#"), 106, "MESSAGE: placeholders"),
        (json_flux(CAMPAIGN_NAME="c" * 101), 106, "CAMPAIGN_NAME"),
        (json_flux(CLIMSGID="k" * 200), 106, "CLIMSGID: must be at most"),
        (json_flux(TPOA=["x"]), 106, "<DATA>"),
    ],
)
def test_malformed_requests_get_the_provider_status(
    gateway: str, redis: Redis, sms_data: str, status: int, hint: str
) -> None:
    reply = answer(post(gateway, sms_data, returnformat="json"))
    assert reply["status"] == status, reply
    assert list(reply) == ["status", "statusText"]
    # The provider's wording, made precise; or, for smsq's own rules, the field and the reason.
    assert reply["statusText"].startswith((STATUS_TEXTS[status][:20], hint))
    assert hint in reply["statusText"]
    assert redis.keys("smsq:msg:*") == []


def test_641_characters_is_111_and_640_is_accepted(gateway: str) -> None:
    assert answer(post(gateway, json_flux(MESSAGE="x" * 640)))["status"] == 100
    assert answer(post(gateway, json_flux(MESSAGE="x" * 641)))["status"] == 111


def test_some_invalid_numbers_answer_113_and_send_the_rest(
    gateway: str, workers: Workers, sandbox: SandboxProvider, store: MessageStore
) -> None:
    reply = answer(post(gateway, xml_flux("Hi", "0612345678", "12", "0140000000", PHONE_2)))
    assert reply["status"] == 113
    assert reply["statusText"] == STATUS_TEXTS[113]
    assert reply["invalidNumbers"] == "12|0140000000"  # too short; a landline
    assert reply["nbContacts"] == "2"
    assert [s["phoneNumber"] for s in reply["smsIds"]] == [PHONE, PHONE_2]
    run = workers.run_burst()
    assert run.returncode == 0, run.log
    requests = sandbox.requests()
    assert len(requests) == 1
    assert [s["MOBILEPHONE"] for s in requests[0]["data"]["SMS"]] == [PHONE, PHONE_2]


def test_no_valid_number_answers_114(gateway: str, redis: Redis) -> None:
    reply = answer(post(gateway, xml_flux("Hi", "12", "abc")))
    assert reply["status"] == 114
    assert reply["statusText"].startswith(STATUS_TEXTS[114])
    assert (
        "SMS[0].MOBILEPHONE: not a phone number" in reply["statusText"]
        or "SMS[0].MOBILEPHONE" in reply["statusText"]
    )
    assert redis.keys("smsq:msg:*") == []


def test_bad_lane_and_callback_url_are_named(gateway: str) -> None:
    lane = answer(post(gateway, json_flux(), lane="fast"))
    assert lane["status"] == 106
    assert lane["statusText"].startswith("lane: must be one of")
    callback = answer(post(gateway, json_flux(), callbackUrl="ftp://x"))
    assert callback["status"] == 106
    assert callback["statusText"].startswith("callbackUrl: must be an absolute http(s) URL")


def test_lane_and_callback_url_extensions_are_stored(gateway: str, store: MessageStore) -> None:
    reply = answer(
        post(
            gateway,
            json_flux(),
            lane="urgent",
            headers={"X-Smsq-Callback-Url": "https://shop.example/sms-events"},
        )
    )
    record = store.get_by_id(reply["campaignId"])
    assert record is not None
    assert record.lane == "urgent"
    assert record.request["callback_url"] == "https://shop.example/sms-events"


def test_oversized_body_gets_413_in_the_provider_shape(
    redis_server: RedisServer, redis: Redis
) -> None:
    settings = gateway_settings(redis_server.url, max_body_bytes=4096)
    with running(create_app(settings, redis)) as base_url:
        big = json_flux(SMS=[{"MOBILEPHONE": PHONE}] * 300)
        declared = post(base_url + PATH, big)
        assert declared.status_code == 413
        assert declared.json() == {
            "status": 413,
            "statusText": "Request body larger than 4096 bytes",
        }

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
            for _ in range(10):
                yield b"smsData=" + b"x" * 1000

        streamed = httpx.post(
            base_url + PATH,
            content=chunks(),
            timeout=10,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413
        assert streamed.json()["status"] == 413
        assert answer(post(base_url + PATH, json_flux()))["status"] == 100
    assert len(messages(redis)) == 1


def test_10000_recipients_fit_the_default_body_limit(
    redis_server: RedisServer, redis: Redis
) -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": redis_server.url,
            "SMSQ_PRODUCERS": json.dumps([{"login": SHOP[0], "api_key": SHOP[1]}]),
        }
    )
    phones = [f"336{n:08d}" for n in range(10_000)]
    flux = xml_flux("Hi", *phones)
    with running(create_app(settings, redis)) as base_url:
        reply = answer(post(base_url + PATH, flux))
    assert reply["status"] == 100
    assert reply["nbContacts"] == "10000"


def test_unknown_paths_methods_and_bodies_are_clear(gateway: str, redis: Redis) -> None:
    base = gateway.removesuffix(PATH)
    missing = httpx.get(base + "/http/9.0/getContacts/", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["status"] == 404
    wrong = httpx.put(gateway, timeout=10)
    assert wrong.status_code == 405
    assert wrong.json() == {
        "status": 405,
        "statusText": "Method not allowed: sendSms takes GET or POST",
    }
    head = httpx.head(
        gateway, params={"login": SHOP[0], "apiKey": SHOP[1], "smsData": json_flux()}, timeout=10
    )
    assert head.status_code == 405
    assert messages(redis) == []
    broken = httpx.post(
        gateway,
        content=b"--b\r\nnot a part",
        timeout=10,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert broken.status_code == 400
    assert broken.json()["status"] == 400
    assert "Traceback" not in broken.text


def test_redis_down_answers_503_and_the_retry_is_safe(
    redis_server: RedisServer, redis: Redis, store: MessageStore
) -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    with running(create_app(gateway_settings(redis_server.url), down)) as base_url:
        response = post(base_url + PATH, json_flux(CLIMSGID="retry-me"), returnformat="xml")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        reply = xml_answer(response.text)
        assert reply["status"] == "503"
        assert "Traceback" not in response.text
        assert httpx.get(base_url + "/healthz", timeout=10).status_code == 503
    with running(create_app(gateway_settings(redis_server.url), redis)) as base_url:
        first = answer(post(base_url + PATH, json_flux(CLIMSGID="retry-me")))
        again = answer(post(base_url + PATH, json_flux(CLIMSGID="retry-me")))
        assert first == again
        assert httpx.get(base_url + "/healthz", timeout=10).json() == {"ok": True}
    assert len(messages(redis)) == 1


def test_logs_hold_no_key_text_or_phone(gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    from worker.logs import configure_logging

    configure_logging(fmt="json", secrets=[SHOP[1]])
    post(gateway, xml_flux("secret text 98765", PHONE), headers={"Idempotency-Key": "k1"})
    post(gateway, xml_flux("other"), account=(SHOP[0], "wrong-key-1234567"))
    err = capsys.readouterr().err
    assert "gateway.accepted" in err
    assert "gateway.login_failed" in err
    for leak in (SHOP[1], "wrong-key-1234567", "secret text", PHONE):
        assert leak not in err


# --- smsq status with the gateway's ids -----------------------------------------------------


def test_sms_id_and_campaign_id_resolve_with_smsq_status(
    gateway: str, workers: Workers, sandbox: SandboxProvider
) -> None:
    reply = answer(post(gateway, xml_flux("Hi", PHONE, PHONE_2)))
    workers.run_burst()
    second = reply["smsIds"][1]["smsId"]
    shown = workers.smsq("status", second)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"recipient:  2 of 2: {PHONE_2}  (message sent; AllMySMS smsId ")
    provider_ids = sandbox.requests()[0]["sms_ids"]
    assert provider_ids[1] in shown.stdout.splitlines()[0]
    as_json = json.loads(workers.smsq("status", second, "--json").stdout)
    assert as_json["recipient"] == {
        "position": 2,
        "phone": PHONE_2,
        "provider_sms_id": provider_ids[1],
    }
    whole = workers.smsq("status", reply["campaignId"])
    assert whole.returncode == 0
    assert "state:      sent" in whole.stdout
    missing = workers.smsq("status", reply["campaignId"] + "-3")
    assert missing.returncode == 1
    assert "has no recipient 3" in missing.stderr


# --- configuration --------------------------------------------------------------------------


def test_gateway_refuses_to_start_without_producers(redis: Redis) -> None:
    with pytest.raises(ConfigError, match="SMSQ_PRODUCERS"):
        create_app(Settings(), redis)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not json", "must be a JSON list"),
        ('{"login": "a"}', "must be a JSON list"),
        ('["x"]', "entry 0: must be an object"),
        ('[{"login": "shop", "api_key": "short"}]', "api_key must be a string of at least 16"),
        ('[{"login": "-bad", "api_key": "0123456789abcdef"}]', "login must be"),
        ('[{"login": "a", "api_key": "0123456789abcdef", "extra": 1}]', "unknown field 'extra'"),
        (
            '[{"login": "a", "api_key": "0123456789abcdef", "callback_secret": "s"}]',
            "callback_secret must be",
        ),
        (
            '[{"login": "a", "api_key": "0123456789abcdef"}, {"login": "a", "api_key": '
            '"fedcba9876543210"}]',
            "appears twice",
        ),
    ],
)
def test_producers_variable_is_validated_without_showing_values(value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match="SMSQ_PRODUCERS") as caught:
        Settings.from_env({"SMSQ_PRODUCERS": value})
    assert reason in str(caught.value)
    for secret in ("0123456789abcdef", "fedcba9876543210", "short"):
        assert secret not in str(caught.value)


def test_producers_variable_is_parsed() -> None:
    settings = Settings.from_env(
        {
            "SMSQ_PRODUCERS": json.dumps(
                [
                    {"login": "shop", "api_key": "0123456789abcdef", "callback_secret": "s" * 16},
                    {"login": "blog.fr", "api_key": "fedcba9876543210"},
                ]
            )
        }
    )
    assert [a.login for a in settings.producers] == ["shop", "blog.fr"]
    assert settings.producers[0].callback_secret == Secret("s" * 16)
    assert settings.producers[1].callback_secret is None
    assert "0123456789abcdef" not in repr(settings)


@pytest.mark.workers
def test_smsq_gateway_command_serves_and_stops(redis_server: RedisServer) -> None:
    from worker.dev.redis_server import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSQ_", "ALLMYSMS_"))}
    env.update(
        {
            "REDIS_URL": redis_server.url,
            "PYTHONPATH": str(ROOT),
            "SMSQ_PRODUCERS": json.dumps([{"login": SHOP[0], "api_key": SHOP[1]}]),
        }
    )
    with subprocess.Popen(
        [sys.executable, "-m", "worker", "gateway", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == f"gateway listening on http://127.0.0.1:{port}/http/9.0/sendSms/\n"
            reply = answer(post(f"http://127.0.0.1:{port}{PATH}", json_flux()))
            assert reply["status"] == 100
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    assert proc.returncode == 0
    no_producers = subprocess.run(
        [sys.executable, "-m", "worker", "gateway"],
        env={**env, "SMSQ_PRODUCERS": ""},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert no_producers.returncode == 2
    assert "SMSQ_PRODUCERS" in no_producers.stderr
