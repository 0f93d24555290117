"""The apiKey appears nowhere; phone numbers are masked in logs; message text is never logged."""

from __future__ import annotations

import json

from redis import Redis

from producers import keys
from producers.enqueue import Producer
from tests.helpers.processes import API_KEY, Workers
from tests.helpers.redis_dump import redis_dump
from worker.sandbox import SandboxProvider


TEXT = "Votre code secret est 918273"
PHONES = ("33612345678", "33698765432")


def test_no_api_key_in_logs_or_redis_across_outcomes(
    redis: Redis, producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Sent, rejected, unknown, failed and refused paths leave no apiKey anywhere."""
    sandbox.add_fault({"action": "status", "status": 114, "match": {"campaign": "c114"}})
    sandbox.add_fault({"action": "html502", "match": {"campaign": "c502"}})
    sandbox.add_fault({"action": "delay", "delay_ms": 800, "match": {"campaign": "slow"}})
    for campaign in ("ok", "c114", "c502", "slow"):
        producer.enqueue({"key": campaign, "campaign": campaign, "text": TEXT, "to": list(PHONES)})
    redis.hset(
        "rq:job:evil",
        mapping={
            "status": "queued",
            "origin": "smsq-default",
            "data": json.dumps(["os.getcwd", None, [], {}]),
        },
    )
    redis.rpush("rq:queue:smsq-default", "evil")

    producer.enqueue({"key": "stop", "text": TEXT, "to": [PHONES[0], "33611888888"]})
    run = workers.run_burst(SMSQ_HTTP_READ_TIMEOUT_S="0.3")
    producer.enqueue({"key": "unreachable", "text": TEXT, "to": list(PHONES)})
    redis.delete(keys.CREDITS_LOCK)
    down = workers.run_burst(
        ALLMYSMS_BASE_URL="http://127.0.0.1:9/http/9.0", SMSQ_SEND_ATTEMPTS="2"
    )

    logs = run.log + down.log
    events = [e["event"] for e in run.events() + down.events()]
    assert {
        "sms.send.accepted",
        "sms.send.rejected",
        "sms.send.outcome_unknown",
        "sms.job.refused",
        "sms.send.failed",
        "sms.send.partial",
    } <= set(events)
    assert len(sandbox.requests()) == 5
    assert API_KEY not in logs
    assert API_KEY.encode() not in redis_dump(redis)
    assert TEXT not in logs
    for phone in PHONES:
        assert phone not in logs
    assert "33611888888" not in logs
    assert '"invalid_numbers": ["3361*****88"]' in logs


def test_a_failing_worker_start_does_not_print_the_key(workers: Workers) -> None:
    """A worker that cannot reach Redis reports it without echoing settings or secrets."""
    result = workers.smsq("worker", "--burst", REDIS_URL="redis://:hunter22@127.0.0.1:9/0")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("Redis at 127.0.0.1:9/0 is unreachable (ConnectionError)")
    assert API_KEY not in result.stdout + result.stderr
    assert "hunter22" not in result.stdout + result.stderr


def test_no_api_key_from_get_info_in_logs_redis_or_errors(
    redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    """getInfo (answered, failing, unreachable) and the pause it makes leave no apiKey."""
    sandbox.set_credits(20)
    low = workers.run_burst(SMSQ_CREDITS_POLL_INTERVAL_S="5", SMSQ_CREDITS_LOW="100")
    redis.delete(keys.CREDITS_LOCK)  # the fleet's turn lasts one interval: the next worker's
    sandbox.add_fault({"endpoint": "getInfo", "action": "truncated"})
    sandbox.set_credits(500)
    broken = workers.run_burst(SMSQ_CREDITS_POLL_INTERVAL_S="5", SMSQ_CREDITS_AUTO_RESUME="1")
    redis.delete(keys.CREDITS_LOCK)
    down = workers.run_burst(
        ALLMYSMS_BASE_URL="http://127.0.0.1:9/http/9.0", SMSQ_CREDITS_POLL_INTERVAL_S="5"
    )
    logs = low.log + broken.log + down.log
    events = [e["event"] for e in low.events() + broken.events() + down.events()]
    assert events.count("sms.credits.low") == 1
    assert events.count("sms.credits.unavailable") == 2
    assert [r["api_key_ok"] for r in sandbox.requests()] == [True, True]
    assert API_KEY not in logs
    assert API_KEY.encode() not in redis_dump(redis)
