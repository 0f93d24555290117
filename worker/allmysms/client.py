"""AllMySMS HTTP API v9.0 client: exactly one POST per call (``sendSms``, ``getInfo``,
``simulateCampaign``, ``getBlacklist``), errors translated.

Nothing above this module sees an httpx exception: connect failures become
:class:`NotSentError`, anything after the request may have left becomes
:class:`OutcomeUnknownError`, and the answer is parsed leniently (numbers arrive as strings or
ints).
"""

from __future__ import annotations

import json
import math
import ssl
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from producers.errors import (
    MisdirectedError,
    NotSentError,
    OutcomeUnknownError,
    ProviderBusyError,
)
from producers.simulation import (
    BlacklistEntry,
    Simulation,
    parse_blacklist,
    parse_simulation,
)
from worker.allmysms.campaigns import parse_delete
from worker.allmysms.polling import Ack, Acks, Mo, Mos, parse_ack, parse_acks, parse_mo, parse_mos
from worker.settings import Secret, Settings


USER_AGENT = "smsq/0.1 (+https://github.com/smsq)"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
"""sendSms is a form POST, as every client on the provider's page sends it."""
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Raised before any request byte left (connection refused, TLS handshake stalled, pool full)."""
PUSH_BACK_STATUSES = frozenset({429, 503})
"""HTTP statuses that mean AllMySMS is overloaded: the global rate limit slows down on them.

Only 429, and 503 carrying ``Retry-After``, prove the request was refused unprocessed and are
retried (:class:`ProviderBusyError`): 429 Too Many Requests (RFC 6585 s. 4) comes from a rate
limiter before the application runs, and a 503 with ``Retry-After`` is a deliberate "not now". A
bare 503 is also what proxies such as Envoy answer when the upstream connection breaks after
the request was forwarded, so, like 500, 502 and 504, it stays unknown and is never resent."""
MISDIRECTED_STATUSES = frozenset({404, 405, 410, 421})
"""HTTP statuses that prove the POST never reached sendSms: no such path (404, 410), that path
takes no POST (405), or the server is not the one the URL names (421, RFC 9110 s. 15.5.20).
AllMySMS answers its own errors with HTTP 200 and a status; a wrong ``ALLMYSMS_BASE_URL`` (the
``/http/9.0`` left out, another host) gets these."""
RETRY_AFTER_MAX_S = 60.0
"""Longest ``Retry-After`` honoured; a longer one is cut to this."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderReply:
    """A parsed sendSms answer."""

    status: int
    status_text: str
    invalid_numbers: list[str] = field(default_factory=list)
    campaign_id: str | None = None
    credits: int | None = None
    credits_used: int | None = None
    nb_contacts: int | None = None
    nb_sms: int | None = None
    sms_ids: dict[str, str] = field(default_factory=dict)


class AllMySmsClient:
    """One httpx client per worker process, one keep-alive connection per send slot."""

    def __init__(
        self,
        *,
        base_url: str,
        login: str,
        api_key: Secret,
        timeout: httpx.Timeout,
        transport: httpx.BaseTransport | None = None,
        connections: int = 1,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/sendSms/"
        self._info_url = f"{base_url.rstrip('/')}/getInfo/"
        self._base_url = base_url.rstrip("/")
        self._simulate_url = f"{base_url.rstrip('/')}/simulateCampaign/"
        self._blacklist_url = f"{base_url.rstrip('/')}/getBlacklist/"
        self._delete_url = f"{base_url.rstrip('/')}/deleteCampaign/"
        parts = httpx.URL(self._url)
        self._host = parts.host
        self._url_shown = str(parts.copy_with(username=None, password=None, query=None))
        """The URL for messages: never credentials, should a base URL carry any."""
        self._login = login
        self._api_key = api_key
        self._client = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: httpx.BaseTransport | None = None
    ) -> AllMySmsClient:
        timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.write_timeout_s,
            pool=settings.pool_timeout_s,
        )
        return cls(
            base_url=settings.base_url,
            login=settings.login,
            api_key=settings.api_key,
            timeout=timeout,
            transport=transport,
            connections=settings.send_slots,
        )

    def close(self) -> None:
        self._client.close()

    def send(self, flux: dict[str, Any]) -> ProviderReply:
        """POST one sendSms request. Never retries.

        Raises:
            NotSentError: the connection was never established.
            ProviderBusyError: AllMySMS answered HTTP 429, or 503 with ``Retry-After``: it did
                not process the request (see ``PUSH_BACK_STATUSES``).
            OutcomeUnknownError: the request may have reached AllMySMS and its answer is missing,
                an HTTP error, or not the expected JSON.
        """
        # The form encoded here, as httpx's ``data=`` would (urlencode), saves its per-request
        # encoding machinery on the path to the provider.
        body = urlencode(
            {
                "login": self._login,
                "apiKey": self._api_key.reveal(),
                "smsData": json.dumps(flux, ensure_ascii=False, separators=(",", ":")),
                "returnformat": "json",
            }
        ).encode("ascii")
        try:
            response = self._client.post(self._url, content=body, headers=FORM_HEADERS)
        except NOT_SENT_ERRORS as exc:
            if _certificate_mismatch(exc):
                raise MisdirectedError(
                    f"the TLS certificate of {self._host} is refused ({_certificate_mismatch(exc)})"
                ) from exc
            raise NotSentError(f"{type(exc).__name__}: AllMySMS was not reached") from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknownError(f"{type(exc).__name__} after the request was sent") from exc
        if response.status_code in MISDIRECTED_STATUSES:
            raise MisdirectedError(
                f"HTTP {response.status_code} from {self._url_shown}: no sendSms there",
                http_status=response.status_code,
            )
        if response.status_code in PUSH_BACK_STATUSES:
            retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
            if response.status_code == 429 or retry_after_s is not None:
                raise ProviderBusyError(response.status_code, retry_after_s)
        return parse_reply(response.status_code, response.content)

    def get_info(self) -> int:
        """POST one getInfo request and return the account's credits balance.

        Only ``credits`` is read: the answer also carries the account's apiKey, which is
        dropped here and never stored or logged.

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: a transport error, an HTTP status other than 200, or a body
                that is not a JSON object with a numeric ``credits``.
        """
        body = urlencode(
            {"login": self._login, "apiKey": self._api_key.reveal(), "returnformat": "json"}
        ).encode("ascii")
        try:
            response = self._client.post(self._info_url, content=body, headers=FORM_HEADERS)
        except NOT_SENT_ERRORS as exc:
            raise NotSentError(f"{type(exc).__name__}: AllMySMS getInfo was not reached") from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknownError(f"{type(exc).__name__} during getInfo") from exc
        return parse_info(response.status_code, response.content)

    def get_acks(self, campaign_id: str) -> Acks:
        """getAcks for one campaign: every recipient's acknowledgement and the cliMsgId.

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: a transport error, an HTTP status other than 200, or an
                answer that is neither acks nor "nothing" (status 0).
        """
        status, body = self._lookup("getAcks", {"campId": campaign_id})
        return parse_acks(status, body)

    def get_ack_by_sms_id(self, sms_id: str) -> Ack | None:
        """getAckBySmsId: one recipient's acknowledgement, None when AllMySMS has none.

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: as :meth:`get_acks`.
        """
        status, body = self._lookup("getAckBySmsId", {"smsId": sms_id})
        return parse_ack(status, body)

    def get_pulls(self, limit: int) -> Mos:
        """getPulls: replies received since the last call (AllMySMS forgets what it answered,
        so the caller must store them before asking again).

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: as :meth:`get_acks`.
        """
        status, body = self._lookup("getPulls", {"limit": str(limit)})
        return parse_mos(status, body, endpoint="getPulls")

    def get_pull(self, campaign_id: str) -> Mos:
        """getPull: the replies to one campaign.

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: as :meth:`get_acks`.
        """
        status, body = self._lookup("getPull", {"campId": campaign_id})
        return parse_mos(status, body, endpoint="getPull")

    def get_pull_by_sms_id(self, sms_id: str) -> Mo | None:
        """getPullBySmsId: the reply to one recipient, None when there is none.

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: as :meth:`get_acks`.
        """
        status, body = self._lookup("getPullBySmsId", {"smsId": sms_id})
        return parse_mo(status, body)

    def _lookup(self, endpoint: str, params: dict[str, str]) -> tuple[int, bytes]:
        """POST one polling request; the error semantics of :meth:`get_info`.

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: a transport error after the request left.
        """
        response = self._post_account(f"{self._base_url}/{endpoint}/", endpoint, params)
        return response.status_code, response.content

    def simulate(self, flux: dict[str, Any]) -> Simulation:
        """POST one simulateCampaign request: what sending ``flux`` would cost. Nothing is sent.

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: a transport error, an HTTP status other than 200, or an answer
                that cannot be read (see :func:`parse_simulation`); nothing was sent either way.
        """
        sms_data = json.dumps(flux, ensure_ascii=False, separators=(",", ":"))
        response = self._post_account(self._simulate_url, "simulateCampaign", {"smsData": sms_data})
        return parse_simulation(response.status_code, response.content)

    def get_blacklist(self) -> list[BlacklistEntry]:
        """POST one getBlacklist request: the account's STOP list.

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: a transport error, an HTTP status other than 200, or an answer
                that cannot be read (see :func:`parse_blacklist`).
        """
        response = self._post_account(self._blacklist_url, "getBlacklist")
        return parse_blacklist(response.status_code, response.content)

    def _post_account(
        self, url: str, endpoint: str, fields: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST login, apiKey, ``returnformat=json`` and ``fields`` to an endpoint that sends
        nothing, translating transport errors (messages name ``endpoint``, never the key).

        Raises:
            NotSentError: AllMySMS was not reached.
            OutcomeUnknownError: a transport error after the request may have left.
        """
        form = {"login": self._login, "apiKey": self._api_key.reveal(), **(fields or {})}
        body = urlencode({**form, "returnformat": "json"}).encode("ascii")
        try:
            return self._client.post(url, content=body, headers=FORM_HEADERS)
        except NOT_SENT_ERRORS as exc:
            raise NotSentError(
                f"{type(exc).__name__}: AllMySMS {endpoint} was not reached"
            ) from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknownError(f"{type(exc).__name__} during {endpoint}") from exc

    def delete_campaign(self, campaign_id: str) -> None:
        """POST one deleteCampaign request for ``campaign_id``; return once AllMySMS said OK.

        Raises:
            NotSentError: AllMySMS was not reached (the campaign is untouched).
            OutcomeUnknownError: a transport error after the request left, an HTTP status
                other than 200, or a body that is not a JSON object: it may have been deleted.
            ProviderRefusedError: AllMySMS answered something other than ``status`` "OK"
                (see ``worker.allmysms.campaigns``).
        """
        body = urlencode(
            {
                "login": self._login,
                "apiKey": self._api_key.reveal(),
                "campId": campaign_id,
                "returnformat": "json",
            }
        ).encode("ascii")
        try:
            response = self._client.post(self._delete_url, content=body, headers=FORM_HEADERS)
        except NOT_SENT_ERRORS as exc:
            raise NotSentError(
                f"{type(exc).__name__}: AllMySMS deleteCampaign was not reached"
            ) from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknownError(f"{type(exc).__name__} during deleteCampaign") from exc
        parse_delete(response.status_code, response.content)


def parse_info(http_status: int, body: bytes) -> int:
    """Read ``credits`` from a getInfo answer (a string or a number).

    Raises:
        OutcomeUnknownError: not HTTP 200, not a JSON object, or no numeric ``credits`` (an
            error answer such as 102 names its status).
    """
    if http_status != 200:
        raise OutcomeUnknownError(
            f"AllMySMS getInfo answered HTTP {http_status}", http_status=http_status
        )
    try:
        data = json.loads(body)
    except ValueError:
        raise OutcomeUnknownError(
            "AllMySMS getInfo answered HTTP 200 with a body that is not JSON", http_status=200
        ) from None
    credits = _as_int(data.get("credits")) if isinstance(data, dict) else None
    if credits is None:
        status = _as_int(data.get("status")) if isinstance(data, dict) else None
        detail = f" (status {status})" if status is not None else ""
        raise OutcomeUnknownError(
            f"AllMySMS getInfo answered without a numeric credits{detail}", http_status=200
        )
    return credits


def _certificate_mismatch(exc: Exception) -> str | None:
    """The verification error when a connect failed on the server's certificate."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or "certificate verify failed"
        cause = cause.__cause__ or cause.__context__
    return None


def parse_reply(http_status: int, body: bytes) -> ProviderReply:
    """Parse a sendSms answer body.

    Raises:
        OutcomeUnknownError: an HTTP status other than 200, or a body that is not a JSON object
            with a numeric ``status``.
    """
    if http_status != 200:
        raise OutcomeUnknownError(f"AllMySMS answered HTTP {http_status}", http_status=http_status)
    try:
        data = json.loads(body)
    except ValueError:
        raise OutcomeUnknownError(
            "AllMySMS answered HTTP 200 with a body that is not JSON", http_status=200
        ) from None
    status = _as_int(data.get("status")) if isinstance(data, dict) else None
    if status is None:
        raise OutcomeUnknownError(
            "AllMySMS answered HTTP 200 without a numeric status", http_status=200
        )
    return ProviderReply(
        status=status,
        status_text=str(data.get("statusText") or ""),
        invalid_numbers=[n for n in str(data.get("invalidNumbers") or "").split("|") if n],
        campaign_id=str(data["campaignId"]) if data.get("campaignId") else None,
        credits=_as_int(data.get("credits")),
        credits_used=_as_int(data.get("creditsUsed")),
        nb_contacts=_as_int(data.get("nbContacts")),
        nb_sms=_as_int(data.get("nbSms")),
        sms_ids=_sms_ids(data.get("smsIds")),
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), capped at
    ``RETRY_AFTER_MAX_S``; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _sms_ids(value: object) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    ids: dict[str, str] = {}
    for entry in value:
        if isinstance(entry, dict) and entry.get("phoneNumber") and entry.get("smsId"):
            ids[str(entry["phoneNumber"])] = str(entry["smsId"])
    return ids
