"""Operators' commands against real dead letters made by the sandbox and real workers:
dlq list/show/requeue/resolve/purge, pause/resume, stats, metrics, enqueue progress."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from redis import Redis

from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.crashes import FAST
from tests.helpers.processes import Workers, wait_for
from worker.admin.metrics import render
from worker.sandbox import SandboxProvider
from worker.store.control import Switch


def make_dead_letters(producer: Producer, sandbox: SandboxProvider, workers: Workers) -> None:
    """A rejected (114), an unknown (502) and an expired message, plus a sent one."""
    sandbox.add_fault({"action": "status", "status": 114, "match": {"campaign": "rej"}})
    sandbox.add_fault({"action": "html502", "match": {"campaign": "unk"}})
    producer.enqueue_many(
        [
            {
                "key": "rejected-1",
                "text": "Hi",
                "to": ["0612345678"],
                "campaign": "rej",
                "lane": "bulk",
            },
            {"key": "unknown-1", "text": "Hi", "to": ["0612345678"], "campaign": "unk"},
            {"key": "expired-1", "text": "Hi", "to": ["0612345678"], "valid_for_s": 0.1},
            {"key": "sent-1", "text": "Hi", "to": ["0612345678"]},
        ]
    )
    time.sleep(0.2)
    run = workers.run_burst()
    store = MessageStore(Redis.from_url(workers.redis_url))
    records = {key: store.get(key) for key in ("rejected-1", "unknown-1", "expired-1", "sent-1")}
    states = {key: record.state if record else None for key, record in records.items()}
    assert (run.returncode, states) == (
        0,
        {
            "rejected-1": State.REJECTED,
            "unknown-1": State.UNKNOWN,
            "expired-1": State.EXPIRED,
            "sent-1": State.SENT,
        },
    ), run.log[-4000:]


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_dlq_list_filters(producer: Producer, sandbox: SandboxProvider, workers: Workers) -> None:
    """Filters by status, lane, state, campaign, reason, kind and time narrow the list."""
    make_dead_letters(producer, sandbox, workers)

    def keys(*args: str) -> list[str]:
        result = workers.smsq("dlq", "list", "--json", *args)
        assert result.returncode == 0, result.stderr
        return sorted(row["key"] for row in lines(result.stdout))

    assert keys() == ["expired-1", "rejected-1", "unknown-1"]
    assert keys("--status", "114") == ["rejected-1"]
    assert keys("--lane", "bulk") == ["rejected-1"]
    assert keys("--state", "unknown") == ["unknown-1"]
    assert keys("--campaign", "unk") == ["unknown-1"]
    assert keys("--reason", "VALID_FOR_S") == ["expired-1"]
    assert keys("--kind", "job") == []
    assert keys("--since", "2999-01-01T00:00:00+00:00") == []
    assert keys("--until", "2999-01-01T00:00:00Z") == ["expired-1", "rejected-1", "unknown-1"]
    human = workers.smsq("dlq", "list", "--state", "rejected")
    assert "rejected-1" in human.stdout
    assert "114 no valid number" in human.stdout


def test_requeue_only_what_was_provably_not_sent(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Rejected goes back and is sent; unknown and expired are refused with the reason."""
    make_dead_letters(producer, sandbox, workers)

    dry = workers.smsq("dlq", "requeue", "rejected-1", "--dry-run", "--json")
    assert lines(dry.stdout) == [
        {
            "ref": "rejected-1",
            "action": "requeued",
            "dry_run": True,
            "detail": "would go back to lane bulk",
        }
    ]
    assert store.get("rejected-1").state is State.REJECTED  # type: ignore[union-attr]

    refused = workers.smsq("dlq", "requeue", "unknown-1", "expired-1", "--json")
    assert refused.returncode == 1
    assert [(d["ref"], d["action"]) for d in lines(refused.stdout)] == [
        ("unknown-1", "refused"),
        ("expired-1", "refused"),
    ]
    assert lines(refused.stdout)[0]["detail"].startswith("may have been sent: find out")

    done = workers.smsq("dlq", "requeue", "rejected-1", "--by", "alice", "--json")
    assert done.returncode == 0
    record = store.get("rejected-1")
    assert record is not None
    assert record.state is State.QUEUED
    assert record.history[-1] == {
        **record.history[-1],
        "state": "queued",
        "by": "alice",
        "from": "rejected",
    }
    workers.run_burst()
    assert store.get("rejected-1").state is State.SENT  # type: ignore[union-attr]
    assert sorted(d.key or "" for d in store.dead_letters()) == ["expired-1", "unknown-1"]


def test_resolve_records_the_decision_then_requeue_sends_once(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """resolve --not-sent makes an unknown message requeueable; who, when and why are kept."""
    make_dead_letters(producer, sandbox, workers)
    requests_before = len(sandbox.requests())

    resolved = workers.smsq(
        "dlq",
        "resolve",
        "unknown-1",
        "--not-sent",
        "--by",
        "bob",
        "--why",
        "absent from getAcks for campaign",
        "--json",
    )
    requeued = workers.smsq("dlq", "requeue", "unknown-1", "--json")
    workers.run_burst()

    assert lines(resolved.stdout)[0]["action"] == "resolved"
    assert lines(requeued.stdout)[0]["action"] == "requeued"
    record = store.get("unknown-1")
    assert record is not None
    assert record.state is State.SENT
    decision = next(h for h in record.history if h.get("by") == "bob")
    assert decision["state"] == "failed"
    assert decision["reason"] == (
        "resolved by operator: not sent according to bob: absent from getAcks for campaign"
    )
    assert len(sandbox.requests()) == requests_before + 1


def test_resolve_sent_closes_the_dead_letter(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """resolve --sent turns unknown into sent and removes it from the dead letters."""
    make_dead_letters(producer, sandbox, workers)

    result = workers.smsq("dlq", "resolve", "unknown-1", "--sent", "--why", "receipt seen")
    again = workers.smsq("dlq", "resolve", "rejected-1", "--sent", "--why", "x")

    assert result.returncode == 0
    assert store.get("unknown-1").state is State.SENT  # type: ignore[union-attr]
    assert "unknown-1" not in [d.key for d in store.dead_letters()]
    assert again.returncode == 1
    assert "only unknown messages are resolved; this one is rejected" in again.stdout


def test_resolve_settles_a_campaigns_unknowns_with_the_list_filters(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """One command for a campaign's unknowns (dry run first); other unknowns and other states
    stay; a --state other than unknown is a usage error."""
    for campaign in ("spring", "autumn"):
        sandbox.add_fault({"action": "html502", "times": 3, "match": {"campaign": campaign}})
    producer.enqueue_many(
        [
            {"key": f"camp-{i}", "text": "Hi", "to": ["0612345678"], "campaign": "spring"}
            for i in range(3)
        ]
        + [{"key": "other", "text": "Hi", "to": ["0612345678"], "campaign": "autumn"}]
    )
    assert workers.run_burst().returncode == 0
    why = ("--not-sent", "--why", "absent from the customer area", "--by", "carol")

    dry = workers.smsq("dlq", "resolve", "--campaign", "spring", *why, "--dry-run")
    assert {store.get(f"camp-{i}").state for i in range(3)} == {State.UNKNOWN}  # type: ignore[union-attr]
    done = workers.smsq("dlq", "resolve", "--campaign", "spring", *why)
    none = workers.smsq("dlq", "resolve", "--campaign", "winter", *why)
    wrong = workers.smsq("dlq", "resolve", "--state", "rejected", *why)

    detail = "not sent according to carol: absent from the customer area"
    assert (dry.returncode, sorted(dry.stdout.splitlines())) == (
        0,
        [f"camp-{i}: resolved (dry run) - would become failed: {detail}" for i in range(3)],
    )
    assert (done.returncode, sorted(done.stdout.splitlines())) == (
        0,
        [f"camp-{i}: resolved - now failed: {detail}" for i in range(3)],
    )
    assert [store.get(f"camp-{i}").state for i in range(3)] == [State.FAILED] * 3  # type: ignore[union-attr]
    assert store.get("other").state is State.UNKNOWN  # type: ignore[union-attr]
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "nothing matches\n")
    assert (wrong.returncode, wrong.stderr) == (
        2,
        "smsq: configuration error: --state: resolve settles unknown messages only\n",
    )


def test_dlq_show_and_purge(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """show prints the dead letter and its message; purge forgets it (dry run first)."""
    make_dead_letters(producer, sandbox, workers)

    shown = json.loads(workers.smsq("dlq", "show", "rejected-1", "--json").stdout)
    dry = workers.smsq("dlq", "purge", "--state", "expired", "--dry-run", "--json")
    assert len(store.dead_letters()) == 3
    purged = workers.smsq("dlq", "purge", "--state", "expired", "--json")

    assert shown["dead_letter"]["provider_status"] == 114
    assert shown["message"]["state"] == "rejected"
    assert [(d["ref"], d["action"], d["dry_run"]) for d in lines(dry.stdout)] == [
        ("expired-1", "purged", True)
    ]
    assert [(d["ref"], d["action"]) for d in lines(purged.stdout)] == [("expired-1", "purged")]
    assert sorted(d.key or "" for d in store.dead_letters()) == ["rejected-1", "unknown-1"]
    assert store.get("expired-1") is not None


def test_pause_stops_every_worker_within_a_second_and_resume_restarts(
    producer: Producer,
    store: MessageStore,
    redis: Redis,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """A running worker sends nothing while paused; nothing is lost; resume sends it all."""
    workers.start(**FAST)
    workers.start(**FAST)
    paused = workers.smsq("pause", "--reason", "provider incident", "--by", "ops")
    assert paused.stdout == "paused all lanes: provider incident (by ops)\n"
    producer.enqueue_many([{"key": f"p{i}", "text": "Hi", "to": ["0612345678"]} for i in range(5)])

    time.sleep(1.5)
    assert sandbox.requests() == []
    assert [p.reason for p in Switch(redis).paused()] == ["provider incident"]

    resumed_at = time.monotonic()
    workers.smsq("resume")
    wait_for(lambda: len(sandbox.requests()) == 5, what="the five sends")
    assert time.monotonic() - resumed_at < 3
    # The sandbox logs a request before its answer reaches the worker, which
    # records the outcome a moment later: wait for the records, not a fixed time.
    wait_for(
        lambda: all(
            store.get(f"p{i}").state is not State.SENDING  # type: ignore[union-attr]
            for i in range(5)
        ),
        what="the five outcomes",
    )
    assert {store.get(f"p{i}").state for i in range(5)} == {State.SENT}  # type: ignore[union-attr]
    assert len(sandbox.requests()) == 5


def test_pausing_one_lane_leaves_the_others_running(
    producer: Producer, redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    """smsq pause bulk: urgent and default still go out, bulk waits."""
    workers.smsq("pause", "bulk")
    producer.enqueue_many(
        [
            {"key": "b", "text": "bulk", "to": ["0612345678"], "lane": "bulk"},
            {"key": "d", "text": "default", "to": ["0612345678"]},
        ]
    )

    workers.run_burst()

    assert [r["data"]["MESSAGE"] for r in sandbox.requests()] == ["default"]
    assert redis.llen("rq:queue:smsq-bulk") == 1
    assert json.loads(workers.smsq("resume", "bulk", "--json").stdout) == {"resumed": ["bulk"]}


def test_stats_and_metrics_report_what_happened(
    producer: Producer, redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    """stats --json and /metrics count states, statuses, latency and queue depth."""
    make_dead_letters(producer, sandbox, workers)
    producer.enqueue({"key": "waiting", "text": "Hi", "to": ["0612345678"], "lane": "urgent"})
    workers.smsq("pause", "urgent")

    stats = json.loads(workers.smsq("stats", "--json").stdout)
    metrics = render(redis).decode()

    urgent = next(lane for lane in stats["lanes"] if lane["lane"] == "urgent")
    assert urgent["depth"] == 1
    assert urgent["paused"] == "paused by an operator"
    assert 0 <= urgent["oldest_age_s"] < 30
    assert stats["dead_letters"] == 3
    assert stats["states_reached"] == {
        "sending": 3,
        "sent": 1,
        "rejected": 1,
        "unknown": 1,
        "expired": 1,
    }
    assert stats["provider_statuses"] == {"100:default": 1, "114:bulk": 1}
    assert stats["provider_latency"]["count"] == 3
    assert 'smsq_queue_depth{lane="urgent"} 1.0' in metrics
    assert 'smsq_lane_paused{lane="urgent"} 1.0' in metrics
    assert 'smsq_sends_total{lane="bulk",provider_status="114"} 1.0' in metrics
    assert 'smsq_messages_total{state="unknown"} 1.0' in metrics
    assert "smsq_provider_latency_seconds_count 3.0" in metrics
    assert "smsq_dead_letters 3.0" in metrics
    human = workers.smsq("stats").stdout
    assert "urgent       1" in human


def test_enqueue_file_prints_a_summary_line_when_not_on_a_terminal(
    workers: Workers, tmp_path: Path
) -> None:
    """A campaign file gets one JSON line per request and a summary on stderr."""
    path = tmp_path / "campaign.jsonl"
    rows = [
        {"key": f"c{i}", "text": "Hi", "to": ["0612345678"], "lane": "bulk"} for i in range(2500)
    ]
    rows.append(rows[0])
    rows.append({"key": "bad", "text": "", "to": ["0612345678"]})
    path.write_text("\n".join(json.dumps(r) for r in rows))

    result = workers.smsq("enqueue", "--file", str(path))

    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 2502
    assert result.stderr.startswith(
        "smsq enqueue: 2502 request(s): 2500 accepted, 1 duplicate(s), 1 refused in "
    )
