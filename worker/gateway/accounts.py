"""The gateway's producer accounts: who may send, checked in constant time.

Credentials are the gateway's own (``SMSQ_PRODUCERS``), never AllMySMS's apiKey.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Iterable

    from worker.settings import ProducerAccount


class ProducerBook:
    """Finds the producer account a ``login``/``apiKey`` pair belongs to."""

    def __init__(self, accounts: Iterable[ProducerAccount]) -> None:
        self._accounts = tuple(
            (account, account.login.encode(), account.api_key.reveal().encode())
            for account in accounts
        )

    def __len__(self) -> int:
        return len(self._accounts)

    def knows(self, login: str) -> bool:
        """Whether ``login`` is an account's (for the failed-login throttle, not to sign in)."""
        given = login.encode("utf-8", "replace")
        return any(hmac.compare_digest(given, known) for _, known, _ in self._accounts)

    def authenticate(self, login: str, api_key: str) -> ProducerAccount | None:
        """The account whose login and key both match, or None.

        Every account is compared, login and key alike, with ``hmac.compare_digest``: the time
        taken does not tell a known login from an unknown one, nor how much of a key matched.
        """
        given_login = login.encode("utf-8", "replace")
        given_key = api_key.encode("utf-8", "replace")
        found: ProducerAccount | None = None
        for account, known_login, known_key in self._accounts:
            login_ok = hmac.compare_digest(given_login, known_login)
            key_ok = hmac.compare_digest(given_key, known_key)
            if login_ok & key_ok and found is None:
                found = account
        return found
