"""The endpoints AllMySMS calls: delivery receipts and replies (configured in its customer area).

``GET|POST /webhooks/allmysms/<SMSQ_WEBHOOK_SECRET>/receipts`` and ``.../replies``, parameters in
the query string or a form body (urlencoded or multipart). AllMySMS signs nothing, so the secret
in the path is the authentication: compared in constant time, and a wrong one answers 404 like
any unknown path. Answers are plain text: ``OK`` for everything taken into account, including
unknown smsIds (AllMySMS calls the URL when it is registered, and a receipt for a message smsq
no longer knows must not be retried forever); 400 naming the bad parameter; 413 past
``WEBHOOK_MAX_BODY_BYTES``; 503 while Redis is down (AllMySMS may call again).

The path holds a secret: nothing here logs it (nor the reply text); keep the server's access
log off.
"""

from __future__ import annotations

import hmac
import uuid
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import structlog
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from producers.durability import Barrier
from producers.errors import RedisUnavailableError, WebhookParamError
from producers.optouts import OptOuts
from producers.phones import mask_phone
from worker.store.evidence import EvidenceBook
from worker.store.ledger import Ledger
from worker.store.receipts import (
    RECEIPT_PARAMS,
    REPLY_PARAMS,
    Applied,
    ReceiptBook,
    Reply,
    parse_receipt,
    parse_reply,
)
from worker.store.stop_replies import stop_recorder


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from redis import Redis
    from starlette.responses import Response
    from starlette.types import Message

    from worker.settings import Settings

log = structlog.get_logger()

WEBHOOK_BASE = "/webhooks/allmysms/{secret}"
RECEIPTS_PATH = f"{WEBHOOK_BASE}/receipts"
REPLIES_PATH = f"{WEBHOOK_BASE}/replies"
WEBHOOK_MAX_BODY_BYTES = 16 * 1024
"""Largest webhook body read (a receipt is ~200 bytes, a long reply ~3 KiB); 413 above."""
MAX_FORM_FIELDS = 32
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


class _TooLargeError(Exception):
    """The body is over the limit."""


class _Webhooks:
    def __init__(
        self,
        secret: str,
        book: ReceiptBook,
        max_body_bytes: int,
        durable: Callable[[], None],
        stop: Callable[[Reply, Applied], object] | None = None,
        evidence: EvidenceBook | None = None,
    ) -> None:
        self._stop = stop
        """Puts the number of a STOP reply on the suppression list."""
        self._secret = secret.encode("utf-8")
        self._book = book
        self._evidence = evidence
        """Settles an ``unknown`` message a receipt or reply for an unknown smsId proves sent."""
        self._max_body = max_body_bytes
        self._durable = durable
        """The durability barrier: AllMySMS gets its 200 only once replicas have the receipt."""

    async def receipts(self, request: Request) -> Response:
        return await self._handle(request, RECEIPT_PARAMS, self._receipt)

    async def replies(self, request: Request) -> Response:
        return await self._handle(request, REPLY_PARAMS, self._reply)

    async def _handle(
        self,
        request: Request,
        known: tuple[str, ...],
        apply: Callable[[Mapping[str, str]], Applied],
    ) -> Response:
        given = str(request.path_params.get("secret", "")).encode("utf-8")
        if not hmac.compare_digest(given, self._secret):
            return PlainTextResponse("not found\n", status_code=404)
        try:
            params = await _params(request, self._max_body)
        except _TooLargeError:
            return PlainTextResponse(f"body larger than {self._max_body} bytes\n", status_code=413)
        except ValueError:
            return PlainTextResponse("unreadable form body\n", status_code=400)
        if not any(name in params for name in known):
            # AllMySMS calls the URL once when it is registered: answer like any receipt.
            log.info("sms.webhook.probe", path=request.url.path.rsplit("/", 1)[-1])
            return PlainTextResponse("OK")
        try:
            await run_in_threadpool(apply, params)
            await run_in_threadpool(self._durable)
        except WebhookParamError as exc:
            return PlainTextResponse(f"{exc.field}: {exc.reason}\n", status_code=400)
        except (RedisError, RedisUnavailableError) as exc:
            log.warning("sms.webhook.redis_unavailable", error=type(exc).__name__)
            return PlainTextResponse(
                "store unavailable, call again later\n",
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return PlainTextResponse("OK")

    def _receipt(self, params: Mapping[str, str]) -> Applied:
        receipt = parse_receipt(params)
        applied = self._book.apply_receipt(receipt, event_id=uuid.uuid4().hex)
        if applied.outcome == "unknown" and self._evidence is not None:
            applied = (
                self._evidence.on_receipt(receipt, self._book, event_id=uuid.uuid4().hex) or applied
            )
        log.info(
            "sms.receipt." + ("ignored" if applied.outcome == "unknown" else applied.outcome),
            message_id=applied.message_id,
            phone=mask_phone(applied.phone or receipt.phone),
            status=receipt.status,
            stored_status=applied.status,
        )
        return applied

    def _reply(self, params: Mapping[str, str]) -> Applied:
        reply = parse_reply(params)
        applied = self._book.store_reply(reply, event_id=uuid.uuid4().hex)
        if applied.outcome == "unknown" and self._evidence is not None:
            applied = (
                self._evidence.on_reply(reply, self._book, event_id=uuid.uuid4().hex) or applied
            )
        if self._stop is not None:
            self._stop(reply, applied)
        # Never the reply text: it is the person's own words.
        log.info(
            "sms.reply." + ("ignored" if applied.outcome == "unknown" else applied.outcome),
            message_id=applied.message_id,
            phone=mask_phone(applied.phone or reply.phone),
            chars=len(reply.text),
        )
        return applied


def webhook_routes(settings: Settings, connection: Redis) -> list[Route]:
    """The receipt and reply routes, or none when ``SMSQ_WEBHOOK_SECRET`` is not set."""
    secret = settings.webhook_secret.reveal()
    if not secret:
        return []
    barrier = Barrier.from_settings(settings.producer)
    ledger = Ledger(
        connection, ttl_s=settings.producer.outcome_ttl_s, worker_name="webhooks", barrier=barrier
    )
    optouts = OptOuts(connection, key=settings.producer.optout_key, barrier=barrier)
    handlers = _Webhooks(
        secret,
        ReceiptBook(connection, keep_s=settings.replies_ttl_s),
        WEBHOOK_MAX_BODY_BYTES,
        partial(barrier.confirm, connection),
        stop=stop_recorder(optouts, settings),
        evidence=EvidenceBook(
            connection,
            ledger,
            actor="webhooks (evidence)",
            ttl_s=settings.producer.outcome_ttl_s,
        ),
    )
    return [
        Route(RECEIPTS_PATH, handlers.receipts, methods=["GET", "POST"]),
        Route(REPLIES_PATH, handlers.replies, methods=["GET", "POST"]),
    ]


async def _params(request: Request, limit: int) -> dict[str, str]:
    """Query parameters, overridden by a form body's; the body is read up to ``limit`` bytes.

    Raises:
        _TooLargeError: the body (declared or read) is over ``limit``.
        ValueError: the form body cannot be parsed.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLargeError
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLargeError
    params = dict(parse_qsl(request.url.query, keep_blank_values=True))
    mime = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if request.method == "POST" and mime == _FORM:
        params.update(
            parse_qsl(
                body.decode("utf-8", "replace"),
                keep_blank_values=True,
                max_num_fields=MAX_FORM_FIELDS,
            )
        )
    elif request.method == "POST" and mime == _MULTIPART:
        params.update(await _multipart(request, body))
    return params


async def _multipart(request: Request, body: bytes) -> dict[str, str]:
    """Text fields of a multipart body already read (files are refused)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=0, max_fields=MAX_FORM_FIELDS)
    except Exception as exc:  # any parser error is a bad body
        raise ValueError("unreadable multipart body") from exc
    return {name: value for name, value in form.items() if isinstance(value, str)}
