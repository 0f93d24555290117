"""The sendSms endpoint: AllMySMS v9.0 requests in every form the provider accepts, enqueued.

Parameters come as a GET query, a POST ``application/x-www-form-urlencoded`` body or a POST
``multipart/form-data`` body (body fields win over query fields, as in the sandbox): ``login``,
``apiKey``, ``smsData`` (XML or JSON flux), ``returnformat`` (``json``/``xml``; by default the
flux's own format), and smsq's extensions ``lane`` and ``callbackUrl``. Headers:
``Idempotency-Key`` and ``X-Smsq-Callback-Url``. A ``callbackUrl`` the callback policy refuses
without DNS (a host outside ``SMSQ_CALLBACK_ALLOWED_HOSTS``, a non-public IP literal) is
answered 106; ``smsq callbacks`` checks every resolved address again when it connects.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl
from xml.parsers import expat

import structlog
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.responses import Response

from producers.contract import SOURCE_GATEWAY, RefusedNumber, SendRequest
from producers.errors import (
    CallbackRefusedError,
    FluxError,
    InvalidRequestError,
    RedisUnavailableError,
)
from worker.allmysms.flux import (
    STATUS_TEXTS,
    check_flux,
    check_text,
    error_reply,
    parse_flux,
    render,
    sniff_format,
)
from worker.gateway.context import GatewayContext, context_of
from worker.gateway.headers import SECURITY_HEADERS
from worker.gateway.limits import Refusal
from worker.gateway.translate import (
    build_request,
    check_horizon,
    refusal,
    refused_phones,
    success_reply,
)
from worker.store.quotas import OverQuota


if TYPE_CHECKING:
    from starlette.datastructures import Headers
    from starlette.requests import Request

    from worker.settings import ProducerAccount

log = structlog.get_logger()

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FIELDS = 1000
"""More parameters than this in one request is not a sendSms call: 400."""
RETRY_AFTER_S = 1
"""Suggested wait before retrying when Redis is down (Retry-After header)."""
LOGIN_LOG_MAX_CHARS = 64
"""A failed login is logged cut to this length (it is whatever the client sent)."""
TEXT_PARAMS = ("lane", "callbackUrl", "purpose", "transliterate")
QUOTA_STATUS = 103
"""An account over its quota is answered as AllMySMS answers an account out of credits: clients
already stop and alert on it. The statusText says which quota and until when."""
"""Parameters besides smsData that reach the stored request: checked to be valid Unicode."""
SMS_DATA_HINT = 'smsData must be {"DATA": {...}} (JSON) or <DATA>...</DATA> (XML)'
HTTP_TEXTS = {
    400: "The request body could not be read",
    404: "Not found: sendSms is at /http/9.0/sendSms/",
    405: "Method not allowed: sendSms takes GET or POST",
    413: "Request body too large",
    500: "Internal error; it has been logged. Nothing was sent for this request",
    503: "Redis is unavailable; nothing was enqueued. Retry with the same CLIMSGID or "
    "Idempotency-Key",
}
"""statusText of the answers that are not AllMySMS business statuses (``status`` = HTTP code)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply to render with the HTTP status and extra headers that go with it."""

    reply: dict[str, Any]
    fmt: str
    http_status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def answer_format(params: Mapping[str, str]) -> str:
    """``returnformat`` when it is json or xml (any case), else the flux's format, else json."""
    wanted = params.get("returnformat", "").strip().lower()
    if wanted in ("json", "xml"):
        return wanted
    return sniff_format(params.get("smsData", "")) or "json"


def http_error(
    http_status: int, fmt: str, text: str | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """An answer for a transport-level problem: HTTP ``http_status``, body status the same."""
    reply = error_reply(http_status, text or HTTP_TEXTS.get(http_status, "Error"))
    return Answer(reply, fmt, http_status, headers or {})


def to_response(answer: Answer) -> Response:
    """Render an answer as AllMySMS does (JSON as ``text/html``), never cached, with the
    security headers (also here: a 500 leaves through Starlette's outermost middleware, which
    the :class:`~worker.asgi.SecurityHeaders` middleware does not wrap)."""
    body, content_type = render(answer.reply, answer.fmt)
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "no-store",
        **SECURITY_HEADERS,
        **answer.headers,
    }
    return Response(body, status_code=answer.http_status, headers=headers)


def query_params(request: Request) -> dict[str, str]:
    """The query string's parameters (decoded as UTF-8, blanks kept), ``{}`` when unreadable."""
    raw = request.scope.get("query_string", b"").decode("utf-8", "replace")
    try:
        return dict(parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except ValueError:
        return {}


async def send_sms(request: Request) -> Response:
    """GET or POST ``/http/9.0/sendSms/``: answer like AllMySMS, enqueue what it would send."""
    context = context_of(request)
    query = query_params(request)
    fmt = answer_format(query)
    if request.method not in ("GET", "POST"):  # starlette routes HEAD with GET: it must not send
        return to_response(http_error(405, fmt, headers={"Allow": "GET, POST"}))
    limit = context.settings.gateway_max_body_bytes
    body = await read_body(request, limit)
    if body is None:
        log.info("gateway.refused", status=413, reason="body too large")
        return to_response(http_error(413, fmt, f"Request body larger than {limit} bytes"))
    params = dict(query)
    if request.method == "POST":
        fields = await body_params(request.headers, body, limit)
        if fields is None:
            log.info("gateway.refused", status=400, reason="unreadable body")
            return to_response(http_error(400, fmt))
        params.update(fields)
    try:
        answer = await run_in_threadpool(
            handle, context, params, request.headers, datetime.now(UTC), client_address(request)
        )
    except (RedisUnavailableError, RedisError) as exc:
        log.warning("gateway.redis_unavailable", error=type(exc).__name__)
        answer = http_error(503, answer_format(params), headers={"Retry-After": str(RETRY_AFTER_S)})
    except Exception as exc:  # answered in the client's format; the app's handler is a backstop
        log.error("gateway.request_failed", error=type(exc).__name__, exc_info=exc)
        answer = http_error(500, answer_format(params))
    return to_response(answer)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None once it exceeds ``limit`` bytes (Content-Length or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def body_params(headers: Headers, body: bytes, limit: int) -> dict[str, str] | None:
    """Parameters of a form or multipart body; ``{}`` for any other type, None when unreadable."""
    mime = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime == FORM:
        try:
            return dict(
                parse_qsl(
                    body.decode("utf-8", "replace"),
                    keep_blank_values=True,
                    max_num_fields=MAX_FIELDS,
                )
            )
        except ValueError:
            return None
    if mime != MULTIPART:
        return {}

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        headers, stream(), max_files=MAX_FIELDS, max_fields=MAX_FIELDS, max_part_size=limit
    )
    try:
        form = await parser.parse()
    except MultiPartException:
        return None
    fields: dict[str, str] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):  # curl -F smsData=@flux.xml sends a file part
                fields[name] = (await value.read()).decode("utf-8", "replace")
            else:
                fields[name] = value
    finally:
        await form.close()
    return fields


def client_address(request: Request) -> str:
    """The client's address as the ASGI server gives it (uvicorn rewrites it behind a trusted
    proxy); ``unknown`` when there is none (a Unix socket)."""
    return request.client.host if request.client else "unknown"


def handle(
    context: GatewayContext,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    now: datetime,
    client: str = "unknown",
) -> Answer:
    """Check credentials and flux in AllMySMS's order, enqueue, and build the answer.

    A locked-out address or login, and a login over its rate, get HTTP 429 with Retry-After
    before anything else is read.

    Raises:
        RedisUnavailableError: Redis could not be reached (the app answers 503).
    """
    fmt = answer_format(params)
    account = sign_in(context, params, client, fmt)
    if isinstance(account, Answer):
        return account
    bound = log.bind(producer=account.login)
    over = context.limits.take_request(account.login)
    if over is not None:
        bound.warning("gateway.rate_limited", client=client, retry_after_s=over.retry_after_s)
        return too_many(over, fmt)
    try:
        request = checked_request(context, account, params, headers, now)
    except FluxError as exc:
        bound.info("gateway.refused", status=exc.status)
        return Answer(error_reply(exc.status, _flux_error_text(exc)), fmt)
    except InvalidRequestError as exc:
        status, text = refusal(exc)
        bound.info("gateway.refused", status=status, field=exc.field)
        return Answer(error_reply(status, text), fmt)
    cost = request.segments * len(request.recipients)
    charged = context.quotas.take(
        account.login,
        cost,
        key=request.key,
        daily=account.daily_quota,
        monthly=account.monthly_quota,
        now=now,
    )
    if isinstance(charged, OverQuota):
        bound.warning(
            "gateway.over_quota", period=charged.period, used=charged.used, limit=charged.limit
        )
        return Answer(error_reply(QUOTA_STATUS, charged.text), fmt)
    try:
        enqueued = context.producer.enqueue(request, source=SOURCE_GATEWAY)
    except BaseException:
        if charged:
            context.quotas.refund(account.login, cost, now=now)
        raise
    if charged and enqueued.duplicate:
        context.quotas.refund(account.login, cost, now=now)
    refused = refused_phones(enqueued.refused_numbers)
    if enqueued.duplicate:
        record = context.store.get_by_id(enqueued.message_id)
        if record is not None:  # else it expired in between: answer from this request
            request = SendRequest.from_stored(record.request)
            refused = refused_phones(record.refused_numbers)
    reply = success_reply(request, refused, enqueued.message_id, now)
    bound.info(
        "gateway.accepted",
        status=reply["status"],
        message_id=enqueued.message_id,
        recipients=len(request.recipients),
        refused=len(refused),
        duplicate=enqueued.duplicate,
        state=enqueued.state.value,
    )
    headers_out = {"X-Smsq-Message-Id": enqueued.message_id}
    if enqueued.duplicate:
        headers_out["X-Smsq-Duplicate"] = "true"
    return Answer(reply, fmt, headers=headers_out)


def sign_in(
    context: GatewayContext, params: Mapping[str, str], client: str, fmt: str
) -> ProducerAccount | Answer:
    """The producer account of ``login``/``apiKey``, or the answer that refuses the request: 429
    while the address or the login is locked out, else 102 for wrong credentials (counted, and
    logged with the login and the client address, never the key)."""
    login = params.get("login", "")
    known = context.book.knows(login)
    shown = login[:LOGIN_LOG_MAX_CHARS]
    locked = context.limits.locked_out(login, client, known_login=known)
    if locked is not None:
        log.warning(
            "gateway.login_locked_out",
            login=shown,
            client=client,
            retry_after_s=locked.retry_after_s,
        )
        return too_many(locked, fmt)
    account = context.book.authenticate(login, params.get("apiKey", ""))
    if account is None:
        failures = context.limits.record_failure(login, client, known_login=known)
        log.warning(
            "gateway.login_failed",
            status=102,
            login=shown,
            known_login=known,
            client=client,
            failures=failures,
        )
        return Answer(error_reply(102), fmt)
    return account


def too_many(refusal: Refusal, fmt: str) -> Answer:
    """HTTP 429 in the provider's shape (body status 429), with Retry-After."""
    text = f"Too many requests: {refusal.reason}; nothing was enqueued. Retry after "
    text += f"{refusal.retry_after_s} s"
    return http_error(429, fmt, text, headers={"Retry-After": str(refusal.retry_after_s)})


def check_callback_url(context: GatewayContext, request: SendRequest) -> None:
    """Refuse, at request time and without DNS, a callback destination the policy refuses.

    Raises:
        InvalidRequestError: names ``callback_url`` and the policy's reason (answered 106).
    """
    if request.callback_url is None:
        return
    try:
        context.callback_policy.check_url(request.callback_url)
    except CallbackRefusedError as exc:
        raise InvalidRequestError("callback_url", exc.reason) from exc
    except ValueError:
        raise InvalidRequestError("callback_url", "must be an absolute http(s) URL") from None


def _flux_error_text(exc: FluxError) -> str:
    """The provider's statusText, made precise where it names no tag (106, 107)."""
    base = STATUS_TEXTS.get(exc.status, "")
    cause = exc.__cause__
    if exc.detail:
        return f"{base} ({exc.detail})"
    if exc.status == 105:
        return f"{base}: smsData is missing or blank"
    if exc.status == 106 and isinstance(cause, expat.ExpatError):
        return (
            f"{base} (smsData is not well-formed XML: {expat.ErrorString(cause.code)}, "
            f"line {cause.lineno}, column {cause.offset})"
        )
    if exc.status == 106 and isinstance(cause, ValueError):
        return f"{base} (smsData is not valid JSON: {cause})"
    if exc.status == 106:
        return f"{base} ({SMS_DATA_HINT}; DATA fields are text, SMS a list of objects)"
    if exc.status == 107:
        return f"{base} <SMS> (at least one SMS entry, each with a MOBILEPHONE)"
    if exc.status == 115:
        return f"{STATUS_TEXTS[115]} (expected YYYY-MM-DD HH:MM:SS, Paris time)"
    return base


def checked_request(
    context: GatewayContext,
    account: ProducerAccount,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    now: datetime,
) -> SendRequest:
    """The contract request a sendSms (or simulateCampaign) call asks for, checked as sendSms
    checks it: the smsData flux, the DATE horizon, the text parameters, the callback URL.

    Raises:
        FluxError: the flux is missing or broken (its AllMySMS status).
        InvalidRequestError: the contract refuses the request (:func:`refusal` maps it).
    """
    sms_data = params.get("smsData", "")
    if not sms_data.strip():
        raise FluxError(105)
    for name in TEXT_PARAMS:
        check_text(params.get(name, ""), name)
    flux = parse_flux(sms_data)
    scheduled = check_flux(flux, now)
    check_horizon(flux, now)
    request = build_request(
        flux,
        login=account.login,
        scheduled=scheduled,
        idempotency_key=headers.get("idempotency-key", ""),
        lane=params.get("lane", ""),
        callback_url=params.get("callbackUrl") or headers.get("x-smsq-callback-url", ""),
        purpose=params.get("purpose") or headers.get("x-smsq-purpose", ""),
        account_purpose=account.purpose,
        default_region=context.settings.producer.default_country,
        stop=context.settings.producer.stop,
        transliterate=params.get("transliterate", ""),
        transliteration=account.transliterate or context.settings.producer.transliteration,
        test=account.test,
    )
    if account.allowed_recipients is not None:
        request = allowed_only(request, account.allowed_recipients)
    check_callback_url(context, request)
    return request


NOT_ALLOWED = "not on this account's allow-list"


def allowed_only(request: SendRequest, allowed: tuple[str, ...]) -> SendRequest:
    """``request`` with only the recipients of a staging account's allow-list; the others are
    refused numbers (``not on this account's allow-list``).

    Raises:
        InvalidRequestError: names ``to``: none of the recipients is allowed (114).
    """
    left = tuple(r for r in request.recipients if r.phone in allowed)
    if not left:
        raise InvalidRequestError("to", f"no valid recipient (every one is {NOT_ALLOWED})")
    dropped = tuple(
        RefusedNumber("to", r.phone, NOT_ALLOWED)
        for r in request.recipients
        if r.phone not in allowed
    )
    if not dropped:
        return request
    return replace(request, recipients=left, refused_numbers=request.refused_numbers + dropped)
