"""A live gateway with AllMySMS = the sandbox and its webhooks on, and the calls the read-only
account routes tests make: send through the gateway, send as a worker, post receipts and
replies as AllMySMS does, and ask getAcks, getPull and the others."""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from tests.helpers.gateway import SHOP, answer, gateway_settings, json_flux, post
from tests.helpers.processes import API_KEY, LOGIN
from worker.allmysms.client import AllMySmsClient
from worker.send.retries import send_retrying
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store.control import Switch
from worker.store.ledger import Ledger


if TYPE_CHECKING:
    from redis import Redis

    from worker.sandbox import SandboxProvider

TTL_S = 3600
WEBHOOK_SECRET = "wh-" + "5b8d2e0a" * 5
NOT_FOUND = {"status": 0, "statusText": "Campaign not found"}
SMS_NOT_FOUND = {"status": 0, "statusText": "SMS not found"}


def api_settings(redis_url: str, sandbox: SandboxProvider, **changes: Any) -> Settings:
    """The gateway's test settings with smsq's AllMySMS account (the sandbox) and webhooks."""
    return dataclasses.replace(
        gateway_settings(redis_url),
        base_url=sandbox.base_url,
        login=LOGIN,
        api_key=Secret(API_KEY),
        webhook_secret=Secret(WEBHOOK_SECRET),
        **changes,
    )


def enqueue(base: str, account: tuple[str, str] = SHOP, **data: Any) -> str:
    """sendSms through the gateway; the campaignId it answers."""
    reply = answer(post(base + "/http/9.0/sendSms/", json_flux(**data), account=account))
    assert reply["status"] in (100, 101), reply
    campaign: str = reply["campaignId"]
    return campaign


def send(redis: Redis, sandbox: SandboxProvider, message_id: str) -> None:
    """A worker's send of one message (or one part) to the sandbox."""
    client = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(5)
    )
    settings = Settings.from_env({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY})
    Sender(
        ledger=Ledger(redis, ttl_s=TTL_S, worker_name="w-test"),
        client=client,
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
    ).send(message_id)
    client.close()


def webhook(base: str, kind: str, **params: str) -> None:
    """AllMySMS calling smsq's webhook (``receipts`` or ``replies``) on the gateway."""
    reply = httpx.post(f"{base}/webhooks/allmysms/{WEBHOOK_SECRET}/{kind}", data=params, timeout=10)
    assert (reply.status_code, reply.text) == (200, "OK")


def receipt(base: str, sms_id: str, status: int, text: str = "", date: str = "") -> None:
    webhook(
        base,
        "receipts",
        smsId=sms_id,
        status=str(status),
        statusText=text or f"status {status}",
        receptionDate=date or f"2026-12-07 10:00:0{status}",
    )


def reply(base: str, sms_id: str, mo_id: str, message: str, date: str = "") -> None:
    webhook(
        base,
        "replies",
        smsMoId=mo_id,
        smsId=sms_id,
        message=message,
        receptionDate=date or "2026-12-07 11:00:00",
    )


def call(
    base: str,
    endpoint: str,
    account: tuple[str, str] = SHOP,
    *,
    method: str = "POST",
    path: str = "/http/9.0/{}/",
    **params: str,
) -> httpx.Response:
    """A gateway account endpoint, GET (query) or POST (form)."""
    fields = {"login": account[0], "apiKey": account[1], **params}
    url = base + path.format(endpoint)
    if method == "GET":
        return httpx.get(url, params=fields, timeout=10)
    return httpx.post(url, data=fields, timeout=10)


def ask(base: str, endpoint: str, account: tuple[str, str] = SHOP, **params: str) -> Any:
    """The JSON answer of a POST to a gateway account endpoint (HTTP 200)."""
    response = call(base, endpoint, account, **params)
    assert response.status_code == 200, response.text
    return json.loads(response.text)
