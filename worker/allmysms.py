"""AllMySMS HTTP API v9.0 client: exactly one ``sendSms`` POST per call, errors translated.

Nothing above this module sees an httpx exception: connect failures become
:class:`NotSentError`, anything after the request may have left becomes
:class:`OutcomeUnknownError`, and the answer is parsed leniently (numbers arrive as strings or
ints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from producers.errors import NotSentError, OutcomeUnknownError
from worker.settings import Secret, Settings


USER_AGENT = "smsq/0.1 (+https://github.com/smsq)"
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Raised before any request byte left (connection refused, TLS handshake stalled, pool full)."""


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

    def __init__(self, *, base_url: str, login: str, api_key: Secret, timeout: httpx.Timeout,
                 transport: httpx.BaseTransport | None = None, connections: int = 1) -> None:
        self._url = f"{base_url.rstrip('/')}/sendSms/"
        self._login = login
        self._api_key = api_key
        self._client = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections,
                                max_keepalive_connections=connections),
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings,
                      transport: httpx.BaseTransport | None = None) -> AllMySmsClient:
        timeout = httpx.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s,
                                write=settings.write_timeout_s, pool=settings.pool_timeout_s)
        return cls(base_url=settings.base_url, login=settings.login, api_key=settings.api_key,
                   timeout=timeout, transport=transport, connections=settings.send_slots)

    def close(self) -> None:
        self._client.close()

    def send(self, flux: dict[str, Any]) -> ProviderReply:
        """POST one sendSms request. Never retries.

        Raises:
            NotSentError: the connection was never established.
            OutcomeUnknownError: the request may have reached AllMySMS and its answer is missing,
                an HTTP error, or not the expected JSON.
        """
        form = {
            "login": self._login,
            "apiKey": self._api_key.reveal(),
            "smsData": json.dumps(flux, ensure_ascii=False, separators=(",", ":")),
            "returnformat": "json",
        }
        try:
            response = self._client.post(self._url, data=form)
        except NOT_SENT_ERRORS as exc:
            raise NotSentError(f"{type(exc).__name__}: AllMySMS was not reached") from exc
        except httpx.TransportError as exc:
            raise OutcomeUnknownError(
                f"{type(exc).__name__} after the request was sent"
            ) from exc
        return parse_reply(response.status_code, response.content)


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
