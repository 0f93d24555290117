"""Credits: the sandbox's getInfo, the balance in Redis, the low-balance pause and auto-resume."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.errors import NotSentError, OutcomeUnknownError
from producers.store import MessageStore
from tests.helpers.admin import admin_settings, log_in
from tests.helpers.processes import API_KEY, LOGIN, Workers, wait_for
from tests.helpers.redis_dump import redis_dump
from worker.admin import create_app
from worker.admin.metrics import render
from worker.admin.server import running
from worker.allmysms.client import AllMySmsClient
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider
from worker.send.credits import REASON_PREFIX, CreditsWatch
from worker.settings import Secret
from worker.store.audit import AuditLog
from worker.store.control import Switch
from worker.store.credits import CreditsStore


TIMEOUT = httpx.Timeout(2.0)


def _client(base_url: str, api_key: str = API_KEY) -> AllMySmsClient:
    return AllMySmsClient(base_url=base_url, login=LOGIN, api_key=Secret(api_key), timeout=TIMEOUT)


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    http = _client(sandbox.base_url)
    yield http
    http.close()


def _watch(
    redis: Redis, client: AllMySmsClient, *, low: int = 0, auto_resume: bool = False
) -> CreditsWatch:
    return CreditsWatch(
        redis, client, interval_s=60, low=low, auto_resume=auto_resume, by="worker-a"
    )


def test_sandbox_get_info_answers_like_allmysms_without_the_api_key(
    sandbox: SandboxProvider,
) -> None:
    sandbox.set_credits(340)
    answer = httpx.post(
        f"{sandbox.base_url}/getInfo/",
        data={"login": LOGIN, "apiKey": API_KEY, "returnformat": "json"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "Active Account"
    assert body["credits"] == "340"
    assert API_KEY not in answer.text
    wrong = httpx.post(f"{sandbox.base_url}/getInfo/", data={"login": LOGIN, "apiKey": "nope"})
    assert wrong.json()["status"] == 102
    assert [(r["endpoint"], r["status"]) for r in sandbox.requests()] == [
        ("getInfo", "Active Account"),
        ("getInfo", 102),
    ]


def test_sandbox_sends_decrement_credits_then_103(sandbox: SandboxProvider) -> None:
    """15 credits per FR segment and recipient, ``credits``/``creditsUsed``, then 103."""
    sandbox.set_credits(45)
    http = _client(sandbox.base_url)
    flux = {"DATA": {"MESSAGE": "hello", "SMS": [{"MOBILEPHONE": "33612345678"}] * 2}}
    first = http.send(flux)
    assert (first.status, first.credits, first.credits_used) == (100, 15, 30)
    assert http.get_info() == 15
    second = http.send({"DATA": {"MESSAGE": "x", "SMS": [{"MOBILEPHONE": "33612345678"}]}})
    assert (second.status, second.credits) == (100, 0)
    third = http.send({"DATA": {"MESSAGE": "x", "SMS": [{"MOBILEPHONE": "33612345678"}]}})
    assert third.status == 103
    assert http.get_info() == 0
    http.close()


def test_get_info_fault_spec_is_validated(sandbox: SandboxProvider) -> None:
    with pytest.raises(
        ValueError,
        match=r"^endpoint: must be one of sendSms, getInfo, simulateCampaign, getBlacklist, "
        r"deleteCampaign, getAcks, getAckBySmsId, getPulls, getPull, getPullBySmsId$",
    ):
        sandbox.add_fault({"endpoint": "getSubAccounts", "action": "drop"})
    with pytest.raises(ValueError, match=r"^match: not allowed with endpoint 'getInfo'$"):
        sandbox.add_fault({"endpoint": "getInfo", "action": "drop", "match": {"campaign": "x"}})
    answer = httpx.post(
        f"{sandbox.base_url.removesuffix('/http/9.0')}/_sandbox/faults",
        json={"endpoint": "getInfo", "action": "html502"},
    )
    assert answer.status_code == 201


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ({"action": "html502"}, OutcomeUnknownError, "AllMySMS getInfo answered HTTP 502"),
        (
            {"action": "truncated"},
            OutcomeUnknownError,
            "AllMySMS getInfo answered HTTP 200 with a body that is not JSON",
        ),
        (
            {"action": "status", "status": 102},
            OutcomeUnknownError,
            "AllMySMS getInfo answered without a numeric credits (status 102)",
        ),
        ({"action": "delay", "delay_ms": 3000}, OutcomeUnknownError, "ReadTimeout during getInfo"),
        ({"action": "drop"}, OutcomeUnknownError, "RemoteProtocolError during getInfo"),
    ],
)
def test_get_info_failures_change_nothing(
    redis: Redis,
    sandbox: SandboxProvider,
    client: AllMySmsClient,
    fault: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    """A failing getInfo raises a clear error without the key, and the watch pauses nothing."""
    sandbox.add_fault({"endpoint": "getInfo", "times": 2, **fault})
    with pytest.raises(error) as caught:
        client.get_info()
    assert str(caught.value) == message
    assert API_KEY not in str(caught.value)
    watch = _watch(redis, client, low=10_000_000)
    assert watch.poll() is None
    assert CreditsStore(redis).get() is None
    assert Switch(redis).paused() == []
    # The fault is spent: the next poll reads the balance and (threshold above it) pauses.
    balance = watch.poll()
    assert balance is not None
    assert balance.credits == 1_000_000


def test_get_info_unreachable_is_not_sent() -> None:
    http = _client("http://127.0.0.1:9/http/9.0")
    with pytest.raises(NotSentError, match=r"^ConnectError: AllMySMS getInfo was not reached$"):
        http.get_info()
    http.close()


def test_one_watch_at_a_time(
    redis: Redis, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    first = _watch(redis, client)
    second = CreditsWatch(redis, client, interval_s=60, low=0, auto_resume=False, by="worker-b")
    assert first.maybe_run() is not None
    assert second.maybe_run() is None
    assert first.maybe_run() is None  # not due again for 60 s
    assert len(sandbox.requests()) == 1
    assert redis.get(keys.CREDITS_LOCK) == b"worker-a"


def test_low_balance_pauses_bulk_once_then_auto_resumes_its_own_pause(
    redis: Redis, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    watch = _watch(redis, client, low=150, auto_resume=True)
    sandbox.set_credits(151)
    assert watch.poll() is not None
    assert Switch(redis).paused() == []
    sandbox.set_credits(150)  # at the threshold: paused
    watch.poll()
    watch.poll()  # still low: no second pause, no second audit entry
    (pause,) = Switch(redis).paused()
    assert (pause.lane, pause.by) == ("bulk", "worker-a")
    assert pause.reason == f"{REASON_PREFIX}150 credits left, at or below SMSQ_CREDITS_LOW=150"
    sandbox.set_credits(1000)
    watch.poll()
    assert Switch(redis).paused() == []
    actions = [(e.action, e.actor, e.targets) for e in AuditLog(redis, ttl_s=3600).entries()]
    assert actions == [("resume", "worker-a", ("bulk",)), ("pause", "worker-a", ("bulk",))]


def test_auto_resume_leaves_an_operator_pause_alone(
    redis: Redis, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    watch = _watch(redis, client, low=150, auto_resume=True)
    Switch(redis).pause("bulk", reason="campaign on hold", by="alice")
    sandbox.set_credits(10)
    watch.poll()
    sandbox.set_credits(1000)
    watch.poll()
    (pause,) = Switch(redis).paused()
    assert (pause.lane, pause.by, pause.reason) == ("bulk", "alice", "campaign on hold")


def test_an_operator_pause_that_replaced_the_credits_pause_survives_the_recovery(
    redis: Redis, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    """The watch lifts only a pause whose reason is still its own, checked in one script."""
    watch = _watch(redis, client, low=150, auto_resume=True)
    sandbox.set_credits(10)
    watch.poll()
    Switch(redis).pause("bulk", reason="campaign on hold", by="alice")  # replaces it
    sandbox.set_credits(1000)
    watch.poll()
    (pause,) = Switch(redis).paused()
    assert (pause.lane, pause.by, pause.reason) == ("bulk", "alice", "campaign on hold")


def test_the_switchs_compare_and_set_pause_and_resume(redis: Redis) -> None:
    switch = Switch(redis)
    assert switch.pause_unless_paused("bulk", reason="credits check: low", by="w") is not None
    assert switch.pause_unless_paused("bulk", reason="credits check: again", by="w") is None
    assert [p.reason for p in switch.paused()] == ["credits check: low"]
    assert not switch.resume_own("bulk", reason_prefix="other: ", by="w", why="x")
    assert not switch.resume_own("default", reason_prefix="credits check: ", by="w", why="x")
    assert switch.resume_own("bulk", reason_prefix="credits check: ", by="w", why="x")
    assert switch.paused() == []
    switch.pause(None, reason="maintenance", by="alice")  # every lane
    assert switch.pause_unless_paused("bulk", reason="credits check: low", by="w") is None
    assert [(p.lane, p.by) for p in switch.paused()] == [("*", "alice")]
    switch.resume(None, by="alice")
    redis.hset(keys.PAUSED, "bulk", "not json")  # written by hand: never lifted by the watch
    assert not switch.resume_own("bulk", reason_prefix="credits check: ", by="w", why="x")
    assert redis.hget(keys.PAUSED, "bulk") == b"not json"
    redis.delete(keys.PAUSED)


def test_without_auto_resume_the_credits_pause_stays(
    redis: Redis, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    watch = _watch(redis, client, low=150)
    sandbox.set_credits(10)
    watch.poll()
    sandbox.set_credits(1000)
    watch.poll()
    assert [p.by for p in Switch(redis).paused()] == ["worker-a"]


def test_worker_polls_get_info_once_per_interval(
    redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    sandbox.set_credits(4321)
    run = workers.run_burst(SMSQ_CREDITS_POLL_INTERVAL_S="5")
    assert run.returncode == 0
    assert [r.get("endpoint") for r in sandbox.requests()] == ["getInfo"]
    balance = CreditsStore(redis).get()
    assert balance is not None
    assert (balance.credits, balance.source) == (4321, "getInfo")
    assert balance.age_s() < 30
    assert redis.hget(keys.CREDITS, "low") is None
    assert Switch(redis).paused() == []
    off = workers.run_burst(SMSQ_CREDITS_POLL_INTERVAL_S="0")
    assert off.returncode == 0
    assert len(sandbox.requests()) == 1  # 0 = never polled
    assert API_KEY not in run.log + off.log
    assert API_KEY.encode() not in redis_dump(redis)


def test_worker_pauses_bulk_from_a_send_answer_below_the_threshold(
    redis: Redis, producer: Producer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Polling off: the sendSms answer's ``credits`` updates the balance, and crossing the
    threshold pauses bulk before the account runs dry (once, logged at error)."""
    sandbox.set_credits(40)
    producer.enqueue({"key": "k1", "text": "hello", "to": ["33612345678"], "lane": "default"})
    run = workers.run_burst(SMSQ_CREDITS_LOW="30")
    assert run.returncode == 0
    assert [r.get("endpoint", "sendSms") for r in sandbox.requests()] == ["sendSms"]
    balance = CreditsStore(redis).get()
    assert balance is not None
    assert (balance.credits, balance.source) == (25, "sendSms")
    low = [e for e in run.events() if e["event"] == "sms.credits.low"]
    assert [(e["credits"], e["threshold"], e["level"]) for e in low] == [(25, 30, "error")]
    (pause,) = Switch(redis).paused()
    assert pause.lane == "bulk"
    assert pause.by.count(".") == 2  # the worker's identity: host.pid.token
    assert redis.hget(keys.CREDITS, "low") == b"1"
    assert API_KEY not in run.log


def test_worker_survives_a_failing_get_info(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """getInfo failing (502 forever) never kills the worker nor pauses anything."""
    sandbox.add_fault({"endpoint": "getInfo", "action": "html502", "times": -1})
    run = workers.run_burst(SMSQ_CREDITS_POLL_INTERVAL_S="5", SMSQ_CREDITS_LOW="10000000")
    assert run.returncode == 0
    failed = [e for e in run.events() if e["event"] == "sms.credits.unavailable"]
    assert [e["detail"] for e in failed] == ["AllMySMS getInfo answered HTTP 502"]
    assert Switch(redis).paused() == []
    assert CreditsStore(redis).get() is None
    producer.enqueue({"key": "k1", "text": "hello", "to": ["33612345678"]})
    again = workers.run_burst(SMSQ_CREDITS_POLL_INTERVAL_S="5")
    assert again.returncode == 0
    record = store.get("k1")
    assert record is not None
    assert record.state == "sent"
    assert API_KEY not in run.log + again.log


def test_balance_in_stats_metrics_and_admin_overview(
    redis: Redis, redis_server: RedisServer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """What a real worker's poll stored: ``smsq stats`` (text and JSON), /metrics, the admin
    overview; before any poll, nothing pretends to know."""
    assert json.loads(workers.smsq("stats", "--json").stdout)["credits"] is None
    assert "credits: - (not known yet: see SMSQ_CREDITS_POLL_INTERVAL_S)" in (
        workers.smsq("stats").stdout.splitlines()
    )
    assert "smsq_credits" not in render(redis).decode()
    sandbox.set_credits(340)
    assert workers.run_burst(SMSQ_CREDITS_POLL_INTERVAL_S="5").returncode == 0

    stats = json.loads(workers.smsq("stats", "--json").stdout)["credits"]
    assert (stats["balance"], stats["source"]) == (340, "getInfo")
    assert 0 <= stats["age_s"] < 30
    [line] = [x for x in workers.smsq("stats").stdout.splitlines() if x.startswith("credits:")]
    assert line.startswith("credits: 340 (22 SMS to France), from getInfo ")
    assert line.endswith(" s ago")
    metrics = render(redis).decode().splitlines()
    assert "smsq_credits 340.0" in metrics
    [age] = [m for m in metrics if m.startswith("smsq_credits_age_seconds ")]
    assert 0 <= float(age.split()[1]) < 30
    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        log_in(http)
        page = http.get("/").text
    assert "<th>AllMySMS credits</th>" in page
    assert "340 (22 SMS to France), from getInfo" in page


def test_running_worker_pauses_then_auto_resumes_but_never_an_operator_pause(
    redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A long-running worker on its schedule: the balance falls to the threshold (bulk paused by
    the worker), comes back (resumed by it); an operator's pause across the same swing stays."""
    sandbox.set_credits(20)
    workers.start(
        SMSQ_CREDITS_POLL_INTERVAL_S="0.3",
        SMSQ_CREDITS_LOW="100",
        SMSQ_CREDITS_AUTO_RESUME="1",
        SMSQ_IDLE_WAIT_S="0.1",
    )
    switch = Switch(redis)
    wait_for(lambda: [p.lane for p in switch.paused()] == ["bulk"], what="the credits pause")
    (pause,) = switch.paused()
    assert pause.reason.startswith(REASON_PREFIX)
    sandbox.set_credits(500)
    wait_for(lambda: switch.paused() == [], what="the auto-resume")

    switch.pause("bulk", reason="campaign on hold", by="alice")
    sandbox.set_credits(20)
    wait_for(lambda: redis.hget(keys.CREDITS, "low") == b"1", what="the low balance")
    sandbox.set_credits(500)
    wait_for(lambda: redis.hget(keys.CREDITS, "low") is None, what="the balance back")
    # The resume decision is taken in the same check that clears "low": it has been made.
    (kept,) = switch.paused()
    assert (kept.by, kept.reason) == ("alice", "campaign on hold")
    actions = [(e.action, e.actor) for e in AuditLog(redis, ttl_s=3600).entries()]
    # Newest first: alice's pause, then the worker's resume and its pause.
    assert [a for a, _ in actions] == ["pause", "resume", "pause"]
    assert actions[0] == ("pause", "alice")
    assert actions[2][1] == actions[1][1] == pause.by != "alice"
