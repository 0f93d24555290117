"""The sandbox playing AllMySMS's webhook side: delivery receipts (and replies) after a send.

After a successful sendSms (100 or 113) and once a receipts URL is configured, each accepted
recipient gets, ``delay_ms`` later, a receipt ``status=3`` (transmitted to the operator) and then
its final one: ``1`` (delivered), or ``5`` (SMS rejected) for a number ending in ``777777``. A
number ending in ``555555`` also replies ``OUI`` once delivered, when a replies URL is set. The
calls are form POSTs with AllMySMS's parameter names, made from one background thread, so the
sendSms answer never waits for them; each is logged (``GET /_sandbox/receipts``). A deferred
send (a future DATE) gets its receipts from its due time on, unless ``deleteCampaign`` drops them
first (:meth:`ReceiptPlayer.drop`).

Both also carry ``cliMsgId``, the flux's ``CLIMSGID``, when it had one. Whether AllMySMS's own
webhook carries it is unknown (no source shows it): smsq reads it when present and settles by
smsId, or by recipient and send window, when it is not.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo


RECEIPT_DELAY_MS = 300
"""Default wait between the sendSms answer and the first receipt (the worker records the
smsIds meanwhile; AllMySMS itself takes seconds)."""
FINAL_GAP_S = 0.05
"""Between a recipient's ``3`` (transmitted) and its final receipt."""
CALL_TIMEOUT_S = 5.0
REJECTED_SUFFIX = "777777"
"""Numbers ending so get the final receipt 5 (SMS rejected) instead of 1 (delivered)."""
REPLYING_SUFFIX = "555555"
"""Numbers ending so reply ``REPLY_TEXT`` after delivery."""
REPLY_TEXT = "OUI"
STATUS_TEXTS = {1: "Delivered", 3: "Transmitted to operator", 5: "SMS rejected"}
PARIS = ZoneInfo("Europe/Paris")


class ReceiptPlayer:
    """Calls the configured webhooks from one thread, in due-time order; thread-safe."""

    def __init__(
        self,
        *,
        receipts_url: str | None = None,
        replies_url: str | None = None,
        delay_ms: int = RECEIPT_DELAY_MS,
    ) -> None:
        self._echo = True
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, str, dict[str, str]]] = []
        self._seq = itertools.count()
        self._log: list[dict[str, Any]] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.configure(receipts_url=receipts_url, replies_url=replies_url, delay_ms=delay_ms)

    def configure(
        self,
        *,
        receipts_url: str | None,
        replies_url: str | None = None,
        delay_ms: int = RECEIPT_DELAY_MS,
        echo_cli_msg_id: bool = True,
    ) -> None:
        """Set (or, with None, unset) the webhook URLs; ``echo_cli_msg_id=False`` plays a
        webhook without ``cliMsgId`` (AllMySMS's may not carry it).

        Raises:
            ValueError: a URL is not http(s), ``delay_ms`` is negative, or
                ``echo_cli_msg_id`` is not a boolean.
        """
        if not isinstance(echo_cli_msg_id, bool):
            raise ValueError("echo_cli_msg_id: must be true or false")
        for name, url in (("receipts_url", receipts_url), ("replies_url", replies_url)):
            if url is not None and (
                urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc
            ):
                raise ValueError(f"{name}: must be an http(s) URL")
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or delay_ms < 0:
            raise ValueError("delay_ms: must be a non-negative integer")
        with self._cond:
            self._receipts_url = receipts_url
            self._replies_url = replies_url
            self._delay_s = delay_ms / 1000
            self._echo = echo_cli_msg_id

    def play(
        self,
        sent: list[tuple[str, str]],
        campaign_id: str,
        *,
        due_in_s: float = 0.0,
        cli_msg_id: str = "",
        mo_ids: dict[str, str] | None = None,
    ) -> None:
        """Schedule the receipts of one successful send: ``sent`` is (phone, smsId) pairs;
        ``due_in_s`` delays them all (a deferred campaign is "sent" at its DATE); ``mo_ids``
        (smsId → smsMoId) names the replies the provider recorded, so polling and the webhook
        tell of the same reply."""
        echo = {"cliMsgId": cli_msg_id} if cli_msg_id and self._echo else {}
        with self._cond:
            if self._receipts_url is None or self._stopping:
                return
            start = time.monotonic() + max(due_in_s, 0.0) + self._delay_s
            for phone, sms_id in sent:
                final = 5 if phone.endswith(REJECTED_SUFFIX) else 1
                for offset, status in ((0.0, 3), (FINAL_GAP_S, final)):
                    self._push(
                        start + offset,
                        "receipt",
                        {
                            "smsId": sms_id,
                            "status": str(status),
                            "statusText": STATUS_TEXTS[status],
                            "phoneNumber": phone,
                            "campaignId": campaign_id,
                            **echo,
                        },
                    )
                if final == 1 and phone.endswith(REPLYING_SUFFIX) and self._replies_url:
                    self._push(
                        start + 2 * FINAL_GAP_S,
                        "reply",
                        {
                            "smsMoId": (mo_ids or {}).get(sms_id) or uuid.uuid4().hex[:16],
                            "message": REPLY_TEXT,
                            "smsId": sms_id,
                            "phoneNumber": phone,
                            "campaignId": campaign_id,
                            **echo,
                        },
                    )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-receipts", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def drop(self, campaign_id: str) -> int:
        """Forget the receipts (and replies) not pushed yet of one campaign; how many."""
        with self._cond:
            kept = [due for due in self._due if due[3].get("campaignId") != campaign_id]
            dropped = len(self._due) - len(kept)
            heapq.heapify(kept)
            self._due = kept
            self._cond.notify()
            return dropped

    def log(self) -> list[dict[str, Any]]:
        """Calls made so far, oldest first: kind, params, HTTP status or error."""
        with self._cond:
            return [dict(entry) for entry in self._log]

    def clear(self) -> None:
        with self._cond:
            self._log.clear()

    def pending(self) -> int:
        with self._cond:
            return len(self._due)

    def stop(self) -> None:
        """Drop what is not sent yet and join the thread."""
        with self._cond:
            self._stopping = True
            self._due.clear()
            self._cond.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(CALL_TIMEOUT_S + 1)
        with self._cond:
            self._stopping = False

    def _push(self, due: float, kind: str, params: dict[str, str]) -> None:
        heapq.heappush(self._due, (due, next(self._seq), kind, params))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopping:
                    return
                _, _, kind, params = heapq.heappop(self._due)
                url = self._receipts_url if kind == "receipt" else self._replies_url
            if url is not None:
                self._call(kind, url, params)

    def _call(self, kind: str, url: str, params: dict[str, str]) -> None:
        stamped = {**params, "receptionDate": datetime.now(PARIS).strftime("%Y-%m-%d %H:%M:%S")}
        request = urllib.request.Request(  # noqa: S310 - configure() allows http(s) only
            url,
            data=urlencode(stamped).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        entry: dict[str, Any] = {
            "kind": kind,
            **{k: v for k, v in stamped.items() if k != "message"},
        }
        try:
            with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as answer:  # noqa: S310
                entry["http_status"] = answer.status
        except urllib.error.HTTPError as exc:
            entry["http_status"] = exc.code
        except OSError as exc:
            entry["error"] = type(exc).__name__
        with self._cond:
            self._log.append(entry)
