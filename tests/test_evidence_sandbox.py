"""CLIMSGID on every flux smsq posts, and the sandbox's polling endpoints (getAcks,
getAckBySmsId, getPulls, getPull, getPullBySmsId) over real sockets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from producers import keys
from producers.enqueue import Producer
from producers.store import MessageStore
from tests.helpers.processes import API_KEY, LOGIN, Workers, wait_for
from worker.sandbox import SandboxProvider
from worker.store.receipts import parse_receipt, parse_reply


def post(sandbox: SandboxProvider, endpoint: str, **params: str) -> httpx.Response:
    return httpx.post(
        f"{sandbox.base_url}/{endpoint}/",
        data={"login": LOGIN, "apiKey": API_KEY, "returnformat": "json", **params},
    )


def send(sandbox: SandboxProvider, phones: list[str], cli_msg_id: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {"MESSAGE": "hello", "SMS": [{"MOBILEPHONE": p} for p in phones]}
    if cli_msg_id:
        data["CLIMSGID"] = cli_msg_id
    import json

    answer = httpx.post(
        f"{sandbox.base_url}/sendSms/",
        data={"login": LOGIN, "apiKey": API_KEY, "smsData": json.dumps({"DATA": data})},
    )
    body: dict[str, Any] = answer.json()
    return body


def test_worker_flux_carries_the_message_id_as_climsgid(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Every flux a worker posts names the smsq message (or part) in CLIMSGID."""
    producer.enqueue({"key": "order-1", "to": ["0612345678"], "text": "hi"})
    run = workers.run_burst()
    assert run.returncode == 0, run.log
    [request] = sandbox.requests()
    assert request["data"]["CLIMSGID"] == keys.message_id("order-1")
    assert request["cli_msg_id"] == keys.message_id("order-1")


def test_each_part_of_a_split_message_carries_its_own_id(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A message split into parts posts one flux per part, each with the part's message id."""
    phones = [f"3361{n:07d}" for n in range(600)]
    producer.enqueue({"key": "big", "to": phones, "text": "hi"})
    run = workers.run_burst()
    assert run.returncode == 0, run.log
    record = store.get("big")
    assert record is not None
    part_ids = {p["message_id"] for p in record.parts}
    assert len(part_ids) == 2
    assert {r["data"]["CLIMSGID"] for r in sandbox.requests()} == part_ids


def test_sandbox_receipts_and_replies_echo_climsgid(sandbox: SandboxProvider) -> None:
    """The webhook calls carry cliMsgId, which the receipt parsers read."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qsl

    got: list[dict[str, str]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(dict(parse_qsl(body.decode())))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *_args: object) -> None:
            pass

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = HTTPServer(("127.0.0.1", port), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        sandbox.set_receipts_url(f"{url}/r", f"{url}/m", delay_ms=0)
        mid = "a" * 32
        send(sandbox, ["33611555555"], cli_msg_id=mid)
        wait_for(lambda: len(got) == 3, what="2 receipts and a reply")
    finally:
        server.shutdown()
        server.server_close()
    assert {call["cliMsgId"] for call in got} == {mid}
    receipts = [parse_receipt(c) for c in got if "status" in c]
    assert [(r.status, r.cli_msg_id) for r in receipts] == [(3, mid), (1, mid)]
    [reply] = [parse_reply(c) for c in got if "smsMoId" in c]
    assert reply.cli_msg_id == mid
    # The reply's smsMoId is the one getPulls answers: one reply, whichever path it takes.
    [mo] = post(sandbox, "getPulls").json()["mos"]
    assert mo["id"] == reply.sms_mo_id


def test_a_cli_msg_id_smsq_did_not_write_is_ignored() -> None:
    """A cliMsgId that is not one of smsq's ids (a gateway client's own) reads as absent."""
    base = {"smsId": "s-1", "status": "1"}
    assert parse_receipt({**base, "cliMsgId": "order-42"}).cli_msg_id == ""
    assert parse_receipt({**base, "cliMsgId": "b" * 32}).cli_msg_id == "b" * 32
    assert parse_receipt({**base, "climsgid": "c" * 32}).cli_msg_id == "c" * 32


def test_get_acks_answers_each_recipient_with_the_climsgid(sandbox: SandboxProvider) -> None:
    """getAcks(campId): one ack per accepted recipient (1 delivered, 5 for *777777)."""
    sent = send(sandbox, ["33612345678", "33611777777"], cli_msg_id="d" * 32)
    body = post(sandbox, "getAcks", campId=sent["campaignId"]).json()
    assert body["cliMsgId"] == "d" * 32
    assert [(a["phoneNumber"], a["statut"], a["comment"]) for a in body["acks"]] == [
        ("33612345678", "1", "Delivered"),
        ("33611777777", "5", "SMS rejected"),
    ]
    assert all(len(a["receptionDate"]) == 19 for a in body["acks"])
    assert post(sandbox, "getAcks", campId="sbx_none").json() == {
        "status": "0",
        "statusText": "Aucun resultat",
    }
    assert post(sandbox, "getAcks").json() == {"status": "0", "statusText": "campId: required"}
    log = [r for r in sandbox.requests() if r.get("endpoint") == "getAcks"]
    assert [(r["params"], r["found"]) for r in log] == [
        ({"campId": sent["campaignId"]}, 2),
        ({"campId": "sbx_none"}, 0),
        ({}, 0),
    ]


def test_get_ack_by_sms_id(sandbox: SandboxProvider) -> None:
    sent = send(sandbox, ["33612345678"], cli_msg_id="e" * 32)
    [entry] = sent["smsIds"]
    body = post(sandbox, "getAckBySmsId", smsId=entry["smsId"]).json()
    assert {k: body[k] for k in ("phoneNumber", "statut", "comment", "cliMsgId")} == {
        "phoneNumber": "33612345678",
        "statut": "1",
        "comment": "Delivered",
        "cliMsgId": "e" * 32,
    }
    assert post(sandbox, "getAckBySmsId", smsId="nope").json()["status"] == "0"


def test_get_pulls_answers_each_reply_once_since_the_last_call(sandbox: SandboxProvider) -> None:
    """getPulls has "since last call" semantics and honours ``limit``."""
    first = send(sandbox, ["33611555555", "33612345678"], cli_msg_id="f" * 32)
    second = send(sandbox, ["33622555555"])
    one = post(sandbox, "getPulls", limit="1").json()["mos"]
    assert [(m["phoneNumber"], m["campaignId"], m["message"]) for m in one] == [
        ("33611555555", first["campaignId"], "OUI")
    ]
    rest = post(sandbox, "getPulls", limit="10").json()["mos"]
    assert [m["campaignId"] for m in rest] == [second["campaignId"]]
    assert post(sandbox, "getPulls").json()["status"] == "0"
    assert post(sandbox, "getPulls", limit="x").json() == {
        "status": "0",
        "statusText": "limit: must be a positive integer",
    }
    by_campaign = post(sandbox, "getPull", campId=first["campaignId"]).json()
    assert by_campaign["cliMsgId"] == "f" * 32
    assert [m["id"] for m in by_campaign["mos"]] == [one[0]["id"]]
    sms_id = first["smsIds"][0]["smsId"]
    assert post(sandbox, "getPullBySmsId", smsId=sms_id).json() == {
        "phoneNumber": "33611555555",
        "campaignId": first["campaignId"],
        "message": "OUI",
        "receptionDate": one[0]["receptionDate"],
        "cliMsgId": "f" * 32,
    }
    assert (
        post(sandbox, "getPullBySmsId", smsId=first["smsIds"][1]["smsId"]).json()["status"] == "0"
    )


@pytest.mark.parametrize(
    "endpoint", ["getAcks", "getAckBySmsId", "getPulls", "getPull", "getPullBySmsId"]
)
def test_polling_endpoints_check_the_account_and_take_faults(
    sandbox: SandboxProvider, endpoint: str
) -> None:
    """A wrong apiKey is 102; faults aim at one endpoint and are logged."""
    wrong = httpx.post(f"{sandbox.base_url}/{endpoint}/", data={"login": LOGIN, "apiKey": "x"})
    assert wrong.json()["status"] == 102
    sandbox.add_fault({"endpoint": endpoint, "action": "html502"})
    assert post(sandbox, endpoint, campId="c", smsId="s").status_code == 502
    sandbox.add_fault({"endpoint": endpoint, "action": "status", "status": 102})
    assert post(sandbox, endpoint, campId="c", smsId="s").json()["status"] == 102
    assert [r["fault"] for r in sandbox.requests()] == [None, "html502", "status"]


def test_a_truncated_answer_reaches_the_provider_and_is_found_by_polling(
    sandbox: SandboxProvider,
) -> None:
    """The ``truncated`` fault sends the SMS and loses the answer: the evidence is at the
    provider (a real ``unknown`` for smsq, found again by getAcks)."""
    sandbox.add_fault({"action": "truncated"})
    import json

    answer = httpx.post(
        f"{sandbox.base_url}/sendSms/",
        data={
            "login": LOGIN,
            "apiKey": API_KEY,
            "smsData": json.dumps(
                {
                    "DATA": {
                        "MESSAGE": "x",
                        "CLIMSGID": "9" * 32,
                        "SMS": [{"MOBILEPHONE": "33612345678"}],
                    }
                }
            ),
        },
    )
    with pytest.raises(ValueError):  # noqa: PT011 - any JSON error: the body is cut
        answer.json()
    [request] = sandbox.requests()
    [sms_id] = request["sms_ids"]
    body = post(sandbox, "getAckBySmsId", smsId=sms_id).json()
    assert (body["statut"], body["cliMsgId"]) == ("1", "9" * 32)


def test_control_api_counts_pending_receipts_and_checks_the_echo_flag(
    sandbox: SandboxProvider,
) -> None:
    control = sandbox.base_url.replace("/http/9.0", "/_sandbox/receipts")
    bad = httpx.post(control, json={"receipts_url": "http://127.0.0.1:9/r", "echo_cli_msg_id": 1})
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "echo_cli_msg_id: must be true or false"},
    )
    ok = httpx.post(
        control,
        json={"receipts_url": "http://127.0.0.1:9/r", "delay_ms": 60_000, "echo_cli_msg_id": False},
    )
    assert ok.status_code == 200
    send(sandbox, ["33612345678"], cli_msg_id="7" * 32)
    assert httpx.get(f"{control}/pending").json() == {"pending": 2}


def test_the_sandbox_forgets_its_oldest_campaigns_past_its_bound() -> None:
    """A bounded memory: past ``remembered_max`` the oldest campaigns are forgotten, and
    replies already answered by getPulls go first."""
    from worker.sandbox.acks import AckBook

    book = AckBook(remembered_max=2)
    for n in range(3):
        book.record(f"c{n}", "", [(f"3361{n}555555", f"s{n}")])
    assert book.answer("getAcks", {"campId": "c0"})["status"] == "0"
    assert book.answer("getAckBySmsId", {"smsId": "s0"})["status"] == "0"
    assert book.answer("getAcks", {"campId": "c2"})["acks"][0]["phoneNumber"] == "33612555555"
    # Unanswered replies stay (getPulls answers each once): all three are still due.
    assert len(book.answer("getPulls", {"limit": "10"})["mos"]) == 3
    book.record("c3", "", [("33613555555", "s3")])
    assert [m["campaignId"] for m in book.answer("getPulls", {})["mos"]] == ["c3"]
