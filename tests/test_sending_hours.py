"""Sending hours for marketing messages: the window in each recipient's zone, French public
holidays, a campaign held at 20:00 on a Saturday, a Sunday and 14 July and sent at the next
opening (a fake clock, no waiting), and transactional messages that ignore all of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import httpx
import pytest
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.errors import ConfigError
from producers.hours import HELD_FOR_HOURS, NoCommonWindowError, SendingHours, places_of
from producers.states import State
from producers.store import MessageStore, decoded
from tests.helpers.admin import admin_settings, log_in
from tests.helpers.processes import API_KEY, LOGIN, Workers
from worker.admin import create_app
from worker.admin.server import running
from worker.allmysms.client import AllMySmsClient
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider
from worker.send.reconciler import Reconciler
from worker.send.retries import send_retrying
from worker.send.runner import lane_queues
from worker.send.sender import Sender
from worker.settings import Secret, Settings
from worker.store.cancel import Canceller
from worker.store.control import Switch
from worker.store.ledger import Ledger


PARIS = ZoneInfo("Europe/Paris")
HOURS = SendingHours()
METRO = "33612345678"
REUNION = "262692123456"
NOUMEA = "687751234"
TAHITI = "68987123456"


def paris(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def opening(phones: list[str], at: str, hours: SendingHours = HOURS) -> str | None:
    moment = hours.next_opening(phones, paris(at))
    return None if moment is None else moment.astimezone(PARIS).isoformat()


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-12-05 19:59:59", None),  # Saturday, still open
        ("2026-12-05 20:00:00", "2026-12-07T08:00:00+01:00"),  # Saturday closing -> Monday
        ("2026-12-06 12:00:00", "2026-12-07T08:00:00+01:00"),  # Sunday
        ("2026-12-07 07:59:00", "2026-12-07T08:00:00+01:00"),  # Monday before opening
        ("2026-12-07 08:00:00", None),
        ("2027-07-14 10:00:00", "2027-07-15T08:00:00+02:00"),  # Bastille Day (a Wednesday)
        ("2027-07-13 20:30:00", "2027-07-15T08:00:00+02:00"),  # the evening before it
        ("2026-12-24 21:00:00", "2026-12-26T08:00:00+01:00"),  # Christmas Eve -> Saturday 26th
        ("2027-03-27 21:00:00", "2027-03-30T08:00:00+02:00"),  # Easter Monday, summer time
        ("2026-05-13 20:00:00", "2026-05-15T08:00:00+02:00"),  # Ascension Thursday
    ],
)
def test_metropolitan_numbers_follow_paris_time_and_french_holidays(
    at: str, expected: str | None
) -> None:
    assert opening([METRO], at) == expected


def test_overseas_numbers_follow_their_own_zone_and_holidays() -> None:
    # libphonenumber puts +262 692 in La Réunion (UTC+4) and Mayotte (UTC+3): both must be open,
    # so 19:00 in Paris (22:00 / 21:00 there) waits for 08:00 in Mayotte, 06:00 in Paris.
    assert opening([REUNION], "2026-12-04 19:00:00") == "2026-12-05T06:00:00+01:00"
    # 20 December is La Réunion's abolition day (a Sunday in 2026, so try 2027: a Monday).
    assert opening([REUNION], "2027-12-20 09:00:00") == "2027-12-21T06:00:00+01:00"
    assert opening([METRO], "2027-12-20 09:00:00") is None
    assert {p.zone for p in places_of(REUNION)} == {"Indian/Reunion", "Indian/Mayotte"}


def test_a_request_waits_for_an_opening_common_to_every_recipient() -> None:
    # Paris opens 08:00 (07:00 UTC); Nouméa (UTC+11) closes at 20:00 = 09:00 UTC: 08:00-10:00 Paris.
    assert opening([METRO, NOUMEA], "2026-12-07 06:00:00") == "2026-12-07T08:00:00+01:00"
    assert opening([METRO, NOUMEA], "2026-12-07 10:30:00") == "2026-12-08T08:00:00+01:00"
    with pytest.raises(NoCommonWindowError) as none:
        HOURS.next_opening([METRO, NOUMEA, TAHITI], paris("2026-12-07 06:00:00"))
    assert str(none.value) == (
        "the recipients' time zones share no sending hours (Mon-Sat 08:00-20:00, not on public "
        "holidays) within 31 days; send them as separate requests"
    )


def test_settings_choose_the_window_days_holidays_and_alsace_moselle() -> None:
    wide = SendingHours.from_env(
        {
            "SMSQ_MARKETING_HOURS": "08:00-22:00",
            "SMSQ_MARKETING_DAYS": "mon-fri,sun",
            "SMSQ_MARKETING_HOLIDAYS": "false",
        }
    )
    alsace = SendingHours.from_env({"SMSQ_MARKETING_HOLIDAY_SUBDIVISION": "57"})

    assert (wide.opens, wide.closes, wide.days, wide.public_holidays) == (
        time(8),
        time(22),
        frozenset({0, 1, 2, 3, 4, 6}),
        False,
    )
    assert wide.describe() == "Mon-Fri,Sun 08:00-22:00"
    assert opening([METRO], "2027-07-14 21:00:00", wide) is None
    assert opening([METRO], "2026-12-05 10:00:00", wide) == "2026-12-06T08:00:00+01:00"
    # Good Friday and 26 December are public holidays in Alsace-Moselle only.
    assert opening([METRO], "2026-04-03 10:00:00", alsace) == "2026-04-04T08:00:00+02:00"
    assert opening([METRO], "2026-04-03 10:00:00") is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SMSQ_MARKETING_HOURS": "8h-20h"},
            "SMSQ_MARKETING_HOURS: must be HH:MM-HH:MM, e.g. 08:00-20:00",
        ),
        (
            {"SMSQ_MARKETING_HOURS": "20:00-08:00"},
            "SMSQ_MARKETING_HOURS: must close after it opens (same day)",
        ),
        (
            {"SMSQ_MARKETING_DAYS": "weekdays"},
            "SMSQ_MARKETING_DAYS: must be days like mon-sat or mon,tue,fri",
        ),
        (
            {"SMSQ_MARKETING_DAYS": "sat-mon"},
            "SMSQ_MARKETING_DAYS: sat-mon: a range runs from mon to sun",
        ),
        ({"SMSQ_MARKETING_HOLIDAYS": "maybe"}, "SMSQ_MARKETING_HOLIDAYS: must be true or false"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as bad:
        Settings.from_env({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY, **env})

    assert str(bad.value).startswith(message)


# --- a campaign across the closing time, with a fake clock ------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def client(sandbox: SandboxProvider) -> Iterator[AllMySmsClient]:
    allmysms = AllMySmsClient(
        base_url=sandbox.base_url, login=LOGIN, api_key=Secret(API_KEY), timeout=httpx.Timeout(5)
    )
    yield allmysms
    allmysms.close()


def _sender(redis: Redis, client: AllMySmsClient, clock: Clock) -> Sender:
    settings = Settings.from_env({"ALLMYSMS_LOGIN": LOGIN, "ALLMYSMS_API_KEY": API_KEY})
    return Sender(
        ledger=Ledger(redis, ttl_s=3600, worker_name="w-hours"),
        client=client,
        retrying=partial(send_retrying, settings),
        switch=Switch(redis),
        hours=SendingHours(),
        clock=clock,
    )


def _reconciler(redis: Redis, clock: Clock) -> Reconciler:
    return Reconciler(
        redis,
        Ledger(redis, ttl_s=3600, worker_name="reconciler"),
        lane_queues(redis),
        dead_after_s=60,
        interval_s=1,
        stale_after_s=60,
        clock=lambda: clock.now.timestamp(),
    )


def _promo(key: str, **fields: object) -> dict[str, object]:
    return {"key": key, "to": ["0612345678"], "text": "Soldes", "purpose": "marketing", **fields}


@pytest.mark.parametrize(
    ("closed_at", "next_opening"),
    [
        ("2026-12-05 20:00:00", "2026-12-07T07:00:00+00:00"),  # Saturday 20:00 -> Monday
        ("2026-12-06 15:00:00", "2026-12-07T07:00:00+00:00"),  # Sunday
        ("2026-07-14 11:00:00", "2026-07-15T06:00:00+00:00"),  # 14 July (a Tuesday in 2026)
    ],
)
def test_a_campaign_is_held_at_closing_and_sent_at_the_next_opening(
    producer: Producer,
    store: MessageStore,
    redis: Redis,
    sandbox: SandboxProvider,
    client: AllMySmsClient,
    closed_at: str,
    next_opening: str,
) -> None:
    clock = Clock(paris("2026-12-05 19:59:30"))
    sender = _sender(redis, client, clock)
    for key in ("promo-1", "promo-2", "promo-3"):
        producer.enqueue(_promo(key))
    producer.enqueue({"key": "code", "to": ["0612345678"], "text": "Code 1234"})

    assert sender.send(keys.message_id("promo-1")).state == State.SENT.value
    clock.now = paris(closed_at)
    held = [sender.send(keys.message_id(k)).state for k in ("promo-2", "promo-3")]
    code = sender.send(keys.message_id("code")).state

    assert (held, code) == (["queued", "queued"], "sent")
    assert len(sandbox.requests()) == 2  # promo-1 and the transactional code, nothing else
    record = store.get("promo-2")
    assert record is not None
    assert (record.state, record.held_for, record.next_attempt_at) == (
        State.QUEUED,
        HELD_FOR_HOURS,
        next_opening,
    )
    assert (record.attempts, record.later_rounds) == (0, 0)
    assert record.history[-1]["reason"].startswith(
        "outside the marketing sending hours (Mon-Sat 08:00-20:00, not on public holidays, in "
        "the recipients' time zones); held until"
    )
    assert (
        redis.zscore(keys.LATER, keys.message_id("promo-2"))
        == datetime.fromisoformat(next_opening).timestamp()
    )

    reconciler = _reconciler(redis, clock)
    clock.now = datetime.fromisoformat(next_opening) - timedelta(seconds=1)
    assert reconciler.run().later_due == 0
    clock.now = datetime.fromisoformat(next_opening)
    assert reconciler.run().later_due == 2
    lane = [decoded(j) for j in redis.lrange("rq:queue:smsq-default", 0, -1)]
    assert sorted(j for j in lane if j.endswith("-r1")) == sorted(
        keys.job_id(keys.message_id(k)) + "-r1" for k in ("promo-2", "promo-3")
    )
    again = [sender.send(keys.message_id(k)).state for k in ("promo-2", "promo-3")]

    assert again == ["sent", "sent"]
    sent_to = [r["data"]["SMS"][0]["MOBILEPHONE"] for r in sandbox.requests()]
    assert len(sent_to) == 4  # each message exactly once
    final = store.get("promo-3")
    assert final is not None
    assert (final.state, final.held_for, final.next_attempt_at) == (State.SENT, None, None)


def test_a_message_whose_validity_ends_before_the_opening_expires_unsent(
    producer: Producer,
    store: MessageStore,
    redis: Redis,
    sandbox: SandboxProvider,
    client: AllMySmsClient,
) -> None:
    clock = Clock(datetime.now(UTC).astimezone(PARIS).replace(hour=21, minute=0))
    sender = _sender(redis, client, clock)
    producer.enqueue(_promo("short", valid_for_s=3600))

    assert sender.send(keys.message_id("short")).state == State.EXPIRED.value

    record = store.get("short")
    assert record is not None
    assert record.error is not None
    assert record.error.startswith("valid_for_s runs out before the marketing sending hours open")
    assert sandbox.requests() == []


def test_a_worker_process_holds_marketing_and_sends_transactional(
    producer: Producer, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Real processes: the window is set to a day that is not today in Paris, so it is closed."""
    today = datetime.now(PARIS).weekday()
    other = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today + 2) % 7]
    producer.enqueue(_promo("promo-w", sender="Shop"))
    producer.enqueue({"key": "code-w", "to": ["0612345678"], "text": "Code 1234", "sender": "Shop"})

    run = workers.run_burst(SMSQ_MARKETING_DAYS=other)
    status = workers.smsq("status", "promo-w", SMSQ_MARKETING_DAYS=other)

    assert run.returncode == 0, run.log
    requests = sandbox.requests()
    assert [r["data"]["MESSAGE"] for r in requests] == ["Code 1234"]
    promo = store.get("promo-w")
    assert promo is not None
    assert (promo.state, promo.held_for) == (State.QUEUED, HELD_FOR_HOURS)
    assert promo.request["text"] == "Soldes\nSTOP au 36180"
    assert status.returncode == 0, status.stderr
    assert f"held until {promo.next_attempt_at} (a marketing message outside its sending" in (
        status.stdout
    )
    assert "sms.send.held" in run.log
    stats = json.loads(workers.smsq("stats", "--json").stdout)
    assert stats["held_for_hours"] == 1


def test_the_admin_page_shows_the_purpose_and_the_hold(
    producer: Producer,
    redis_server: RedisServer,
    redis: Redis,
    client: AllMySmsClient,
) -> None:
    clock = Clock(paris("2026-12-06 15:00:00"))
    producer.enqueue(_promo("promo-a"))
    producer.enqueue({"key": "code-a", "to": ["0612345678"], "text": "Code 1234"})
    _sender(redis, client, clock).send(keys.message_id("promo-a"))
    app = create_app(admin_settings(redis_server.url), redis)

    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        log_in(http)
        promo = http.get("/messages/promo-a").text
        code = http.get("/messages/code-a").text

    assert '<dd id="purpose">marketing</dd>' in promo
    assert (
        '<dt>Held until</dt><dd id="next-attempt">2026-12-07T07:00:00+00:00 (a marketing message '
        "outside its sending hours in the recipients' time zones; nothing was sent)</dd>"
    ) in promo
    assert '<dd id="purpose">transactional</dd>' in code
    assert "Held until" not in code


def test_a_held_message_can_be_cancelled_and_never_comes_back(
    producer: Producer,
    store: MessageStore,
    redis: Redis,
    sandbox: SandboxProvider,
    client: AllMySmsClient,
) -> None:
    clock = Clock(paris("2026-12-06 15:00:00"))
    producer.enqueue(_promo("promo-c"))
    assert _sender(redis, client, clock).send(keys.message_id("promo-c")).state == "queued"
    ledger = Ledger(redis, ttl_s=3600, worker_name="ops")

    decision = Canceller(redis, ledger).cancel("promo-c", actor="ops", why="wrong text")
    clock.now = paris("2026-12-07 08:00:00")

    assert decision.action == "cancelled"
    assert _reconciler(redis, clock).run().later_due == 0
    record = store.get("promo-c")
    assert record is not None
    assert record.state is State.CANCELLED
    assert redis.zcard(keys.LATER) == 0
    assert sandbox.requests() == []
