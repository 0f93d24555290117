"""``smsq dlq show`` opens every dead letter by what ``smsq dlq list`` shows for it, through the
real CLI: a refused intake entry by its dead-letter id or by the key it named, with its reason
and its payload (the start that was kept, escaped for the terminal); a refused job by its id.
A split message is requeued whole (its rejected parts) and resolved part by part."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from tests.helpers.processes import ROOT
from worker.dev.redis_server import RedisServer
from worker.send.intake import Intake
from worker.store.ledger import Ledger
from worker.store.refused import refuse_job


EMPTY_TEXT = json.dumps({"key": "bad-1", "text": "", "to": ["0612345678"]})
HOSTILE = "\x1b]0;pwn\x07 not json\u202e"
HUGE = json.dumps({"key": "huge", "text": "x" * 9000, "to": ["0612345678"]})
MAX_BYTES = 4096
HUGE_TAKEN = f"smsq-oversize:{len(HUGE)}:{HUGE[:500]}"
"""What the intake takes of an entry over its size limit: a marker, the size and the start."""


def dead_id(raw: str) -> str:
    return "intake-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def smsq(redis_server: RedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REDIS_URL": redis_server.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def refuse(redis: Redis, *entries: str) -> None:
    """Push ``entries`` on the intake and let a worker's intake step refuse them."""
    redis.rpush(keys.INTAKE, *entries)
    intake = Intake(
        redis, Producer(redis, ProducerSettings()), ttl_s=3600, worker_name="w", max_bytes=MAX_BYTES
    )
    assert intake.drain() == len(entries)


def test_every_intake_dead_letter_opens_by_what_the_list_shows(
    redis_server: RedisServer, redis: Redis
) -> None:
    refuse(redis, EMPTY_TEXT, HOSTILE, HUGE)

    listing = smsq(redis_server, "dlq", "list")
    refs = [line.split()[3] for line in listing.stdout.splitlines()[1:]]
    shown = {ref: smsq(redis_server, "dlq", "show", ref) for ref in refs}

    assert (listing.returncode, listing.stderr) == (0, "")
    assert listing.stdout.splitlines()[0].split() == [
        "AT", "KIND", "STATE", "STATUS", "LANE", "KEY", "/", "ID", "REASON",
    ]  # fmt: skip
    assert sorted(refs) == sorted(dead_id(raw) for raw in (EMPTY_TEXT, HOSTILE, HUGE_TAKEN))
    answers = {ref: (done.returncode, done.stderr) for ref, done in shown.items()}
    assert answers == dict.fromkeys(refs, (0, ""))
    at = {ref: done.stdout.splitlines()[3] for ref, done in shown.items()}
    assert shown[dead_id(EMPTY_TEXT)].stdout == (
        f"dead letter: {dead_id(EMPTY_TEXT)}\n"
        "kind:        intake\n"
        "state:       refused\n"
        f"{at[dead_id(EMPTY_TEXT)]}\n"
        "key:         bad-1\n"
        "reason:      text: must not be empty\n"
        "payload:     50 bytes, as received (escaped):\n"
        '  {"key": "bad-1", "text": "", "to": ["0612345678"]}\n'
    )
    assert shown[dead_id(HOSTILE)].stdout == (
        f"dead letter: {dead_id(HOSTILE)}\n"
        "kind:        intake\n"
        "state:       refused\n"
        f"{at[dead_id(HOSTILE)]}\n"
        "reason:      not valid JSON\n"
        "payload:     20 bytes, as received (escaped):\n"
        "  \\x1b]0;pwn\\x07 not json\\u202e\n"
    )
    assert shown[dead_id(HUGE_TAKEN)].stdout == (
        f"dead letter: {dead_id(HUGE_TAKEN)}\n"
        "kind:        intake\n"
        "state:       refused\n"
        f"{at[dead_id(HUGE_TAKEN)]}\n"
        f"reason:      entry is 9049 bytes; the intake reads at most {MAX_BYTES} "
        "(SMSQ_INTAKE_MAX_BYTES)\n"
        "payload:     its first 500 characters of 9,049 bytes, as received (escaped):\n"
        f"  {HUGE[:500]}\n"
    )
    assert all(line.startswith("at:          2") for line in at.values())


def test_an_intake_dead_letter_opens_by_the_key_it_named_as_text_and_json(
    redis_server: RedisServer, redis: Redis
) -> None:
    refuse(redis, EMPTY_TEXT)

    text = smsq(redis_server, "dlq", "show", "bad-1")
    by_id = smsq(redis_server, "dlq", "show", dead_id(EMPTY_TEXT))
    as_json = smsq(redis_server, "dlq", "show", "bad-1", "--json")
    missing = smsq(redis_server, "dlq", "show", "bad-2")

    assert (text.returncode, text.stdout) == (0, by_id.stdout)
    assert as_json.returncode == 0
    shown = json.loads(as_json.stdout)
    assert shown["message"] is None
    assert {k: v for k, v in shown["dead_letter"].items() if k != "at"} == {
        "dead_id": dead_id(EMPTY_TEXT),
        "kind": "intake",
        "state": "refused",
        "reason": "text: must not be empty",
        "key": "bad-1",
        "message_id": None,
        "lane": None,
        "provider_status": None,
        "job_id": None,
        "detail": EMPTY_TEXT,
        "size_bytes": 50,
    }
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1,
        "",
        "smsq: nothing found for 'bad-2'\n",
    )


def test_a_message_under_the_same_key_wins_over_the_refused_entry(
    redis_server: RedisServer, redis: Redis, producer: Producer
) -> None:
    """The entry was never accepted: a message enqueued since under its key is what the key
    opens; the refused entry still opens by its dead-letter id."""
    refuse(redis, EMPTY_TEXT)
    producer.enqueue({"key": "bad-1", "text": "Hi", "to": ["0612345678"]})

    by_key = smsq(redis_server, "dlq", "show", "bad-1")
    by_id = smsq(redis_server, "dlq", "show", dead_id(EMPTY_TEXT))

    assert by_key.stdout.splitlines()[:2] == ["key:        bad-1", "state:      queued"]
    assert by_id.stdout.splitlines()[0] == f"dead letter: {dead_id(EMPTY_TEXT)}"


def test_a_refused_job_opens_by_the_id_the_list_shows(
    redis_server: RedisServer, redis: Redis
) -> None:
    refuse_job(redis, "foreign/job id", "names another callable", ttl_s=3600, lane="default")

    listing = smsq(redis_server, "dlq", "list")
    shown = smsq(redis_server, "dlq", "show", "job-foreign/job id")

    [row] = listing.stdout.splitlines()[1:]
    assert row.split("  ")[-2:] == ["job-foreign/job id", "names another callable"]
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[:3] == [
        "dead letter: job-foreign/job id",
        "kind:        job",
        "state:       refused",
    ]
    assert shown.stdout.splitlines()[4:] == [
        "job:         foreign/job id",
        "lane:        default",
        "reason:      names another callable",
    ]


def test_a_split_message_is_requeued_whole_and_resolved_part_by_part(
    redis_server: RedisServer, redis: Redis
) -> None:
    """Requeueing the parent requeues its rejected parts; resolving it is refused with the
    reason (its parts are resolved one by one), not "state changed meanwhile"."""
    producer = Producer(redis, ProducerSettings(chunk_recipients=2))
    producer.enqueue({"key": "big", "text": "Hi", "to": ["0612345678", "0612345679", "0612345670"]})
    ledger = Ledger(redis, ttl_s=3600, worker_name="w-test")
    for name in ("big#1/2", "big#2/2"):
        assert ledger.claim(keys.message_id(name)).outcome == "claimed"
        assert ledger.finish(
            keys.message_id(name),
            State.REJECTED,
            {"provider_status": "114"},
            expected=State.SENDING,
            reason="114 no valid number",
            actor="w-test",
            record={"key": name, "lane": "default", "job_id": ""},
        )

    resolve = smsq(redis_server, "dlq", "resolve", "big", "--sent", "--why", "x")
    dry = smsq(redis_server, "dlq", "requeue", "big", "--dry-run")
    real = smsq(redis_server, "dlq", "requeue", "big")
    again = smsq(redis_server, "dlq", "requeue", "big")

    assert (resolve.returncode, resolve.stdout) == (
        1,
        "big: refused - is split into 2 parts, each resolved on its own (big#1/2 to big#2/2)\n",
    )
    assert (dry.returncode, dry.stdout) == (
        0,
        "big: requeued (dry run) - would requeue 2 of 2 parts: big#1/2, big#2/2\n",
    )
    assert (real.returncode, real.stdout) == (
        0,
        "big: requeued - requeued 2 of 2 parts: big#1/2, big#2/2\n",
    )
    assert (again.returncode, again.stdout) == (
        1,
        "big: refused - none of its 2 parts can be requeued: big#1/2 (queued), big#2/2 (queued)\n",
    )


def test_intake_dead_letters_are_purged_by_kind_and_named_by_their_ids(
    redis_server: RedisServer, redis: Redis
) -> None:
    refuse(redis, EMPTY_TEXT, HOSTILE)

    purged = smsq(redis_server, "dlq", "purge", "--kind", "intake")
    after = smsq(redis_server, "dlq", "list")

    assert purged.returncode == 0
    assert sorted(purged.stdout.splitlines()) == sorted(
        f"{dead_id(raw)}: purged - intake dead letter removed" for raw in (EMPTY_TEXT, HOSTILE)
    )
    assert after.stdout == "no dead letters\n"


def test_purge_by_kind_reaches_an_intake_letter_whose_key_a_message_took_since(
    redis_server: RedisServer, redis: Redis, producer: Producer
) -> None:
    """Filters name each dead letter by what opens it (its id), not by a key a message may
    have taken since."""
    refuse(redis, EMPTY_TEXT)
    producer.enqueue({"key": "bad-1", "text": "Hi", "to": ["0612345678"]})

    purged = smsq(redis_server, "dlq", "purge", "--kind", "intake")

    assert (purged.returncode, purged.stdout) == (
        0,
        f"{dead_id(EMPTY_TEXT)}: purged - intake dead letter removed\n",
    )
    assert smsq(redis_server, "dlq", "list").stdout == "no dead letters\n"
