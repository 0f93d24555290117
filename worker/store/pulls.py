"""The gateway's getPulls cursor: per producer login, the replies (MO SMS) to its gateway
messages that its getPulls has not returned yet, oldest first ("since the last call", as
AllMySMS's getPulls).

Fed in the reply's own script (``worker/store/lua/receipts_store_reply.lua``): a new reply to a
message whose record has ``source`` gateway and a ``producer`` is pushed to
``smsq:gateway-pulls:<login>`` as ``<message id> <smsMoId>`` (the id the producer knows: a
split message's, not its part's). Bounded: the newest :data:`PULLS_MAX` are kept, and the list
expires :data:`PULLS_TTL_S` after the last reply pushed. It holds references only, no number and
no text: a reply is read from its message when getPulls asks, so a person ``smsq purge --phone``
erased (or a message expired) is simply not found and skipped.

:meth:`PullQueue.take` removes what it returns: a getPulls whose answer is lost (the client hung
up) does not return those replies again; getPull (``campId``) still does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers import keys
from producers.contract import SOURCE_GATEWAY
from producers.redis_errors import translate_redis_errors
from producers.store import decoded


if TYPE_CHECKING:
    from redis import Redis

PULLS_MAX = 10_000
"""References a producer's list keeps at most (the oldest are dropped): a producer that never
calls getPulls does not grow Redis without end."""
PULLS_TTL_S = 30 * 24 * 3600
"""The list expires this long after the last reply pushed (a producer that stopped calling)."""
HOOK_VALUES = {
    "SOURCE_GATEWAY": SOURCE_GATEWAY,
    "GATEWAY_PULLS_PREFIX": keys.GATEWAY_PULLS_PREFIX,
    "GATEWAY_PULLS_MAX": str(PULLS_MAX),
    "GATEWAY_PULLS_TTL_S": str(PULLS_TTL_S),
}
"""The placeholders ``receipts_store_reply.lua`` takes from here."""


@dataclass(frozen=True, slots=True)
class PullRef:
    """One reply not yet returned: the message id the producer knows, and the reply's id."""

    message_id: str
    sms_mo_id: str


class PullQueue:
    """Takes a producer's pending reply references."""

    def __init__(self, connection: Redis) -> None:
        self._redis = connection

    def take(self, login: str, limit: int) -> list[PullRef]:
        """Remove and return up to ``limit`` references, oldest first.

        Raises:
            RedisUnavailableError: Redis could not be reached.
        """
        with translate_redis_errors(self._redis):
            raw = self._redis.lpop(keys.gateway_pulls(login), limit)
        refs = []
        items: list[bytes | str] = raw if isinstance(raw, list) else []
        for item in items:
            message_id, _, sms_mo_id = decoded(item).partition(" ")
            if message_id and sms_mo_id:
                refs.append(PullRef(message_id, sms_mo_id))
        return refs

    def pending(self, login: str) -> int:
        """How many references wait for ``login``'s next getPulls."""
        with translate_redis_errors(self._redis):
            return int(self._redis.llen(keys.gateway_pulls(login)))
