"""Jobs not written by smsq never run anything and never vanish: each is a dead letter."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import Workers
from worker.jobs import FOREIGN_EXECUTOR_REASON
from worker.sandbox import SandboxProvider


def write_job(redis: Redis, job_id: str, fields: dict[str, str | bytes] | None) -> None:
    """Write a job hash (if any) and push its id, as a foreign backend would."""
    if fields is not None:
        job: dict[Any, Any] = {
            "status": "queued",
            "origin": "smsq-default",
            "created_at": "2026-11-25T10:00:00.000000Z",
            **fields,
        }
        redis.hset(f"rq:job:{job_id}", mapping=job)
    redis.rpush("rq:queue:smsq-default", job_id)


def test_foreign_callable_is_refused_never_executed(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers, tmp_path: Path
) -> None:
    """A JSON job naming pathlib.Path.touch would create a file; the worker refuses it."""
    marker = tmp_path / "pwned"
    write_job(redis, "evil", {"data": json.dumps(["pathlib.Path.touch", None, [str(marker)], {}])})

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    assert not marker.exists()
    assert sandbox.requests() == []
    [letter] = store.dead_letters()
    assert (letter.kind, letter.job_id, letter.state) == ("job", "evil", "refused")
    assert letter.reason == (
        "job names a foreign callable 'pathlib.Path.touch'; only worker.jobs.send_sms runs"
    )
    assert FailedJobRegistry("smsq-default", connection=redis).get_job_ids() == ["evil"]
    assert redis.lrange("rq:queue:smsq-default:intermediate", 0, -1) == []


def test_malformed_jobs_each_become_a_dead_letter(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers, tmp_path: Path
) -> None:
    """No hash, no data, non-JSON data, a pickle blob, bad arguments, callbacks: all refused."""
    marker = tmp_path / "pickle-ran"

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))

    write_job(redis, "no-hash", None)
    write_job(redis, "bad.id", {"data": json.dumps(["worker.jobs.send_sms", None, ["0" * 32], {}])})
    write_job(redis, "no-data", {})
    write_job(redis, "not-json", {"data": "{{{"})
    write_job(redis, "pickled", {"data": pickle.dumps(Boom())})
    write_job(redis, "bad-args", {"data": json.dumps(["worker.jobs.send_sms", None, ["x"], {}])})
    write_job(
        redis,
        "callback",
        {
            "data": json.dumps(["worker.jobs.send_sms", None, ["0" * 32], {}]),
            "success_callback_name": "os.getcwd",
        },
    )

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    assert not marker.exists()
    assert sandbox.requests() == []
    reasons = {d.job_id: d.reason for d in store.dead_letters()}
    assert reasons == {
        "no-hash": "job id in the queue has no job hash or no data (not written by smsq?)",
        "no-data": "job id in the queue has no job hash or no data (not written by smsq?)",
        "not-json": "job data is not readable JSON job data (DeserializationError)",
        "pickled": "job data is not readable JSON job data (DeserializationError)",
        "bad-args": "send_sms job arguments are not one message id",
        "callback": "job carries callbacks; smsq jobs never do",
        "bad.id": "job cannot be loaded (ValueError)",
    }


def test_stray_copy_of_a_finished_job_is_dropped_quietly(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A job id left in a lane after its message was sent (the reconciler put back a job that
    was only slow; the worker that finished it deleted its hash) sends nothing and is not
    reported as a foreign job."""
    Producer(redis).enqueue({"key": "done", "text": "Hi", "to": ["0612345678"]})
    workers.run_burst()
    record = store.get("done")
    assert record is not None
    redis.rpush("rq:queue:smsq-default", f"smsq-{record.message_id}")

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    assert len(sandbox.requests()) == 1
    assert store.dead_letters() == []
    assert redis.llen("rq:queue:smsq-default:intermediate") == 0
    assert [e["event"] for e in run.events() if e["event"] == "sms.job.duplicate_dropped"] == [
        "sms.job.duplicate_dropped"
    ]


def test_a_queued_message_whose_job_lost_its_hash_gets_a_fresh_job(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Its only job has no hash (found in a Sentinel soak: a repeated give-back deleted it):
    refused as a foreign job, the message would stay ``queued`` forever. It is sent, once."""
    Producer(redis).enqueue({"key": "orphan", "text": "Hi", "to": ["0612345678"]})
    record = store.get("orphan")
    assert record is not None
    redis.delete(f"rq:job:smsq-{record.message_id}")

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    assert len(sandbox.requests()) == 1
    after = store.get("orphan")
    assert after is not None
    assert after.state is State.SENT
    assert after.history[1]["reason"] == (
        f"its job smsq-{record.message_id} had lost its hash; a fresh job, nothing was sent"
    )
    assert store.dead_letters() == []
    assert [e["event"] for e in run.events() if e["event"].startswith("sms.job.")] == [
        "sms.job.repaired"
    ]


def test_a_stale_copy_of_a_queued_messages_job_is_dropped_quietly(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A hashless copy ahead of the message's own live job sends nothing and reports nothing."""
    Producer(redis).enqueue({"key": "stale", "text": "Hi", "to": ["0612345678"]})
    record = store.get("stale")
    assert record is not None
    redis.lpush("rq:queue:smsq-default", f"smsq-{record.message_id}-r7")

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    assert len(sandbox.requests()) == 1
    assert store.dead_letters() == []
    assert redis.llen("rq:queue:smsq-default:intermediate") == 0
    assert [e["event"] for e in run.events() if e["event"].startswith("sms.job.")] == [
        "sms.job.duplicate_dropped"
    ]


@pytest.mark.workers
def test_send_sms_refuses_to_run_outside_an_smsq_worker(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider
) -> None:
    """A plain RQ worker on smsq's queue runs worker.jobs.send_sms itself: the guard refuses,
    sends nothing and RQ records why (only `smsq worker` sends at most once)."""
    Producer(redis).enqueue({"key": "plain-rq", "text": "Hi", "to": ["0612345678"]})
    record = store.get("plain-rq")
    assert record is not None
    queue = Queue("smsq-default", connection=redis, serializer=JSONSerializer)

    SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True)

    job_id = f"smsq-{record.message_id}"
    assert FailedJobRegistry(queue=queue).get_job_ids() == [job_id]
    job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    result = job.latest_result()
    assert result is not None
    assert result.exc_string is not None
    assert result.exc_string.rstrip().endswith(f"RefusedJobError: {FOREIGN_EXECUTOR_REASON}")
    assert sandbox.requests() == []
    after = store.get("plain-rq")
    assert after is not None
    assert after.state == "queued"
