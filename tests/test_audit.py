"""The audit stream of operator actions: every dead-letter decision, pause and resume (by
operators, on the web and by workers) appends exactly one entry; ``smsq audit`` prints them
newest first, as text or JSON; retention trims old entries; the admin page ``/audit`` shows them
behind the login."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.errors import ConfigError
from producers.states import State
from producers.store import MessageStore
from tests.helpers.admin import PASSWORD, USER, admin_settings, make_dead_letters
from tests.helpers.processes import Workers
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider
from worker.settings import Settings, read_audit_ttl_s
from worker.store.audit import ERASURE, PAUSE, AuditEntry, AuditLog
from worker.store.control import Switch


def entries(workers: Workers, *args: str) -> list[dict[str, Any]]:
    result = workers.smsq("audit", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def without_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in ("id", "at")} for row in rows]


def entry(action: str, actor: str, targets: list[str], why: str = "") -> dict[str, Any]:
    return {
        "action": action,
        "actor": actor,
        "why": why,
        "count": len(targets),
        "targets": targets,
        "counts": {},
        "erasure_id": "",
    }


def test_each_operator_action_appends_exactly_one_entry(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """Requeue, resolve, purge, pause, resume: one entry each, with who, why, how many and
    which keys; a dry run, a refusal and a resume of nothing record nothing."""
    make_dead_letters(producer, sandbox, workers)
    assert redis.exists(keys.AUDIT) == 0

    steps = [
        ("dlq", "requeue", "rejected-1", "--dry-run", "--by", "alice"),
        ("dlq", "requeue", "rejected-1", "expired-1", "--by", "alice", "--why", "114 fixed"),
        ("dlq", "requeue", "sent-1", "--by", "alice"),
        ("dlq", "resolve", "unknown-1", "--not-sent", "--why", "not in their log", "--by", "bob"),
        ("dlq", "purge", "expired-1", "--by", "carol"),
        ("pause", "bulk", "--reason", "provider incident", "--by", "dave"),
        ("resume", "--by", "erin", "--why", "incident over"),
        ("resume", "--by", "erin"),
    ]
    codes = [workers.smsq(*step).returncode for step in steps]

    assert codes == [0, 1, 1, 0, 0, 0, 0, 0]
    assert store.get("rejected-1").state is State.QUEUED  # type: ignore[union-attr]
    assert without_time(entries(workers)) == [
        entry("resume", "erin", ["bulk"], "incident over"),
        entry("pause", "dave", ["bulk"], "provider incident"),
        entry("dlq.purge", "carol", ["expired-1"]),
        entry("dlq.resolve", "bob", ["unknown-1"], "not sent: not in their log"),
        entry("dlq.requeue", "alice", ["rejected-1"], "114 fixed"),
    ]
    stored: Any = redis.xrange(keys.AUDIT)
    assert b"612345678" not in b"".join(v for _, fields in stored for v in fields.values())


def test_bulk_actions_are_one_entry_with_a_count(
    redis: Redis, producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A requeue of every dead letter a filter matches is one decision: one entry."""
    sandbox.add_fault({"action": "status", "status": 114, "times": 3, "match": {"campaign": "rej"}})
    producer.enqueue_many(
        [{"key": f"r{i}", "text": "Hi", "to": ["0612345678"], "campaign": "rej"} for i in range(3)]
    )
    workers.run_burst()
    sandbox.clear_faults()
    assert workers.smsq("dlq", "requeue", "--campaign", "rej", "--by", "ops").returncode == 0
    [row] = without_time(entries(workers))
    assert {**row, "targets": sorted(row["targets"])} == entry(
        "dlq.requeue", "ops", ["r0", "r1", "r2"]
    )


def test_a_workers_own_pause_is_recorded_with_its_name(
    redis: Redis, producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """103 (no credit): the worker pauses every lane; the entry names it, ``worker <name>``."""
    sandbox.add_fault({"action": "status", "status": 103})
    producer.enqueue({"key": "k", "text": "Hi", "to": ["0612345678"]})
    assert workers.run_burst(SMSQ_SEND_SLOTS="1").returncode == 0
    [paused] = Switch(redis).paused()
    [row] = entries(workers)
    assert paused.by.startswith("worker ")
    assert without_time([row]) == [entry("pause", paused.by, ["*"], paused.reason)]


def test_smsq_audit_prints_text_and_json_newest_first_with_filters(
    redis: Redis, workers: Workers
) -> None:
    log = AuditLog(redis, ttl_s=3600)
    first = log.record(
        AuditEntry(action=PAUSE, actor="ops@host", why="night", count=1, targets=("*",))
    )
    time.sleep(0.01)
    erased = log.record(
        AuditEntry(
            action=ERASURE,
            actor="dpo\x1b[2J",
            count=3,
            counts={"messages_deleted": 1, "callback_events_deleted": 2},
            erasure_id="e" * 32,
        )
    )
    time.sleep(0.01)
    many = log.record(
        AuditEntry(
            action="dlq.purge",
            actor="ops@host",
            count=102,
            targets=tuple(f"k{i}" for i in range(102)),
        )
    )

    text = workers.smsq("audit")
    assert (text.returncode, text.stderr) == (0, "")
    assert text.stdout.splitlines() == [
        f"{many.at}  dlq.purge  by ops@host  102: "
        + ", ".join(f"k{i}" for i in range(100))
        + " and 2 more",
        f"{erased.at}  erasure  by dpo\\x1b[2J  3: callback_events_deleted 2, messages_deleted 1"
        f"  erasure {'e' * 32}",
        f"{first.at}  pause  by ops@host  1: *  why: night",
    ]
    assert entries(workers) == [e.as_dict() for e in (many, erased, first)]
    assert entries(workers, "--action", "pause") == [first.as_dict()]
    assert entries(workers, "--limit", "1") == [many.as_dict()]
    assert entries(workers, "--since", erased.at) == [many.as_dict(), erased.as_dict()]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first.at)
    assert abs(datetime.fromisoformat(first.at) - datetime.now(UTC)).total_seconds() < 5


def test_smsq_audit_refuses_bad_options_with_the_reason(workers: Workers) -> None:
    for args, message in (
        (("--since", "2026-12-01"), "argument --since: needs a UTC offset"),
        (("--limit", "0"), "argument --limit: must be a whole number, at least 1"),
        (("--action", "nope"), "argument --action: invalid choice: 'nope'"),
    ):
        result = workers.smsq("audit", *args)
        assert result.returncode == 2
        assert message in result.stderr.splitlines()[-1]
    empty = workers.smsq("audit")
    assert (empty.returncode, empty.stdout) == (0, "no operator action recorded\n")


def test_retention_trims_old_entries_and_the_stream_expires(redis: Redis) -> None:
    log = AuditLog(redis, ttl_s=1)
    log.record(AuditEntry(action=PAUSE, actor="a", count=1, targets=("*",)))
    time.sleep(1.05)
    newest = log.record(AuditEntry(action=PAUSE, actor="b", count=1, targets=("*",)))
    assert [e.actor for e in log.entries()] == ["b"]
    assert redis.xlen(keys.AUDIT) == 1
    assert redis.ttl(keys.AUDIT) == 1
    assert newest.entry_id
    time.sleep(1.05)
    assert redis.exists(keys.AUDIT) == 0


def test_the_audit_retention_setting() -> None:
    assert read_audit_ttl_s({}) == 400 * 24 * 3600
    assert read_audit_ttl_s({"SMSQ_AUDIT_TTL_S": "86400"}) == 86400
    assert Settings.from_env({"SMSQ_AUDIT_TTL_S": "600"}).audit_ttl_s == 600
    for raw, reason in (("30", "must be at least 60"), ("a year", "must be a whole number")):
        with pytest.raises(ConfigError) as caught:
            read_audit_ttl_s({"SMSQ_AUDIT_TTL_S": raw})
        assert str(caught.value) == f"SMSQ_AUDIT_TTL_S: {reason}"


@pytest.fixture
def admin(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url:
        yield base_url


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def audit_rows(html: str) -> list[list[str]]:
    """The cells of the audit table, tags dropped and spaces collapsed (entities kept)."""
    body = html.split('<table id="audit">', 1)[1].split("</table>", 1)[0]
    return [
        [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split())
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>\s*<td.*?</tr>", body, re.S)
    ]


def test_admin_audit_page_needs_login_and_shows_web_actions(admin: str, redis: Redis) -> None:
    """Pause and resume on the web are recorded as ``web:<user>``; /audit lists them."""
    with httpx.Client(base_url=admin, timeout=10) as client:
        anonymous = client.get("/audit")
        assert (anonymous.status_code, anonymous.headers["location"]) == (
            303,
            "/login?next=%2Faudit",
        )
        token = csrf_of(client.get("/login").text)
        client.post("/login", data={"csrf": token, "user": USER, "password": PASSWORD})
        empty = client.get("/audit")
        assert (empty.status_code, 'id="none"' in empty.text) == (200, True)
        assert '<a href="/audit">Audit</a>' in empty.text
        token = csrf_of(empty.text)
        for path, form in (
            ("/pause", {"lane": "urgent", "reason": "checking <b>", "confirm": "1"}),
            ("/resume", {"lane": "all", "confirm": "1"}),
        ):
            assert client.post(path, data={**form, "csrf": token}).status_code == 200
        AuditLog(redis, ttl_s=3600).record(
            AuditEntry(
                action=ERASURE,
                actor="dpo",
                count=1,
                counts={"messages_deleted": 1},
                erasure_id="x1",
            )
        )
        page = client.get("/audit")
        only = client.get("/audit?action=pause")
        bad = client.get("/audit?action=nope")

    rows = audit_rows(page.text)
    assert [row[1:] for row in rows] == [
        ["erasure", "dpo", "1", "messages_deleted 1 erasure x1", ""],
        ["resume", f"web:{USER}", "1", "urgent", ""],
        ["pause", f"web:{USER}", "1", "urgent", "checking &lt;b&gt;"],
    ]
    assert [row[1] for row in audit_rows(only.text)] == ["pause"]
    assert bad.status_code == 400
    assert (
        "Filter action: must be one of dlq.requeue, dlq.resolve, dlq.purge, pause, resume, "
        "erasure, cancel, callbacks.requeue" in bad.text
    )


def test_web_decisions_on_dead_letters_are_recorded_once_each(
    admin: str, redis: Redis, producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """The page's requeue, resolve and purge go through the same desk as the CLI: one entry
    each."""
    make_dead_letters(producer, sandbox, workers)
    with httpx.Client(base_url=admin, timeout=10) as client:
        token = csrf_of(client.get("/login").text)
        client.post("/login", data={"csrf": token, "user": USER, "password": PASSWORD})
        token = csrf_of(client.get("/").text)
        asked = client.post("/messages/rejected-1/requeue", data={"csrf": token})
        done = client.post("/messages/rejected-1/requeue", data={"csrf": token, "confirm": "1"})
        resolved = client.post(
            "/messages/unknown-1/resolve",
            data={"csrf": token, "confirm": "1", "outcome": "sent", "why": "in getAcks"},
        )
        purged = client.post("/messages/expired-1/purge", data={"csrf": token, "confirm": "1"})
    assert [r.status_code for r in (asked, done, resolved, purged)] == [200, 200, 200, 200]
    assert without_time(entries(workers)) == [
        entry("dlq.purge", f"web:{USER}", ["expired-1"]),
        entry("dlq.resolve", f"web:{USER}", ["unknown-1"], "sent: in getAcks"),
        entry("dlq.requeue", f"web:{USER}", ["rejected-1"]),
    ]


def test_requeue_of_a_split_parent_records_the_parts_it_requeued(
    redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    sandbox.add_fault({"action": "status", "status": 114, "match": {"phone": "33612300004"}})
    Producer(redis, ProducerSettings(chunk_recipients=4)).enqueue(
        {"key": "big", "text": "Hi", "to": [f"06123{n:05d}" for n in range(10)]}
    )
    assert workers.run_burst().returncode == 0
    assert workers.smsq("dlq", "requeue", "big", "--by", "dora").returncode == 0
    assert without_time(entries(workers)) == [entry("dlq.requeue", "dora", ["big#2/3"])]
