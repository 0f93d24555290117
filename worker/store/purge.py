"""``smsq purge --phone NUMBER``: erase one person's data everywhere smsq keeps it (GDPR Art. 17).

A message sent only to that person is deleted with its history, dead letter and RQ job; in a
message to several people, that person's entry (number and params) is removed and the rest kept.
Intake entries and intake dead letters that mention the number are deleted. Logs never hold full
numbers, and the sandbox keeps nothing in Redis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from producers import keys
from producers.errors import PhoneError
from producers.phones import normalise_phone
from producers.store import decoded, decoded_hash


if TYPE_CHECKING:
    from redis import Redis

SCAN_COUNT = 1000


@dataclass
class PurgeReport:
    deleted_messages: list[str] = field(default_factory=list)
    redacted_messages: list[str] = field(default_factory=list)
    deleted_dead_letters: list[str] = field(default_factory=list)
    deleted_intake_entries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted_messages": self.deleted_messages,
            "redacted_messages": self.redacted_messages,
            "deleted_dead_letters": self.deleted_dead_letters,
            "deleted_intake_entries": self.deleted_intake_entries,
        }


class Purger:
    def __init__(self, connection: Redis, *, default_region: str) -> None:
        self._redis = connection
        self._region = default_region

    def purge(self, phone: str, *, dry_run: bool = False) -> PurgeReport:
        """Erase every trace of ``phone`` (any format smsq accepts).

        Raises:
            PhoneError: ``phone`` is not a number smsq could ever have stored.
        """
        target = normalise_phone(phone, self._region)
        report = PurgeReport()
        for raw_key in self._redis.scan_iter(match=keys.message("*"), count=SCAN_COUNT):
            key = decoded(raw_key)
            if key.endswith(":history"):
                continue
            self._purge_message(key, target, report, dry_run)
        for raw_key in self._redis.scan_iter(match=keys.dead_letter("intake-*"), count=SCAN_COUNT):
            detail = self._redis.hget(raw_key, "detail")
            if detail is not None and self._mentions(decoded(detail), target):
                dead_id = decoded(raw_key).rsplit(":", 1)[1]
                report.deleted_dead_letters.append(dead_id)
                if not dry_run:
                    self._redis.delete(raw_key)
                    self._redis.zrem(keys.DEAD_LETTERS, dead_id)
        held = self._redis.scan_iter(match=keys.intake_processing("*"), count=SCAN_COUNT)
        lists = [keys.INTAKE, keys.INTAKE_PROCESSING, keys.INTAKE_POISON, *map(decoded, held)]
        for list_key in lists:
            for entry in self._redis.lrange(list_key, 0, -1):
                if self._mentions(decoded(entry), target):
                    report.deleted_intake_entries += 1
                    if not dry_run:
                        self._redis.lrem(list_key, 1, entry)  # type: ignore[arg-type]
        return report

    def _purge_message(self, key: str, target: str, report: PurgeReport, dry_run: bool) -> None:
        raw = decoded_hash(self._redis.hgetall(key))
        if "request" not in raw:
            return
        request = json.loads(raw["request"])
        phones = [r["phone"] for r in request["to"]]
        refused = json.loads(raw.get("refused_numbers") or "[]")
        refused_hit = [r for r in refused if self._same(r["phone"], target)]
        if target not in phones and not refused_hit:
            return
        mid = raw["message_id"]
        label = raw.get("key", mid)
        if all(p == target for p in phones):
            report.deleted_messages.append(label)
            if not dry_run:
                self._delete_message(mid, raw)
            return
        report.redacted_messages.append(label)
        if dry_run:
            return
        request["to"] = [r for r in request["to"] if r["phone"] != target]
        all_sms_ids: dict[str, str] = json.loads(raw.get("sms_ids") or "{}")
        sms_ids = {p: i for p, i in all_sms_ids.items() if p != target}
        if target in all_sms_ids:
            self._forget_sms_id(mid, all_sms_ids[target])
        invalid = [p for p in json.loads(raw.get("invalid_numbers") or "[]") if p != target]
        self._redis.hset(
            key,
            mapping={
                "request": json.dumps(request, ensure_ascii=False),
                "recipients": str(len(request["to"])),
                "sms_ids": json.dumps(sms_ids),
                "invalid_numbers": json.dumps(invalid),
                "refused_numbers": json.dumps(
                    [r for r in refused if r not in refused_hit], ensure_ascii=False
                ),
            },
        )

    def _forget_sms_id(self, mid: str, sms_id: str) -> None:
        """Drop one recipient's receipt, replies (their text) and smsId index entry."""
        replies = self._redis.hgetall(keys.replies(mid))
        theirs = [
            field for field, value in replies.items() if json.loads(value).get("sms_id") == sms_id
        ]
        pipe = self._redis.pipeline()
        pipe.hdel(keys.receipts(mid), sms_id)
        pipe.delete(keys.sms_id(sms_id))
        if theirs:
            pipe.hdel(keys.replies(mid), *theirs)
        pipe.execute()

    def _delete_message(self, mid: str, raw: dict[str, str]) -> None:
        jid = keys.job_id(mid)
        pipe = self._redis.pipeline()
        for sms_id in json.loads(raw.get("sms_ids") or "{}").values():
            pipe.delete(keys.sms_id(sms_id))
        pipe.delete(
            keys.message(mid),
            keys.history(mid),
            keys.dead_letter(mid),
            keys.rq_job(jid),
            f"rq:results:{jid}",
            keys.receipts(mid),
            keys.replies(mid),
        )
        pipe.zrem(keys.DEAD_LETTERS, mid)
        pipe.zrem(keys.SENDING, mid)
        queue = f"smsq-{raw.get('lane', 'default')}"
        pipe.lrem(keys.rq_queue(queue), 0, jid)
        pipe.zrem(f"rq:failed:{queue}", jid)
        pipe.execute()

    def _same(self, raw_phone: str, target: str) -> bool:
        try:
            return normalise_phone(raw_phone, self._region) == target
        except PhoneError:
            return "".join(c for c in raw_phone if c.isdigit()).endswith(target[-9:])

    @staticmethod
    def _mentions(text: str, target: str) -> bool:
        """Raw text (an intake entry) holding the number in any spacing or prefix form: its
        last nine digits appear once separators are dropped. Erring towards erasure is fine."""
        return target[-9:] in "".join(c for c in text if c.isdigit())
