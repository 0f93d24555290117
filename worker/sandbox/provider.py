"""The sandbox provider: account, credits, request log and faults, and the sendSms contract.

State sits in ``SandboxProvider`` behind one lock; the HTTP layer lives in ``server``.
"""

from __future__ import annotations

import copy
import hmac
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker.sandbox.acks import AckBook, nothing
from worker.sandbox.blacklist import Blacklist
from worker.sandbox.campaigns import DeferredCampaigns
from worker.sandbox.faults import Fault, FaultBook, Target, parse_fault
from worker.sandbox.receipt_pusher import RECEIPT_DELAY_MS, ReceiptPlayer
from worker.sandbox.rules import (
    CREDITS_PER_SMS,
    Flux,
    FluxError,
    error_reply,
    parse_date,
    parse_flux,
    plan_send,
    render,
    simulation_reply,
    sniff_format,
    success_reply,
)


if TYPE_CHECKING:
    from collections.abc import Callable

    from worker.sandbox.server import SandboxServer


BASE_PATH = "/http/9.0"
HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>\n"
)
"""What a reverse proxy answers when the application behind it is down."""
TEXT_PLAIN = "text/plain; charset=UTF-8"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the handler does with one sendSms request."""

    action: str = "reply"
    """``reply``, ``drop`` (close without a byte) or ``not_http`` (garbage, then close)."""
    code: int = 200
    body: bytes = b""
    content_type: str = TEXT_PLAIN
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


class SandboxProvider:
    """A local stand-in for the AllMySMS HTTP API v9.0 (sendSms, simulateCampaign, getInfo,
    getBlacklist), with scripted faults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        login: str,
        api_key: str,
        latency_ms: int = 0,
        credits: int = 1_000_000,
        receipts_url: str | None = None,
        replies_url: str | None = None,
        receipts_delay_ms: int = RECEIPT_DELAY_MS,
    ) -> None:
        self._address = (host, port)
        self._login = login.encode()
        self._api_key = api_key.encode()
        self._latency_s = latency_ms / 1000
        self._initial_credits = credits
        self._credits = credits
        self._lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self._faults = FaultBook()
        self._acks = AckBook()
        self._blacklist = Blacklist()
        self._campaigns = DeferredCampaigns()
        self._seq = 0
        self._server: SandboxServer | None = None
        self._receipts = ReceiptPlayer(
            receipts_url=receipts_url, replies_url=replies_url, delay_ms=receipts_delay_ms
        )

    def __enter__(self) -> SandboxProvider:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Listen, then serve in a daemon thread; returns once the socket accepts connections.

        Raises:
            RuntimeError: the sandbox is already started.
            OSError: the address could not be bound.
        """
        # Imported here, not at the top: server.py imports this module for serve().
        from worker.sandbox.server import SandboxServer

        if self._server is not None:
            raise RuntimeError("the sandbox is already started")
        self._server = SandboxServer(self._address, self)
        self._server.start()

    def stop(self) -> None:
        """Stop serving, cut open connections, close the socket and join every thread."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._receipts.stop()

    @property
    def port(self) -> int:
        return self._bound_server().server_address[1]

    @property
    def base_url(self) -> str:
        host = self._address[0]
        if host in ("", "0.0.0.0"):  # noqa: S104 - compared, not bound
            host = "127.0.0.1"
        return f"http://{host}:{self.port}{BASE_PATH}"

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since start; tells keep-alive reuse from new connections."""
        return self._bound_server().accepted

    def requests(self) -> list[dict[str, Any]]:
        """Return a copy of the request log, oldest first."""
        with self._lock:
            return copy.deepcopy(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def add_fault(self, fault: dict[str, Any]) -> None:
        """Script a fault for coming sendSms requests.

        Raises:
            ValueError: the spec is invalid; the message names the bad key.
        """
        parsed = parse_fault(fault)
        with self._lock:
            self._faults.add(parsed)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget the log, the faults and the blacklist, and restore the credits given at
        construction."""
        with self._lock:
            self._log.clear()
            self._faults.clear()
            self._acks.clear()
            self._blacklist.clear()
            self._campaigns.clear()
            self._credits = self._initial_credits

    def set_credits(self, credits: int) -> None:
        """Set the account balance.

        Raises:
            ValueError: ``credits`` is not a non-negative integer.
        """
        if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
            raise ValueError("credits: must be a non-negative integer")
        with self._lock:
            self._credits = credits

    def blacklist(self, entry: dict[str, Any]) -> dict[str, str]:
        """Put a number on the STOP list: getBlacklist lists it, sendSms refuses it inside a 100
        answer (``invalidNumbers``), like AllMySMS does with a number that answered STOP.

        Raises:
            ValueError: the entry is invalid; the message names the bad key.
        """
        with self._lock:
            return self._blacklist.add(entry)

    def blacklisted(self) -> list[dict[str, str]]:
        """The STOP list, oldest first."""
        with self._lock:
            return self._blacklist.entries()

    def clear_blacklist(self) -> None:
        with self._lock:
            self._blacklist.clear()

    @property
    def receipts(self) -> ReceiptPlayer:
        """The webhook side: ``receipts.configure(receipts_url=...)``, ``receipts.log()``."""
        return self._receipts

    def set_receipts_url(
        self,
        receipts_url: str | None,
        replies_url: str | None = None,
        delay_ms: int = RECEIPT_DELAY_MS,
        *,
        echo_cli_msg_id: bool = True,
    ) -> None:
        """Call these webhooks after each successful send (None: stop calling); with
        ``echo_cli_msg_id=False`` their calls carry no ``cliMsgId``.

        Raises:
            ValueError: a URL is not http(s), or ``delay_ms`` is negative.
        """
        self._receipts.configure(
            receipts_url=receipts_url,
            replies_url=replies_url,
            delay_ms=delay_ms,
            echo_cli_msg_id=echo_cli_msg_id,
        )

    def _bound_server(self) -> SandboxServer:
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return self._server

    def _answer_send(
        self,
        method: str,
        encoding: str,
        params: dict[str, str],
        *,
        received_at: float | None = None,
        endpoint: str = "sendSms",
    ) -> Answer:
        """Apply faults and the sendSms (or simulateCampaign) contract to one request, and log it.

        ``received_at`` (epoch seconds) is when the request's headers had been read; ``at`` in
        the log is when it was processed (body parsed, numbers judged). A simulateCampaign
        request reads the same flux with the same checks, and its log entry carries
        ``"endpoint": "simulateCampaign"`` (sendSms entries carry no ``endpoint``).
        """
        simulate = endpoint == "simulateCampaign"
        sms_data = params.get("smsData", "")
        flux: Flux | None = None
        flux_status = 105
        if sms_data.strip():
            try:
                flux = parse_flux(sms_data)
            except FluxError as exc:
                flux_status = exc.status
        flux_format = sniff_format(sms_data)
        returnformat = params.get("returnformat")
        answer_format = (returnformat or "").lower()
        if answer_format not in ("json", "xml"):
            answer_format = flux_format or "json"
        account_ok = hmac.compare_digest(params.get("login", "").encode(), self._login)
        api_key_ok = hmac.compare_digest(params.get("apiKey", "").encode(), self._api_key)
        entry: dict[str, Any] = {
            "seq": 0,
            "at": "",
            "method": method,
            "encoding": encoding,
            "login": params.get("login", ""),
            "api_key_ok": api_key_ok,
            "returnformat": returnformat,
            "flux_format": flux_format,
            "data": copy.deepcopy(flux.data) if flux else None,
        }
        if simulate:
            entry = {"endpoint": endpoint, **entry}
        reply: dict[str, Any] | None = None
        due_at: float | None = None
        with self._lock:
            fault = self._faults.take(Target.of(flux), endpoint=endpoint)
            action = fault.action if fault else None
            if fault is not None and fault.status is not None:
                reply = error_reply(fault.status, fault.status_text)
            elif action not in ("drop", "html502", "not_http", "busy"):
                if simulate:
                    reply = self._simulate(account_ok and api_key_ok, flux, flux_status)
                else:
                    reply = self._process(account_ok and api_key_ok, flux, flux_status)
                    due_at = _deferred_until(flux, reply)
                    if reply.get("campaignId"):
                        self._campaigns.remember(
                            reply["campaignId"], due_at=due_at, credits=int(reply["creditsUsed"])
                        )
            self._seq += 1
            entry["seq"] = self._seq
            entry["at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
            entry["received_at"] = round(received_at if received_at is not None else time.time(), 6)
            entry["status"] = reply["status"] if reply else None
            entry["fault"] = action
            entry["sms_ids"] = [s["smsId"] for s in (reply or {}).get("smsIds", [])]
            cli_msg_id = str((flux.data if flux else {}).get("CLIMSGID") or "")
            entry["cli_msg_id"] = cli_msg_id or None
            self._log.append(entry)
            sent, mo_ids = self._record_sent(reply, cli_msg_id)
        if reply is not None and reply["status"] in (100, 101, 113) and sent:
            self._receipts.play(
                sent,
                reply["campaignId"],
                due_in_s=0.0 if due_at is None else due_at - time.time(),
                cli_msg_id=cli_msg_id,
                mo_ids=mo_ids,
            )
        delay_s = self._latency_s + (fault.delay_ms / 1000 if fault else 0)
        if action in ("drop", "not_http"):
            return Answer(action=str(action), delay_s=delay_s)
        if fault is not None and action == "busy":
            # Refused before any processing, as a rate-limiting front end does: nothing sent.
            retry = () if fault.retry_after is None else (("Retry-After", str(fault.retry_after)),)
            return Answer(
                code=fault.http_status,
                body=b"busy, try again later\n",
                delay_s=delay_s,
                headers=retry,
            )
        if reply is None:
            return Answer(
                code=502, body=HTML_502, content_type="text/html; charset=UTF-8", delay_s=delay_s
            )
        body, content_type = render(reply, answer_format)
        if action == "truncated":
            body = body[: len(body) // 2]
        return Answer(body=body, content_type=content_type, delay_s=delay_s)

    def _answer_info(self, params: dict[str, str]) -> Answer:
        """Answer one getInfo request like AllMySMS (status text, balance as a string), and
        log it. The real answer also carries the account's apiKey; the sandbox never echoes it
        (an ``apiKey`` key holding ``"***"`` stands for it, so clients prove they drop it)."""
        return self._answer_account("getInfo", params, self._info)

    def _answer_blacklist(self, params: dict[str, str]) -> Answer:
        """Answer one getBlacklist request (``{"blacklist": [{phoneNumber, comment,
        receptionDate}]}``, ``subAccount`` ignored), and log it."""
        return self._answer_account(
            "getBlacklist", params, lambda: {"blacklist": self._blacklist.entries()}
        )

    def _info(self) -> dict[str, Any]:
        return {
            "status": "Active Account",
            "credits": str(self._credits),
            "apiKey": "***",
            "lastName": "Sandbox",
            "firstName": "smsq",
            "society": "smsq sandbox",
            "email": "sandbox@example.invalid",
        }

    def _answer_account(
        self, endpoint: str, params: dict[str, str], answer: Callable[[], dict[str, Any]]
    ) -> Answer:
        """Faults, credentials (102) and the log of an account endpoint without a flux;
        ``answer`` builds the body under the lock. Always answered in JSON."""
        account_ok = hmac.compare_digest(params.get("login", "").encode(), self._login)
        api_key_ok = hmac.compare_digest(params.get("apiKey", "").encode(), self._api_key)
        with self._lock:
            fault = self._faults.take(Target(), endpoint=endpoint)
            action = fault.action if fault else None
            reply: dict[str, Any] | None = None
            if fault is not None and fault.status is not None:
                reply = error_reply(fault.status, fault.status_text)
            elif action not in ("drop", "html502", "not_http", "busy"):
                reply = answer() if account_ok and api_key_ok else error_reply(102)
            self._seq += 1
            self._log.append(
                {
                    "seq": self._seq,
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "endpoint": endpoint,
                    "login": params.get("login", ""),
                    "api_key_ok": api_key_ok,
                    "status": reply.get("status") if reply else None,
                    "fault": action,
                }
            )
        delay_s = self._latency_s + (fault.delay_ms / 1000 if fault else 0)
        if action in ("drop", "not_http"):
            return Answer(action=str(action), delay_s=delay_s)
        if fault is not None and action == "busy":
            return Answer(code=fault.http_status, body=b"busy, try again later\n", delay_s=delay_s)
        if reply is None:
            return Answer(
                code=502, body=HTML_502, content_type="text/html; charset=UTF-8", delay_s=delay_s
            )
        body, content_type = render(reply, "json")
        if action == "truncated":
            body = body[: len(body) // 2]
        return Answer(body=body, content_type=content_type, delay_s=delay_s)

    def _simulate(self, account_ok: bool, flux: Flux | None, flux_status: int) -> dict[str, Any]:
        """simulateCampaign: sendSms's checks and counts, without credits, message or receipt;
        the caller holds the lock."""
        if not account_ok:
            return error_reply(102)
        if flux is None:
            return error_reply(flux_status)
        try:
            plan = plan_send(flux, datetime.now(UTC), self._blacklist)
        except FluxError as exc:
            return error_reply(exc.status)
        return simulation_reply(plan)

    def _answer_delete_campaign(self, params: dict[str, str]) -> Answer:
        """Answer one deleteCampaign request (``campId``) and log it: OK for a deferred campaign
        not due yet (its receipts are dropped and its credits given back), an error answer
        otherwise (see ``worker.sandbox.campaigns``). Faults apply as to getInfo."""
        account_ok = hmac.compare_digest(params.get("login", "").encode(), self._login)
        api_key_ok = hmac.compare_digest(params.get("apiKey", "").encode(), self._api_key)
        campaign_id = params.get("campId", "")
        deleted = False
        with self._lock:
            fault = self._faults.take(Target(), endpoint="deleteCampaign")
            action = fault.action if fault else None
            reply: dict[str, Any] | None = None
            if fault is not None and fault.status is not None:
                reply = error_reply(fault.status, fault.status_text)
            elif action not in ("drop", "html502", "not_http", "busy"):
                if account_ok and api_key_ok:
                    reply, refund = self._campaigns.delete(campaign_id, time.time())
                    deleted = reply["status"] == "OK"
                    self._credits += refund
                else:
                    reply = error_reply(102)
            self._seq += 1
            self._log.append(
                {
                    "seq": self._seq,
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "endpoint": "deleteCampaign",
                    "login": params.get("login", ""),
                    "api_key_ok": api_key_ok,
                    "campId": campaign_id,
                    "status": reply["status"] if reply else None,
                    "fault": action,
                }
            )
        if deleted:
            self._receipts.drop(campaign_id)
        return self._fault_answer(fault, reply)

    def _fault_answer(self, fault: Fault | None, reply: dict[str, Any] | None) -> Answer:
        """The answer to a request other than sendSms, a fault applied (JSON, as getInfo)."""
        action = fault.action if fault else None
        delay_s = self._latency_s + (fault.delay_ms / 1000 if fault else 0)
        if action in ("drop", "not_http"):
            return Answer(action=str(action), delay_s=delay_s)
        if fault is not None and action == "busy":
            return Answer(code=fault.http_status, body=b"busy, try again later\n", delay_s=delay_s)
        if reply is None:
            return Answer(
                code=502, body=HTML_502, content_type="text/html; charset=UTF-8", delay_s=delay_s
            )
        body, content_type = render(reply, "json")
        if action == "truncated":
            body = body[: len(body) // 2]
        return Answer(body=body, content_type=content_type, delay_s=delay_s)

    def _record_sent(
        self, reply: dict[str, Any] | None, cli_msg_id: str
    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """(phone, smsId) of each accepted recipient, and the smsMoIds of their replies: a
        100/113 send goes into the polling endpoints' memory; the caller holds the lock."""
        sent = [(s["phoneNumber"], s["smsId"]) for s in (reply or {}).get("smsIds", [])]
        if reply is None or reply["status"] not in (100, 113) or not sent:
            return sent, {}
        return sent, self._acks.record(reply["campaignId"], cli_msg_id, sent)

    def _answer_lookup(self, endpoint: str, params: dict[str, str]) -> Answer:
        """Answer one polling request (getAcks, getAckBySmsId, getPulls, getPull,
        getPullBySmsId) from what the sandbox sent (:class:`AckBook`), with its faults, and log
        it with the parameter it was asked for."""
        account_ok = hmac.compare_digest(params.get("login", "").encode(), self._login)
        api_key_ok = hmac.compare_digest(params.get("apiKey", "").encode(), self._api_key)
        asked = {k: params[k] for k in ("campId", "smsId", "limit") if k in params}
        with self._lock:
            fault = self._faults.take(Target(), endpoint=endpoint)
            action = fault.action if fault else None
            reply: dict[str, Any] | None = None
            if fault is not None and fault.status is not None:
                reply = error_reply(fault.status, fault.status_text)
            elif action not in ("drop", "html502", "not_http", "busy"):
                if not (account_ok and api_key_ok):
                    reply = error_reply(102)
                else:
                    try:
                        reply = self._acks.answer(endpoint, params)
                    except ValueError as exc:
                        reply = nothing(str(exc))
            self._seq += 1
            self._log.append(
                {
                    "seq": self._seq,
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "endpoint": endpoint,
                    "login": params.get("login", ""),
                    "api_key_ok": api_key_ok,
                    "params": asked,
                    "status": reply.get("status") if reply else None,
                    "found": len(reply.get("acks", reply.get("mos", []))) if reply else 0,
                    "fault": action,
                }
            )
        return self._render_lookup(reply, fault)

    def _render_lookup(self, reply: dict[str, Any] | None, fault: Any) -> Answer:
        action = fault.action if fault else None
        delay_s = self._latency_s + (fault.delay_ms / 1000 if fault else 0)
        if action in ("drop", "not_http"):
            return Answer(action=str(action), delay_s=delay_s)
        if fault is not None and action == "busy":
            return Answer(code=fault.http_status, body=b"busy, try again later\n", delay_s=delay_s)
        if reply is None:
            return Answer(
                code=502, body=HTML_502, content_type="text/html; charset=UTF-8", delay_s=delay_s
            )
        body, content_type = render(reply, "json")
        if action == "truncated":
            body = body[: len(body) // 2]
        return Answer(body=body, content_type=content_type, delay_s=delay_s)

    def _process(self, account_ok: bool, flux: Flux | None, flux_status: int) -> dict[str, Any]:
        """The business checks in the provider's order; the caller holds the lock."""
        if not account_ok:
            return error_reply(102)
        if flux is None:
            return error_reply(flux_status)
        try:
            plan = plan_send(flux, datetime.now(UTC), self._blacklist)
        except FluxError as exc:
            return error_reply(exc.status)
        cost = CREDITS_PER_SMS * plan.nb_sms
        if self._credits <= 0:
            return error_reply(103)
        if cost > self._credits:
            text = f"Crédits insuffisants. A utiliser: {cost} Crédits, Disponibles: {self._credits}"
            return error_reply(104, text)
        if not plan.recipients:
            return error_reply(114)
        self._credits -= cost
        return success_reply(
            plan,
            campaign_id=f"sbx_{uuid.uuid4().hex[:20]}",
            credits_left=self._credits,
            sms_ids=[str(uuid.uuid1()) for _ in plan.recipients],
        )


def _deferred_until(flux: Flux | None, reply: dict[str, Any]) -> float | None:
    """When an accepted send with a future DATE is due (epoch seconds); None if sent at once."""
    if flux is None or reply["status"] not in (101, 113) or not flux.date.strip():
        return None
    due_at = parse_date(flux.date.strip()).timestamp()
    return due_at if due_at > time.time() else None
