"""``smsq dlq requeue PARENT`` of a split message requeues exactly the parts AllMySMS provably
did not send (dry run lists them), and says which parts it left and why."""

from __future__ import annotations

from redis import Redis

from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import Workers
from worker.sandbox import SandboxProvider


def phones(count: int) -> list[str]:
    return [f"06123{n:05d}" for n in range(count)]


def test_requeue_of_a_split_parent_takes_only_its_unsent_parts(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    sandbox.add_fault({"action": "status", "status": 114, "match": {"phone": "33612300004"}})
    sandbox.add_fault({"action": "html502", "match": {"phone": "33612300008"}})
    Producer(redis, ProducerSettings(chunk_recipients=4)).enqueue(
        {"key": "big", "text": "Hi", "to": phones(10)}
    )
    assert workers.run_burst().returncode == 0
    states = [store.get(f"big#{n}/3").state for n in (1, 2, 3)]  # type: ignore[union-attr]
    assert states == [State.SENT, State.REJECTED, State.UNKNOWN]
    sent_before = len(sandbox.requests())

    dry = workers.smsq("dlq", "requeue", "big", "--dry-run", "--by", "dora")
    done = workers.smsq("dlq", "requeue", "big", "--by", "dora")
    assert workers.run_burst().returncode == 0
    again = workers.smsq("dlq", "requeue", "big", "--by", "dora")

    left = "left as they are: big#1/3 (sent), big#3/3 (unknown)"
    assert (dry.returncode, dry.stdout) == (
        0,
        f"big: requeued (dry run) - would requeue 1 of 3 parts: big#2/3; {left}\n",
    )
    assert (done.returncode, done.stdout) == (
        0,
        f"big: requeued - requeued 1 of 3 parts: big#2/3; {left}\n",
    )
    assert [store.get(f"big#{n}/3").state for n in (1, 2, 3)] == [  # type: ignore[union-attr]
        State.SENT,
        State.SENT,
        State.UNKNOWN,
    ]
    assert len(sandbox.requests()) == sent_before + 1
    part = store.get("big#2/3")
    assert part is not None
    assert [h.get("by") for h in part.history if h["state"] == "queued"][-1] == "dora"
    assert (again.returncode, again.stdout) == (
        1,
        "big: refused - none of its 3 parts can be requeued: big#1/3 (sent), big#2/3 (sent), "
        "big#3/3 (unknown); resolve the unknown part(s) first "
        "(smsq dlq resolve big#3/3 --sent|--not-sent)\n",
    )
