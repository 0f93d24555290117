"""The polling fallback: getPulls and getAcks fetch what the webhooks missed, through the
webhooks' own path (counted once when both see it), and ``unknown`` messages are settled by
lookup (real worker processes, the sandbox over real sockets)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis
from starlette.applications import Starlette
from structlog.testing import capture_logs

from producers import keys
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.callbacks import settings
from tests.helpers.processes import API_KEY, LOGIN, Workers, wait_for
from worker.admin.server import running
from worker.allmysms.client import AllMySmsClient
from worker.gateway.webhooks import webhook_routes
from worker.sandbox import SandboxProvider
from worker.send.polling import ACK_POLLS_MAX, Poller
from worker.settings import Secret
from worker.store.ledger import Ledger


WEBHOOK_SECRET = "wh-" + "1a2b3c4d" * 5
DELIVERED, REPLYING = "33612345678", "33611555555"
POLLING = {"SMSQ_POLL_INTERVAL_S": "0.2", "SMSQ_POLL_ACKS_AFTER_S": "0"}


@pytest.fixture
def webhooks(redis: Redis) -> Iterator[str]:
    app = Starlette(routes=webhook_routes(settings(webhook_secret=Secret(WEBHOOK_SECRET)), redis))
    with running(app) as base:
        yield f"{base}/webhooks/allmysms/{WEBHOOK_SECRET}"


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    http = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(5)
    )
    yield http
    http.close()


def poller(redis: Redis, client: AllMySmsClient) -> Poller:
    ledger = Ledger(redis, ttl_s=3600, worker_name="poller-test")
    return Poller(redis, client, ledger, interval_s=1, acks_after_s=0, by="poller-test")


def metric(redis: Redis, name: str) -> int:
    return int(redis.hget(keys.METRICS, name) or 0)


def endpoints(sandbox: SandboxProvider) -> list[str]:
    return [r.get("endpoint", "sendSms") for r in sandbox.requests()]


def receipt_entries(record_history: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(h["sms_id"], h["status"]) for h in record_history if h["state"] == "receipt"]


def test_missed_webhooks_are_fetched_by_polling(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """No webhook at all: a live worker's polling stores both final receipts and the reply."""
    producer.enqueue({"key": "poll-1", "to": [DELIVERED, REPLYING], "text": "Votre colis"})
    workers.start(**POLLING)

    def complete() -> bool:
        record = store.get("poll-1")
        return (
            record is not None
            and record.delivery == {"delivered": 2, "failed": 0, "pending": 0}
            and len(record.replies) == 1
        )

    wait_for(complete, what="2 receipts and 1 reply by polling")
    record = store.get("poll-1")
    assert record is not None
    assert record.state is State.SENT
    assert [(r["phone"], r["message"]) for r in record.replies] == [(REPLYING, "OUI")]
    polls = [r for r in sandbox.requests() if r.get("endpoint") == "getAcks"]
    assert {r["params"]["campId"] for r in polls} == {record.campaign_id}
    assert "getPulls" in endpoints(sandbox)
    assert metric(redis, "poll_receipts_applied") == 2
    assert metric(redis, "poll_replies_stored") == 1
    # Both receipts are final: the message leaves the polling list.
    wait_for(
        lambda: redis.zscore(keys.AWAITING_RECEIPTS, record.message_id) is None,
        what="the message to leave smsq:awaiting",
    )


def test_a_receipt_seen_by_webhook_and_by_polling_counts_once(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
    client: AllMySmsClient,
) -> None:
    """Webhook first, polling after: the polled reply is a duplicate (one reply), and a
    message whose recipients all have a final receipt is not asked for again."""
    sandbox.set_receipts_url(f"{webhooks}/receipts", f"{webhooks}/replies", delay_ms=300)
    producer.enqueue({"key": "both", "to": [DELIVERED, REPLYING], "text": "x"})
    run = workers.run_burst()
    assert run.returncode == 0, run.log
    wait_for(lambda: len(sandbox.receipts.log()) == 5, what="4 receipts and 1 reply")
    before = store.get("both")
    assert before is not None
    result = poller(redis, client).run()
    assert (result.receipts, result.replies, result.duplicates) == (0, 0, 1)
    assert endpoints(sandbox) == ["sendSms", "getPulls"]
    record = store.get("both")
    assert record is not None
    assert receipt_entries(record.history) == receipt_entries(before.history)
    assert len(receipt_entries(record.history)) == 4
    assert len(record.replies) == 1
    assert redis.zscore(keys.AWAITING_RECEIPTS, record.message_id) is None


def test_polling_first_then_the_late_webhook_changes_nothing(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
    client: AllMySmsClient,
) -> None:
    """Polling applies the final status; the webhook's later 3 and 1 are stale and duplicate."""
    producer.enqueue({"key": "late-hook", "to": [DELIVERED], "text": "x"})
    assert workers.run_burst().returncode == 0
    assert poller(redis, client).run().receipts == 1
    record = store.get("late-hook")
    assert record is not None
    sms_id = record.sms_ids[DELIVERED]
    for status in (3, 1):
        answer = httpx.post(f"{webhooks}/receipts", data={"smsId": sms_id, "status": str(status)})
        assert answer.text == "OK"
    again = store.get("late-hook")
    assert again is not None
    assert receipt_entries(again.history) == [(sms_id, 1)]
    assert (metric(redis, "receipts_stale"), metric(redis, "receipts_duplicate")) == (1, 1)


def test_ambiguous_unknowns_are_settled_by_getacks_lookup(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
    client: AllMySmsClient,
) -> None:
    """Two unknowns to one number, webhooks without cliMsgId: ambiguous; the polling run asks
    getAcks for each receipt's campaign, whose cliMsgId names the message: both settled."""
    sandbox.set_receipts_url(f"{webhooks}/receipts", delay_ms=1500, echo_cli_msg_id=False)
    for key in ("amb-1", "amb-2"):
        producer.enqueue({"key": key, "to": [DELIVERED], "text": "x"})
    sandbox.add_fault({"action": "truncated", "times": 2})
    assert workers.run_burst().returncode == 0
    wait_for(lambda: len(sandbox.receipts.log()) == 4, what="4 receipts")
    assert [store.get(k).state for k in ("amb-1", "amb-2")] == [State.UNKNOWN] * 2  # type: ignore[union-attr]
    result = poller(redis, client).run()
    assert sorted(result.settled) == sorted(keys.message_id(k) for k in ("amb-1", "amb-2"))
    by_cli = {r["cli_msg_id"]: r for r in sandbox.requests() if r.get("cli_msg_id")}
    for key in ("amb-1", "amb-2"):
        mid = keys.message_id(key)
        record = store.get(key)
        assert record is not None
        assert record.state is State.SENT
        [sms_id] = by_cli[mid]["sms_ids"]
        assert record.sms_ids == {DELIVERED: sms_id}
        assert record.receipts[DELIVERED]["status"] == 1
        [reason] = [h["reason"] for h in record.history if h["state"] == "sent"]
        assert reason.startswith(
            f"settled by lookup getAcks smsId={sms_id}, cliMsgId={mid}, campaignId=sbx_"
        )
    assert metric(redis, "unknown_settled:lookup") == 2
    assert redis.hlen(keys.EVIDENCE_CAMPAIGNS) == 0
    assert "sendSms" not in endpoints(sandbox)[2:]  # nothing was sent again


def test_an_unknown_with_a_campaign_id_is_looked_up_and_an_empty_answer_proves_nothing(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    client: AllMySmsClient,
    sandbox: SandboxProvider,
) -> None:
    """getAcks for the message's own campaign settles it; one AllMySMS knows nothing about
    stays unknown (no answer is not proof of not-sent), and is not asked again at once."""
    reply = client.send({"DATA": {"MESSAGE": "x", "SMS": [{"MOBILEPHONE": DELIVERED}]}})
    ledger = Ledger(redis, ttl_s=3600, worker_name="t")
    for key, campaign in (("known", reply.campaign_id), ("nothing", "sbx_nothing")):
        producer.enqueue({"key": key, "to": [DELIVERED], "text": "x"})
        mid = keys.message_id(key)
        assert ledger.claim(mid).outcome == "claimed"
        assert ledger.finish(
            mid, State.UNKNOWN, {"campaign_id": campaign}, reason="unexpected", record={}
        )
    result = poller(redis, client).run()
    assert result.settled == [keys.message_id("known")]
    assert store.get("known").state is State.SENT  # type: ignore[union-attr]
    assert store.get("nothing").state is State.UNKNOWN  # type: ignore[union-attr]
    assert poller(redis, client).run().settled == []
    asked = [r["params"]["campId"] for r in sandbox.requests() if r.get("endpoint") == "getAcks"]
    assert sorted(asked) == sorted([str(reply.campaign_id), "sbx_nothing"])


def test_a_polled_reply_naming_an_unknown_message_settles_it(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """No webhook: the answer of a send to a replying number is lost; the worker's polling
    finds the reply (its cliMsgId names the message) and settles the unknown."""
    producer.enqueue({"key": "mo", "to": [REPLYING], "text": "Oui ou non ?"})
    sandbox.add_fault({"action": "truncated"})
    workers.start(**POLLING)
    wait_for(
        lambda: getattr(store.get("mo"), "state", None) is State.SENT,
        what="the unknown message settled by its reply",
    )
    record = store.get("mo")
    assert record is not None
    assert [h["state"] for h in record.history][-2:] == ["unknown", "sent"]
    assert record.history[-1]["reason"].startswith(
        f"settled by reply cliMsgId={record.message_id}, campaignId=sbx_"
    )
    assert metric(redis, "unknown_settled:reply") == 1
    assert endpoints(sandbox).count("sendSms") == 1
    assert redis.hget(keys.message(record.message_id), "settled_by") == b"reply"


def test_a_message_missing_receipts_is_asked_for_at_most_six_times(
    redis: Redis, producer: Producer, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """getAcks that never shows a final receipt: asked ACK_POLLS_MAX times, at doubling gaps,
    then the message leaves the polling list."""
    producer.enqueue({"key": "silent", "to": [DELIVERED], "text": "x"})
    mid = keys.message_id("silent")
    ledger = Ledger(redis, ttl_s=3600, worker_name="t")
    assert ledger.claim(mid).outcome == "claimed"
    assert ledger.finish(
        mid,
        State.SENT,
        {"campaign_id": "sbx_silent", "sms_ids": {DELIVERED: "sms-silent"}},
        reason="100",
        record={},
    )
    assert redis.zscore(keys.AWAITING_RECEIPTS, mid) is not None
    run = poller(redis, client)
    gaps = []
    for _ in range(ACK_POLLS_MAX):
        redis.zadd(keys.AWAITING_RECEIPTS, {mid: 0}, xx=True)  # due now
        before = time.time()
        run.run()
        score = redis.zscore(keys.AWAITING_RECEIPTS, mid)
        gaps.append(None if score is None else round(score - before))
    assert gaps == [2, 4, 8, 16, 32, None]  # max(acks_after_s, interval_s) = 1 s, doubling
    assert not redis.hexists(keys.AWAITING_POLLS, mid)
    asked = [r for r in sandbox.requests() if r.get("endpoint") == "getAcks"]
    assert [r["params"]["campId"] for r in asked] == ["sbx_silent"] * ACK_POLLS_MAX


def test_a_reply_polled_before_its_message_is_recorded_is_held_then_stored(
    redis: Redis, producer: Producer, store: MessageStore, client: AllMySmsClient
) -> None:
    """getPulls answers a reply once: one that arrives while its message is still sending is
    held in smsq:poll:replies and stored by the next run."""
    producer.enqueue({"key": "race", "to": [REPLYING], "text": "x"})
    mid = keys.message_id("race")
    ledger = Ledger(redis, ttl_s=3600, worker_name="t")
    assert ledger.claim(mid).outcome == "claimed"
    reply = client.send(
        {"DATA": {"MESSAGE": "x", "CLIMSGID": mid, "SMS": [{"MOBILEPHONE": REPLYING}]}}
    )
    run = poller(redis, client)
    assert run.run().replies == 0
    assert redis.hlen(keys.POLLED_REPLIES) == 1
    assert ledger.finish(
        mid,
        State.SENT,
        {"campaign_id": reply.campaign_id, "sms_ids": reply.sms_ids},
        reason="100",
        record={},
    )
    assert run.run().replies == 1
    assert redis.hlen(keys.POLLED_REPLIES) == 0
    record = store.get("race")
    assert record is not None
    assert [(r["phone"], r["message"]) for r in record.replies] == [(REPLYING, "OUI")]


def test_a_provider_error_ends_one_step_and_the_next_run_tries_again(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    client: AllMySmsClient,
) -> None:
    """getPulls answering 502: that step is logged and skipped, getAcks still runs; the next
    run fetches the reply."""
    producer.enqueue({"key": "flaky", "to": [REPLYING], "text": "x"})
    assert workers.run_burst().returncode == 0
    sandbox.add_fault({"endpoint": "getPulls", "action": "html502"})
    run = poller(redis, client)
    with capture_logs() as logs:
        first = run.run()
    assert (first.errors, first.receipts, first.replies) == (["OutcomeUnknownError"], 1, 0)
    [unavailable] = [e for e in logs if e["event"] == "sms.poll.unavailable"]
    assert unavailable == {
        "event": "sms.poll.unavailable",
        "log_level": "warning",
        "step": "replies",
        "error": "AllMySMS getPulls answered HTTP 502",
    }
    [done] = [e for e in logs if e["event"] == "sms.poll.done"]
    assert (done["receipts"], done["errors"]) == (1, ["OutcomeUnknownError"])
    assert run.run().replies == 1
    record = store.get("flaky")
    assert record is not None
    assert [r["message"] for r in record.replies] == ["OUI"]


def test_an_unknown_whose_campaign_shows_only_a_reply_is_settled_by_getpull(
    redis: Redis, producer: Producer, store: MessageStore
) -> None:
    """getAcks has nothing yet, getPull lists a reply from the recipient: that proves the send
    (AllMySMS answers scripted with MockTransport)."""
    producer.enqueue({"key": "pulled", "to": [REPLYING], "text": "x"})
    mid = keys.message_id("pulled")
    ledger = Ledger(redis, ttl_s=3600, worker_name="t")
    assert ledger.claim(mid).outcome == "claimed"
    assert ledger.finish(mid, State.UNKNOWN, {"campaign_id": "cmp-7"}, reason="r", record={})
    answers = {
        "/http/9.0/getPulls/": {"status": "0"},
        "/http/9.0/getAcks/": {"status": "0"},
        "/http/9.0/getPull/": {
            "mos": [
                {"id": "mo-7", "phoneNumber": REPLYING, "message": "OUI", "campaignId": "cmp-7"}
            ],
            "cliMsgId": mid,
        },
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=answers[request.url.path])

    http = AllMySmsClient(
        base_url="https://api.example.test/http/9.0",
        login=LOGIN,
        api_key=Secret(API_KEY),
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(handler),
    )
    assert poller(redis, http).run().settled == [mid]
    record = store.get("pulled")
    assert record is not None
    assert record.state is State.SENT
    assert record.history[-1]["reason"] == (
        f"settled by lookup getPull cliMsgId={mid}, campaignId=cmp-7: AllMySMS got it"
    )
    assert seen == ["/http/9.0/getPulls/", "/http/9.0/getAcks/", "/http/9.0/getPull/"]
