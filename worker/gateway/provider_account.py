"""The gateway's ``getInfo`` and ``getBlacklist``: facts about smsq's own AllMySMS account,
which every producer shares, asked with smsq's credentials (``ALLMYSMS_*``).

getInfo answers ``{"status": "Active Account", "credits": "<balance>"}`` only: AllMySMS's
answer also carries the account's apiKey, names, company and e-mail, which a producer must
never see (the client drops them: :meth:`worker.allmysms.client.AllMySmsClient.get_info`).
A balance smsq learnt less than :data:`INFO_FRESH_S` ago (the credits watch, any sendSms
answer: ``worker.store.credits``) is answered from the store without asking AllMySMS, even by
a gateway without ``ALLMYSMS_*``; a balance asked here is stored for the others.

getBlacklist is proxied as AllMySMS answers it, ``{"blacklist": [{"phoneNumber", "comment",
"receptionDate"}]}``: the account's STOP list, which producers must honour.

A gateway without AllMySMS credentials answers HTTP 501 (getInfo: when no fresh balance is
known); AllMySMS unreachable, answering unreadably or refusing smsq's own credentials, HTTP
502 naming what went wrong (never a 102 the producer would take for its own login failing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from producers.errors import ProviderError
from worker.allmysms.client import AllMySmsClient
from worker.gateway.endpoints import account_routes
from worker.gateway.sendsms import Answer, answer_format, http_error
from worker.store.credits import CreditsStore


if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.routing import Route

    from producers.simulation import BlacklistEntry
    from worker.gateway.context import GatewayContext
    from worker.settings import ProducerAccount, Settings

log = structlog.get_logger()

INFO_FRESH_S = 60.0
"""A stored balance younger than this answers getInfo without asking AllMySMS."""
ACCOUNT_STATUS = "Active Account"
"""getInfo's ``status``: AllMySMS's text for an account that answers (smsq's does, or no
credits would be known)."""


def unavailable_text(endpoint: str) -> str:
    return (
        f"{endpoint} is not available: this gateway has no AllMySMS credentials "
        "(ALLMYSMS_LOGIN, ALLMYSMS_API_KEY)"
    )


class ProviderAccount:
    """Asks AllMySMS about smsq's own account, one client per request (nothing stays open)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def available(self) -> bool:
        """Whether smsq has AllMySMS credentials to ask with."""
        return bool(self._settings.login and self._settings.api_key.reveal())

    def credits(self) -> int:
        """getInfo's balance.

        Raises:
            ProviderError: AllMySMS was not reached, answered unreadably or refused smsq's
                credentials (NotSentError, OutcomeUnknownError).
        """
        client = AllMySmsClient.from_settings(self._settings)
        try:
            return client.get_info()
        finally:
            client.close()

    def blacklist(self) -> list[BlacklistEntry]:
        """getBlacklist's entries.

        Raises:
            ProviderError: as :meth:`credits`.
        """
        client = AllMySmsClient.from_settings(self._settings)
        try:
            return client.get_blacklist()
        finally:
            client.close()


def provider_account_routes(
    settings: Settings, provider: ProviderAccount | None = None
) -> list[Route]:
    """The getInfo and getBlacklist routes; ``provider`` defaults to one from ``settings``."""
    chosen = provider or ProviderAccount(settings)

    def info(
        context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]
    ) -> Answer:
        return get_info(context, account, params, chosen)

    def blacklist(
        context: GatewayContext, account: ProducerAccount, params: Mapping[str, str]
    ) -> Answer:
        return get_blacklist(context, account, params, chosen)

    return account_routes("getInfo", info) + account_routes("getBlacklist", blacklist)


def get_info(
    context: GatewayContext,
    account: ProducerAccount,
    params: Mapping[str, str],
    provider: ProviderAccount,
) -> Answer:
    """smsq's AllMySMS balance, from the store when fresh, else asked of AllMySMS.

    Raises:
        RedisUnavailableError: Redis could not be reached.
    """
    fmt = answer_format(params)
    store = CreditsStore(context.producer.connection)
    known = store.get()
    if known is not None and known.age_s() < INFO_FRESH_S:
        log.info("gateway.get_info", producer=account.login, source="store")
        return Answer(_info(known.credits), fmt)
    if not provider.available:
        log.warning("gateway.get_info_unavailable", producer=account.login)
        return http_error(501, fmt, unavailable_text("getInfo"))
    try:
        credits = provider.credits()
    except ProviderError as exc:
        log.warning("gateway.get_info_failed", producer=account.login, error=type(exc).__name__)
        return http_error(502, fmt, f"AllMySMS getInfo could not be asked: {exc}")
    balance = store.record(credits, source="getInfo")
    log.info("gateway.get_info", producer=account.login, source="getInfo")
    return Answer(_info(balance.credits), fmt)


def get_blacklist(
    context: GatewayContext,
    account: ProducerAccount,
    params: Mapping[str, str],
    provider: ProviderAccount,
) -> Answer:
    """AllMySMS's STOP list of smsq's account, as AllMySMS answers it."""
    fmt = answer_format(params)
    if not provider.available:
        log.warning("gateway.get_blacklist_unavailable", producer=account.login)
        return http_error(501, fmt, unavailable_text("getBlacklist"))
    try:
        entries = provider.blacklist()
    except ProviderError as exc:
        log.warning(
            "gateway.get_blacklist_failed", producer=account.login, error=type(exc).__name__
        )
        return http_error(502, fmt, f"AllMySMS getBlacklist could not be asked: {exc}")
    log.info("gateway.get_blacklist", producer=account.login, entries=len(entries))
    return Answer(
        {
            "blacklist": [
                {
                    "phoneNumber": e.phone_number,
                    "comment": e.comment,
                    "receptionDate": e.reception_date,
                }
                for e in entries
            ]
        },
        fmt,
    )


def _info(credits: int) -> dict[str, str]:
    return {"status": ACCOUNT_STATUS, "credits": str(credits)}
