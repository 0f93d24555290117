"""The suppression list: keyed hashes, STOP replies through the webhook, the check at enqueue
and again just before the POST, ``smsq optout``, and transactional messages left alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis
from starlette.applications import Starlette

from producers import keys
from producers.config import ProducerSettings
from producers.enqueue import Producer, Refused
from producers.errors import ConfigError, InvalidRequestError
from producers.optouts import (
    KEYWORDS,
    OPTED_OUT,
    OptOuts,
    Source,
    is_stop_reply,
    read_keywords,
)
from producers.states import State
from producers.store import MessageStore, decoded
from tests.helpers.callbacks import settings
from tests.helpers.processes import API_KEY, LOGIN, Workers
from worker.admin.server import running
from worker.allmysms.client import AllMySmsClient
from worker.gateway.webhooks import webhook_routes
from worker.sandbox import SandboxProvider
from worker.send.blacklist import BlacklistMirror, OptOutRetention
from worker.send.polling import Poller
from worker.settings import OPTOUT_RETENTION_MIN_S, Secret, read_optout_retention
from worker.store.ledger import Ledger
from worker.store.stop_replies import record_stop


WEBHOOK_SECRET = "wh-" + "5b8d2e4f" * 5
ALWAYS_OPEN = {
    "SMSQ_MARKETING_HOURS": "00:00-24:00",
    "SMSQ_MARKETING_DAYS": "mon-sun",
    "SMSQ_MARKETING_HOLIDAYS": "0",
}
"""Sending hours that never hold a message: these tests are about the list, not the clock."""
ANNE, BRUNO = "33612345678", "33698765432"


@pytest.fixture
def webhooks(redis: Redis) -> Iterator[str]:
    app = Starlette(routes=webhook_routes(settings(webhook_secret=Secret(WEBHOOK_SECRET)), redis))
    with running(app) as base:
        yield f"{base}/webhooks/allmysms/{WEBHOOK_SECRET}"


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("STOP", True),
        ("stop.", True),
        ("Stop svp", True),
        ("  arrêt ", True),
        ("ARRETER", True),
        ("Désabonner", True),
        ("STOP SMS", True),
        ("Stopper la pub ?", False),
        ("non merci", False),
        ("Pas de stop", False),
        ("", False),
    ],
)
def test_a_reply_stops_when_its_first_word_is_a_keyword(text: str, stops: bool) -> None:
    assert is_stop_reply(text) is stops


@given(st.text(max_size=200))
def test_any_reply_text_is_judged_without_error(text: str) -> None:
    assert is_stop_reply(text) in (True, False)


def test_keywords_come_from_the_setting() -> None:
    assert read_keywords("") == read_keywords("  ,  ")
    assert read_keywords("halt, FIN") == ("halt", "FIN")
    assert is_stop_reply("fin", read_keywords("halt, FIN"))
    assert not is_stop_reply("stop", read_keywords("halt, FIN"))


def test_the_list_keeps_keyed_hashes_and_no_clear_number(redis: Redis) -> None:
    keyed = OptOuts(redis, key=b"k" * 16)
    public = OptOuts(redis)

    assert keyed.add(ANNE, source=Source.MANUAL, by="ops", comment="asked by phone")
    assert not keyed.add(ANNE, source=Source.REPLY)  # the first entry stays

    assert keyed.digest(ANNE) != public.digest(ANNE)
    assert keyed.suppressed([ANNE, BRUNO, ANNE]) == frozenset({ANNE})
    assert public.suppressed([ANNE]) == frozenset()  # another key cannot find it
    stored = {decoded(k): decoded(v) for k, v in redis.hgetall(keys.OPTOUT).items()}
    assert all("612345678" not in k + v for k, v in stored.items())
    [entry] = list(keyed.entries())
    assert (entry.digest, entry.source, entry.by, entry.comment) == (
        keyed.digest(ANNE),
        "manual",
        "ops",
        "asked by phone",
    )
    assert keyed.remove(ANNE)
    assert not keyed.remove(ANNE)
    assert keyed.count() == 0


def test_enqueue_drops_opted_out_recipients_of_marketing_only(
    redis: Redis, producer: Producer, store: MessageStore
) -> None:
    OptOuts(redis).add(ANNE, source=Source.MANUAL)

    promo = producer.enqueue(
        {"key": "p", "to": [ANNE, BRUNO], "text": "Soldes", "purpose": "marketing"}
    )
    with pytest.raises(InvalidRequestError) as refused:
        producer.enqueue({"key": "p2", "to": ["0612345678"], "text": "x", "purpose": "marketing"})
    code = producer.enqueue({"key": "c", "to": [ANNE], "text": "Code 1234"})

    assert promo.refused_numbers == ({"field": "to", "phone": ANNE, "reason": OPTED_OUT},)
    record = store.get("p")
    assert record is not None
    assert [r["phone"] for r in record.request["to"]] == [BRUNO]
    assert refused.value.as_dict() == {
        "field": "to",
        "reason": "no valid recipient (every one is opted_out)",
    }
    assert store.get("p2") is None
    assert code.state is State.QUEUED
    assert code.refused_numbers == ()


def test_the_setting_extends_the_list_to_transactional_messages(redis: Redis) -> None:
    OptOuts(redis).add(ANNE, source=Source.MANUAL)
    strict = Producer(redis, ProducerSettings(optout_transactional=True))

    [refused, kept] = strict.enqueue_many(
        [
            {"key": "c1", "to": [ANNE], "text": "Code 1234"},
            {"key": "c2", "to": [BRUNO], "text": "Code 5678"},
        ]
    )

    assert isinstance(refused, Refused)
    assert refused.error.field == "to"
    assert not isinstance(kept, Refused)
    assert kept.state is State.QUEUED


def test_a_producer_can_opt_a_number_out(redis: Redis, producer: Producer) -> None:
    assert producer.opt_out("06 12 34 56 78", by="shop", comment="unsubscribe link")
    assert not producer.opt_out("+33612345678")
    with pytest.raises(InvalidRequestError) as bad:
        producer.opt_out("12")

    entry = OptOuts(redis).get(ANNE)
    assert entry is not None
    assert (entry.source, entry.by, entry.comment) == ("producer", "shop", "unsubscribe link")
    assert bad.value.field == "phone"


def _reply(sms_id: str, text: str, mo: str) -> dict[str, str]:
    return {"smsMoId": mo, "message": text, "smsId": sms_id, "phoneNumber": ANNE}


def test_a_stop_reply_suppresses_the_rest_of_a_campaign_already_queued(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
    webhooks: str,
) -> None:
    """Anne gets the first message of a campaign and replies STOP through the webhook: the two
    marketing messages already queued for her are not sent to her (one still goes to Bruno);
    her transactional code still goes."""
    promo = {"text": "Soldes", "purpose": "marketing", "campaign": "winter"}
    producer.enqueue({"key": "w1", "to": [ANNE], **promo})
    assert workers.run_burst(**ALWAYS_OPEN).returncode == 0
    first = store.get("w1")
    assert first is not None
    producer.enqueue_many(
        [
            {"key": "w2", "to": [ANNE, BRUNO], **promo},
            {"key": "w3", "to": [ANNE], **promo},
            {"key": "code", "to": [ANNE], "text": "Code 1234"},
        ]
    )

    sms_id = first.sms_ids[ANNE]
    answered = httpx.post(f"{webhooks}/replies", data=_reply(sms_id, "STOP", "mo-1"))
    again = httpx.post(f"{webhooks}/replies", data=_reply(sms_id, "Stop !", "mo-2"))
    chat = httpx.post(f"{webhooks}/replies", data=_reply(sms_id, "merci", "mo-3"))
    run = workers.run_burst(**ALWAYS_OPEN)

    assert [answered.text, again.text, chat.text] == ["OK", "OK", "OK"]
    assert run.returncode == 0, run.log
    posted = [
        (r["data"]["MESSAGE"], [s["MOBILEPHONE"] for s in r["data"]["SMS"]])
        for r in sandbox.requests()
    ]
    assert sorted(posted[1:]) == [("Code 1234", [ANNE]), ("Soldes", [BRUNO])]
    w2, w3 = store.get("w2"), store.get("w3")
    assert w2 is not None
    assert w3 is not None
    assert (w2.state, w2.opted_out) == (State.SENT, [ANNE])
    assert (w3.state, w3.opted_out) == (State.CANCELLED, [ANNE])
    assert (
        w3.history[-1]["reason"]
        == "every recipient (1) opted out while it waited; nothing was sent"
    )
    entry = OptOuts(redis).get(ANNE)
    assert entry is not None
    assert (entry.source, entry.comment) == ("reply", "smsMoId mo-1")
    assert OptOuts(redis).count() == 1
    assert "sms.send.opted_out" in run.log
    assert ANNE not in run.log  # masked


def test_smsq_optout_adds_checks_lists_and_removes(redis: Redis, workers: Workers) -> None:
    added = workers.smsq("optout", "add", "0612345678", "--why", "asked at the shop", "--by", "ops")
    again = workers.smsq("optout", "add", "+33612345678", "--why", "again", "--json")
    checked = workers.smsq("optout", "check", "0612345678", "0698765432", "--json")
    listed = workers.smsq("optout", "list", "--json")
    bad = workers.smsq("optout", "add", "12", "--why", "x")
    removed = workers.smsq("optout", "remove", "0612345678", "--why", "consented again")
    after = workers.smsq("optout", "check", "0612345678")
    audit = workers.smsq("audit", "--json")

    digest = OptOuts(redis).digest(ANNE)
    assert (added.returncode, added.stdout) == (0, f"{digest}  added\n")
    assert json.loads(again.stdout) == {"digest": digest, "outcome": "already there"}
    assert checked.returncode == 1  # one of the two is not on the list
    answers = [json.loads(line) for line in checked.stdout.splitlines()]
    assert [a["opted_out"] for a in answers] == [True, False]
    assert answers[0]["source"] == "manual"
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (entry["digest"], entry["source"], entry["by"]) == (digest, "manual", "ops")
    assert bad.returncode == 2
    assert bad.stderr.startswith("smsq optout: PHONE 1: ")
    assert removed.stdout == f"{digest}  removed\n"
    assert (after.returncode, after.stdout) == (1, f"{digest}  not on the list\n")
    actions = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [(a["action"], a["count"]) for a in actions][:2] == [
        ("optout.remove", 1),
        ("optout.add", 1),
    ]
    assert all("612345678" not in line for line in audit.stdout.splitlines())


def test_numbers_allmysms_refuses_in_an_accepted_send_are_suppressed(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    """0611888888 is on the sandbox's STOP list: AllMySMS answers 100 for the other number and
    lists it in invalidNumbers; the next marketing message leaves it out before any POST."""
    stopped = "33611888888"
    producer.enqueue({"key": "t1", "to": [ANNE, "0611888888"], "text": "Code 1234"})
    assert workers.run_burst(**ALWAYS_OPEN).returncode == 0
    producer.enqueue(
        {"key": "m1", "to": ["0611888888", BRUNO], "text": "Soldes", "purpose": "marketing"}
    )
    run = workers.run_burst(**ALWAYS_OPEN)

    assert run.returncode == 0, run.log
    first = store.get("t1")
    assert first is not None
    assert (first.state, first.invalid_numbers) == (State.PARTIAL, [stopped])
    entry = OptOuts(redis).get(stopped)
    assert entry is not None
    assert (entry.source, entry.by) == ("refused", "allmysms")
    second = store.get("m1")
    assert second is not None
    assert [r["phone"] for r in second.request["to"]] == [BRUNO]  # dropped at enqueue
    assert second.refused_numbers == [{"field": "to", "phone": stopped, "reason": OPTED_OUT}]
    assert [[s["MOBILEPHONE"] for s in r["data"]["SMS"]] for r in sandbox.requests()] == [
        [ANNE, stopped],
        [BRUNO],
    ]


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    allmysms = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(5)
    )
    yield allmysms
    allmysms.close()


def _mirror(redis: Redis, client: AllMySmsClient, interval_s: float = 60) -> BlacklistMirror:
    return BlacklistMirror(
        redis, client, OptOuts(redis), interval_s=interval_s, default_region="FR", by="w-test"
    )


def test_the_blacklist_is_mirrored_once_per_interval_and_only_adds(
    redis: Redis, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    sandbox.blacklist({"phoneNumber": "0612345678", "comment": "stop"})
    sandbox.blacklist({"phoneNumber": "+33698765432", "comment": "manual unsubscribe"})
    first, second = _mirror(redis, client), _mirror(redis, client)

    assert first.maybe_run() == 2
    assert second.maybe_run() is None  # the other worker holds this interval's turn
    sandbox.clear_blacklist()
    assert first.poll() == 0  # a number that left AllMySMS's list stays opted out

    optouts = OptOuts(redis)
    assert optouts.suppressed([ANNE, BRUNO]) == frozenset({ANNE, BRUNO})
    entry = optouts.get(BRUNO)
    assert entry is not None
    assert entry.source == "blacklist"
    assert entry.comment.startswith("getBlacklist: manual unsubscribe ")
    calls = [r for r in sandbox.requests() if r.get("endpoint") == "getBlacklist"]
    assert len(calls) == 2


def test_a_failed_mirror_changes_nothing(
    redis: Redis, sandbox: SandboxProvider, client: AllMySmsClient
) -> None:
    sandbox.blacklist({"phoneNumber": "0612345678"})
    sandbox.add_fault({"endpoint": "getBlacklist", "action": "busy", "http_status": 503})

    assert _mirror(redis, client).poll() is None
    assert OptOuts(redis).count() == 0


def test_a_worker_mirrors_the_blacklist_before_its_first_send(
    redis: Redis,
    producer: Producer,
    store: MessageStore,
    sandbox: SandboxProvider,
    workers: Workers,
) -> None:
    sandbox.blacklist({"phoneNumber": "0612345678"})
    producer.enqueue({"key": "m", "to": [ANNE, BRUNO], "text": "Soldes", "purpose": "marketing"})

    run = workers.run_burst(SMSQ_BLACKLIST_POLL_INTERVAL_S="3600", **ALWAYS_OPEN)

    assert run.returncode == 0, run.log
    assert OptOuts(redis).suppressed([ANNE]) == frozenset({ANNE})
    record = store.get("m")
    assert record is not None
    assert "sms.blacklist.mirrored" in run.log
    sends = [r for r in sandbox.requests() if "data" in r]
    assert [[s["MOBILEPHONE"] for s in r["data"]["SMS"]] for r in sends] == [[BRUNO]]
    assert (record.state, record.opted_out) == (State.SENT, [ANNE])


def test_opt_outs_past_their_retention_are_dropped_once_per_turn(redis: Redis) -> None:
    optouts = OptOuts(redis)
    optouts.add(ANNE, source=Source.MANUAL, at="2020-01-01T00:00:00+00:00")
    optouts.add(BRUNO, source=Source.MANUAL)
    redis.hset(keys.OPTOUT, "f" * 32, json.dumps({"at": "someday", "source": "manual"}))
    first = OptOutRetention(redis, optouts, retention_s=OPTOUT_RETENTION_MIN_S, by="w1")
    second = OptOutRetention(redis, optouts, retention_s=OPTOUT_RETENTION_MIN_S, by="w2")
    never = OptOutRetention(redis, optouts, retention_s=0, by="w3")

    assert never.maybe_run() is None
    assert first.maybe_run() == 1
    assert second.maybe_run() is None  # another worker's turn this hour

    assert optouts.suppressed([ANNE, BRUNO]) == frozenset({BRUNO})
    assert optouts.count() == 2  # the unreadable date is kept


def test_a_retention_shorter_than_three_years_is_refused() -> None:
    with pytest.raises(ConfigError) as short:
        read_optout_retention({"SMSQ_OPTOUT_RETENTION_S": "86400"})

    assert str(short.value).startswith("SMSQ_OPTOUT_RETENTION_S: must be 0 (kept until removed)")
    assert read_optout_retention({}) == 0
    assert read_optout_retention({"SMSQ_OPTOUT_RETENTION_S": "94608000"}) == 94608000


def test_a_stop_reply_found_by_polling_opts_out_too(redis: Redis) -> None:
    """getPulls (no webhook registered) brings a STOP to an unknown campaign and a chat reply:
    the STOP's number goes on the list, the other's does not."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/getPulls/"):
            mos = [
                {"phoneNumber": ANNE, "id": "mo-7", "campaignId": "", "message": "Stop !"},
                {"phoneNumber": BRUNO, "id": "mo-8", "campaignId": "", "message": "merci"},
            ]
            return httpx.Response(200, json={"mos": mos})
        return httpx.Response(200, json={"status": "0"})

    client = AllMySmsClient(
        base_url="http://allmysms.test/http/9.0",
        login=LOGIN,
        api_key=Secret(API_KEY),
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(answer),
    )
    optouts = OptOuts(redis)
    poller = Poller(
        redis,
        client,
        Ledger(redis, ttl_s=3600, worker_name="w-poll"),
        interval_s=1,
        acks_after_s=0,
        by="w-poll",
        stop=partial(record_stop, optouts, keywords=KEYWORDS, default_region="FR"),
    )

    poller.run()

    assert optouts.suppressed([ANNE, BRUNO]) == frozenset({ANNE})
    entry = optouts.get(ANNE)
    assert entry is not None
    assert (entry.source, entry.comment) == ("reply", "smsMoId mo-7")
