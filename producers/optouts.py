"""The suppression list: numbers that opted out, kept as keyed hashes, never in clear.

Each entry is one field of the hash ``smsq:optout``: the HMAC-SHA256 of the international
number under ``SMSQ_OPTOUT_KEY`` (its first 128 bits, hex) → ``{"at", "source", "by",
"comment"}``. Checking a number needs the number and the key, not a stored clear number; an
export holds hashes, dates and sources. Without ``SMSQ_OPTOUT_KEY`` a fixed public key is used:
the entries are then pseudonymous, not secret (a phone number space can be searched), so set one
and keep it: a new key makes every entry unreachable.

Marketing messages never go to a number on the list (checked at enqueue and again just before
the POST); transactional ones do, unless ``SMSQ_OPTOUT_TRANSACTIONAL=1``. Entries stay until
removed (``smsq optout remove``): opposition data must be kept at least 3 years (CNIL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.durability import Barrier
from producers.redis_errors import translate_redis_errors
from producers.store import decoded


if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from redis import Redis

PUBLIC_KEY = b"smsq-optout-v1"
"""The key when ``SMSQ_OPTOUT_KEY`` is not set: pseudonymous, not secret."""
DIGEST_HEX_CHARS = 32
OPTED_OUT = "opted_out"
"""The reason a recipient is dropped for (``refused_numbers``, ``opted_out`` of a record)."""
KEYWORDS = ("STOP", "ARRET", "ARRETER", "DESABONNER", "DESINSCRIRE", "UNSUBSCRIBE", "STOPSMS")
"""Default of ``SMSQ_OPTOUT_KEYWORDS``: a reply whose first word is one of them opts out."""
SCAN_COUNT = 1000


class Source(StrEnum):
    """Where an opt-out came from."""

    REPLY = "reply"
    """A STOP reply (MO SMS) by webhook or polling."""
    BLACKLIST = "blacklist"
    """AllMySMS's ``getBlacklist``."""
    REFUSED = "refused"
    """A number AllMySMS listed in ``invalidNumbers`` of an accepted send."""
    MANUAL = "manual"
    """An operator (``smsq optout add``, the admin page)."""
    PRODUCER = "producer"
    """A producer's call (``Producer.opt_out``)."""


@dataclass(frozen=True, slots=True)
class OptOut:
    digest: str
    at: str
    source: str
    by: str = ""
    comment: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "digest": self.digest,
            "at": self.at,
            "source": self.source,
            "by": self.by,
            "comment": self.comment,
        }


class OptOuts:
    """Reads and writes the suppression list."""

    def __init__(
        self, connection: Redis, *, key: bytes | None = None, barrier: Barrier | None = None
    ) -> None:
        self._redis = connection
        self._key = key or PUBLIC_KEY
        self._barrier = barrier or Barrier()
        """Every change is confirmed by the durability barrier before it is acknowledged."""

    @property
    def connection(self) -> Redis:
        return self._redis

    def digest(self, phone: str) -> str:
        """The keyed hash of an international number without ``+`` (as the contract keeps it)."""
        mac = hmac.new(self._key, phone.encode("ascii", "replace"), hashlib.sha256)
        return mac.hexdigest()[:DIGEST_HEX_CHARS]

    def add(
        self, phone: str, *, source: Source, by: str = "", comment: str = "", at: str | None = None
    ) -> bool:
        """Put ``phone`` on the list; False when it was already there (the first entry stays)."""
        entry = {
            "at": at or datetime.now(UTC).isoformat(timespec="seconds"),
            "source": source.value,
            "by": by,
            "comment": comment[:200],
        }
        with translate_redis_errors(self._redis):
            added = bool(self._redis.hsetnx(keys.OPTOUT, self.digest(phone), json.dumps(entry)))
            self._barrier.confirm(self._redis)
        return added

    def add_many(self, numbers: Iterable[tuple[str, str]], *, source: Source, by: str = "") -> int:
        """Put each ``(phone, comment)`` on the list in one pipelined round trip per
        :data:`SCAN_COUNT`; how many were new."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        added = 0
        batch = list(numbers)
        with translate_redis_errors(self._redis):
            for start in range(0, len(batch), SCAN_COUNT):
                pipe = self._redis.pipeline(transaction=False)
                for phone, comment in batch[start : start + SCAN_COUNT]:
                    entry = {"at": at, "source": source.value, "by": by, "comment": comment[:200]}
                    pipe.hsetnx(keys.OPTOUT, self.digest(phone), json.dumps(entry))
                added += sum(bool(done) for done in pipe.execute())
            if batch:
                self._barrier.confirm(self._redis)
        return added

    def remove(self, phone: str) -> bool:
        """Take ``phone`` off the list (the person consented again); False when it was not on it."""
        with translate_redis_errors(self._redis):
            removed = bool(self._redis.hdel(keys.OPTOUT, self.digest(phone)))
            self._barrier.confirm(self._redis)
        return removed

    def suppressed(self, phones: Iterable[str]) -> frozenset[str]:
        """Those of ``phones`` on the list (one round trip)."""
        wanted = list(dict.fromkeys(phones))
        if not wanted:
            return frozenset()
        with translate_redis_errors(self._redis):
            found = self._redis.hmget(keys.OPTOUT, [self.digest(p) for p in wanted])
        return frozenset(p for p, hit in zip(wanted, found, strict=True) if hit is not None)

    def get(self, phone: str) -> OptOut | None:
        digest = self.digest(phone)
        with translate_redis_errors(self._redis):
            raw = self._redis.hget(keys.OPTOUT, digest)
        return None if raw is None else _entry(digest, raw)

    def entries(self) -> Iterator[OptOut]:
        """Every entry, in no particular order (``HSCAN``: memory stays flat)."""
        with translate_redis_errors(self._redis):
            for digest, raw in self._redis.hscan_iter(keys.OPTOUT, count=SCAN_COUNT):
                yield _entry(decoded(digest), raw)

    def count(self) -> int:
        with translate_redis_errors(self._redis):
            return int(self._redis.hlen(keys.OPTOUT))


def is_stop_reply(text: str, keywords: Iterable[str] = KEYWORDS) -> bool:
    """Whether a reply opts out: its first word, ignoring case, accents and punctuation, is a
    keyword ("Stop", "STOP.", "arrêt svp" do; "Stopper la pub ?" and "non" do not)."""
    words = _folded(text).split()
    return bool(words) and words[0] in {_folded(k) for k in keywords}


def read_keywords(raw: str) -> tuple[str, ...]:
    """``SMSQ_OPTOUT_KEYWORDS``: comma-separated; empty: :data:`KEYWORDS`."""
    found = tuple(k.strip() for k in raw.split(",") if k.strip())
    return found or KEYWORDS


def _folded(text: str) -> str:
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    )
    return re.sub(r"[^\w\s]", " ", stripped.casefold())


def _entry(digest: str, raw: Any) -> OptOut:
    try:
        data = json.loads(decoded(raw))
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return OptOut(
        digest=digest,
        at=str(data.get("at", "")),
        source=str(data.get("source", "")),
        by=str(data.get("by", "")),
        comment=str(data.get("comment", "")),
    )
