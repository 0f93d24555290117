"""Every Redis key smsq writes, built in one place.

RQ's own keys (``rq:queue:<name>``, ``rq:job:<id>``) follow from the queue names and job ids
built here. The worker's Lua scripts get these prefixes as placeholders
(``worker.store.lua.PLACEHOLDERS``), so they never spell a key themselves.
"""

from __future__ import annotations

import hashlib
import re


PREFIX = "smsq"
"""Every key smsq writes starts with it (then ``:``), and so do its job ids and queue names
(then ``-``)."""
RQ_JOB_PREFIX = "rq:job:"
"""RQ's job hash: ``rq:job:<job id>``."""
RQ_QUEUE_PREFIX = "rq:queue:"
"""RQ's queue list: ``rq:queue:<queue name>`` (its intermediate list adds ``:intermediate``)."""
RQ_WORKERS = "rq:workers"
"""RQ's set of live workers' keys, ``rq:worker:<name>`` (rq/worker_registration.py)."""
RQ_WORKER_PREFIX = "rq:worker:"
JOB_ID_PREFIX = f"{PREFIX}-"
"""An smsq job id: ``smsq-<message id>``, requeues ``smsq-<message id>-r<n>``."""
LANE_QUEUE_PREFIX = f"{PREFIX}-"
"""A lane's RQ queue name: ``smsq-<lane>`` (see ``producers.contract.queue_name``)."""
MESSAGE_PREFIX = f"{PREFIX}:msg:"
"""A message's hash: ``smsq:msg:<message id>``."""
RECEIPTS_PREFIX = f"{PREFIX}:receipts:"
"""A message's delivery receipts: ``smsq:receipts:<message id>``."""
REPLIES_PREFIX = f"{PREFIX}:replies:"
"""A message's replies: ``smsq:replies:<message id>``."""

MESSAGE_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
"""A message id: 32 lowercase hex digits (see :func:`message_id`), a send job's only argument."""
WAKE_TOKENS_MAX = 64
"""Tokens a wake list keeps at most: an idle worker (or dispatcher) needs one, more are trimmed."""

TOMBSTONE_PREFIX = f"{PREFIX}:tomb:"
"""``smsq:tomb:<message id>``: see :func:`tombstone`."""
GATEWAY_KEY_PREFIX = "gw:"
"""Keys of gateway requests, ``gw:<login>:<client key>``: only the gateway writes them."""
INTAKE = f"{PREFIX}:intake"
"""List where any backend RPUSHes a JSON send request (the redis-cli contract)."""
INTAKE_PROCESSING = f"{PREFIX}:intake:processing"
"""Intake requests a worker took and has not yet turned into messages (before 0.2: one list
for every worker; still recovered at worker start)."""
INTAKE_ATTEMPTS = f"{PREFIX}:intake:attempts"
"""Hash: digest of an intake entry → times a worker stopped while holding it. While it is not
empty, workers take intake entries one at a time, so one that kills a worker is isolated."""
INTAKE_POISON = f"{PREFIX}:intake:poison"
"""Entries that stopped a worker twice, on their way to the dead letters."""
INTAKE_HEAD_SEEN = f"{PREFIX}:intake:head-seen"
"""``<digest of the intake's first entry> <unix seconds>``: when a reader of the stats first saw
that entry at the head; entries carry no time of their own, so the oldest one's age is counted
from there (:func:`worker.store.stats.collect`)."""
WAKE = f"{PREFIX}:wake"
"""Tokens pushed on enqueue so idle workers wake at once instead of polling."""
SENDING = f"{PREFIX}:sending"
"""Sorted set of message ids claimed for sending, scored by claim time (epoch seconds)."""
LATER = f"{PREFIX}:later"
"""Sorted set of message ids waiting for a later retry round (AllMySMS was provably not
reached), scored by when the round is due (epoch seconds); the reconciler moves due ones back."""
RECONCILE_LOCK = f"{PREFIX}:reconcile:lock"
CREDITS = f"{PREFIX}:credits"
"""Hash: the last known AllMySMS balance (``credits``), when (``at``, epoch s) and from where
(``source``: getInfo or sendSms), and ``low`` (1 while at or below the threshold)."""
CREDITS_LOCK = f"{PREFIX}:credits:lock"
BLACKLIST_LOCK = f"{PREFIX}:blacklist:lock"
OPTOUT_RETENTION_LOCK = f"{PREFIX}:optout:retention:lock"
LONG_WAIT_LOCK = f"{PREFIX}:longwait:lock"
"""Held by the worker whose turn it is to check the lanes' oldest waits."""
"""Held by the worker whose turn it is to drop opt-outs past ``SMSQ_OPTOUT_RETENTION_S``."""
"""Held by the worker whose turn it is to mirror AllMySMS's getBlacklist."""
OPTOUT = f"{PREFIX}:optout"
"""Hash of the suppression list: keyed hash of a number → its entry (producers/optouts.py)."""
METRICS = f"{PREFIX}:metrics"
BARRIER_TICK = f"{PREFIX}:barrier:tick"
"""A counter each durability barrier increments before its ``WAIT`` (producers/durability.py)."""
"""Hash of monotonic counters (transitions per state, provider statuses per lane, latency
histogram buckets, retries, dead letters), read by ``smsq stats`` and ``/metrics``."""
ADMIN_SESSION_PREFIX = f"{PREFIX}:admin:session:"
"""``smsq:admin:session:<sha256 hex of the session id>``: an admin login, live while it exists."""
ADMIN_LOGIN_FAILURES = f"{PREFIX}:admin:login-failures"
"""Failed admin logins of the whole site in the current window (a counter expiring with it)."""
GATEWAY_LIMITS_PREFIX = f"{PREFIX}:gateway:"
"""The gateway's per-login rate windows and failed-login counters (:mod:`worker.gateway.limits`)."""
GATEWAY_PULLS_PREFIX = f"{PREFIX}:gateway-pulls:"
"""``smsq:gateway-pulls:<login>``: see :func:`gateway_pulls`."""
PAUSED = f"{PREFIX}:paused"
"""Hash: paused lane (or ``*`` for all) → JSON {reason, by, at}. Workers skip paused lanes."""
RATE_LIMIT_TAT = f"{PREFIX}:ratelimit:tat"
"""The global rate limiter's theoretical arrival time (GCRA), Redis-TIME seconds; expires once
the limiter is idle and its bucket full again."""
RATE_LIMIT_QUEUE = f"{PREFIX}:ratelimit:queue"
"""Sorted set of provisional rate-limit turns: tickets ``<arrival>:<cost>`` of default and bulk
sends waiting for their turn, scored by class then arrival (urgent ones book ahead of them)."""
RATE_LIMIT_DUE = f"{PREFIX}:ratelimit:due"
"""Sorted set of the same tickets, scored by when their holder must come back (Redis-TIME
seconds); a ticket past it is dropped (its worker died)."""
RATE_LIMIT_ARRIVALS = f"{PREFIX}:ratelimit:arrivals"
"""Counter numbering the tickets in arrival order; expires with the queue."""
RATE_LIMIT_STATE = f"{PREFIX}:ratelimit:state"
"""Hash of the rate limiter's slowdown after provider push-back: effective ``rate`` (segments/s),
``cut_at`` (last decrease) and ``grown_at`` (last recovery step). Absent means full speed."""
DEAD_LETTERS = f"{PREFIX}:dead"
"""Sorted set of dead-letter ids scored by the time they were recorded (epoch seconds)."""
SMS_ID_PREFIX = f"{PREFIX}:smsid:"
"""Prefix of the smsId index: ``smsq:smsid:<smsId>`` holds the message id, written when a
message finishes with smsIds and kept for the outcome TTL; delivery receipts and replies find
their message through it (the phone comes from the message's own ``sms_ids``, so a number
erased by ``smsq purge`` is not found any more)."""
CAMPAIGN_PREFIX = f"{PREFIX}:campaign:"
"""``smsq:campaign:<campaignId>`` holds the id of the message AllMySMS gave that campaignId,
written when the message finishes and kept for the outcome TTL: replies fetched by getPulls
(which carry a campaignId, not an smsId) find their message through it."""
AWAITING_RECEIPTS = f"{PREFIX}:awaiting"
"""Sorted set of sent (and partial) message ids that have a campaignId, scored by when the
polling fallback next asks getAcks for them (epoch seconds; first: when they finished). It
drops one once each recipient has a final receipt, or after its last poll."""
AWAITING_POLLS = f"{PREFIX}:awaiting:polls"
"""Hash: message id in :data:`AWAITING_RECEIPTS` → getAcks polls made for it so far."""
POLLED_REPLIES = f"{PREFIX}:poll:replies"
"""Hash: smsMoId → JSON of a reply getPulls returned that matched no message yet (its message
may still be ``sending``): getPulls answers a reply only once, so the polling fallback holds it
and tries again on its next runs, for at most an hour (it holds the person's text)."""
POLL_LOCK = f"{PREFIX}:poll:lock"
"""One worker at a time runs the polling fallback (getPulls, getAcks, settling unknowns)."""
EVIDENCE_CAMPAIGNS = f"{PREFIX}:evidence:campaigns"
"""Hash: campaignId → JSON receipt of a webhook receipt (or reply) whose smsId matched no
message and that settled no ``unknown`` by itself; the polling run asks getAcks for its
campaign, whose ``cliMsgId`` may name the message. Scored copy in
:data:`EVIDENCE_CAMPAIGNS_SEEN` (when it was stored) bounds it."""
EVIDENCE_CAMPAIGNS_SEEN = f"{PREFIX}:evidence:campaigns:seen"
"""Sorted set of the campaignIds in :data:`EVIDENCE_CAMPAIGNS`, scored by when they were
stored (epoch seconds)."""
CALLBACK_EVENTS = f"{PREFIX}:callbacks:events"
"""Hash: event id → JSON envelope {url, producer, event, created} of a callback not yet
delivered (or dead)."""
CALLBACK_DUE = f"{PREFIX}:callbacks:due"
"""Sorted set of callback event ids scored by when they may next be attempted (epoch seconds);
an event being delivered is leased by pushing its score past the delivery's deadline."""
CALLBACK_ATTEMPTS = f"{PREFIX}:callbacks:attempts"
"""Hash: event id → delivery attempts started so far."""
CALLBACK_DEAD = f"{PREFIX}:callbacks:dead"
"""Sorted set of callback event ids given up on, scored by when (epoch seconds): an index of
:func:`dead_callback` hashes, trimmed to the outcome TTL on every write and expiring that long
after the newest."""
CALLBACK_DEAD_REASONS = f"{PREFIX}:callbacks:dead:reasons"
"""Hash: dead callback event id → JSON {reason, attempts, at, http_status}, written by versions
before dead callbacks had a hash of their own (kept there, envelope in :data:`CALLBACK_EVENTS`);
read and trimmed only."""
CALLBACK_WAKE = f"{PREFIX}:callbacks:wake"
"""Tokens pushed when an event is added, so an idle dispatcher wakes at once."""
CALLBACK_DEAD_EVENT_PREFIX = f"{PREFIX}:callbacks:dead:event:"
"""Prefix of ``smsq:callbacks:dead:event:<id>``: a hash {envelope, reason} of one dead callback,
with a TTL of the outcome TTL (it expires by itself, whether or not anything else is written)."""
AUDIT = f"{PREFIX}:audit"
"""Stream of operator actions (who, what, when, why, how many), trimmed to ``SMSQ_AUDIT_TTL_S``
on every write and expiring that long after the last one (:mod:`worker.store.audit`)."""


def message_id(key: str) -> str:
    """Stable id of a message derived from its idempotency key (any text, 1-200 chars)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def message(mid: str) -> str:
    """Hash holding one message's request and outcome."""
    return f"{MESSAGE_PREFIX}{mid}"


def history(mid: str) -> str:
    """List of one message's state changes, oldest first (JSON entries)."""
    return f"{MESSAGE_PREFIX}{mid}:history"


def dead_letter(dead_id: str) -> str:
    """Hash describing one dead letter."""
    return f"{PREFIX}:dead:{dead_id}"


def receipts(mid: str) -> str:
    """Hash: smsId → JSON delivery receipt of one message's recipient (the one that counts).
    Keyed by smsId, not phone: the record maps it to the phone through ``sms_ids``."""
    return f"{RECEIPTS_PREFIX}{mid}"


def gateway_pulls(login: str) -> str:
    """List of ``<message id> <smsMoId>``: replies to the gateway messages of producer
    ``login`` that its getPulls has not returned yet (:mod:`worker.store.pulls`); references
    only, no number and no text."""
    return f"{GATEWAY_PULLS_PREFIX}{login}"


def replies(mid: str) -> str:
    """Hash: smsMoId → JSON reply (MO SMS, with the smsId it answers) to one message; holds the
    person's text, never logged."""
    return f"{REPLIES_PREFIX}{mid}"


def sms_id(provider_sms_id: str) -> str:
    """String: the id of the message an AllMySMS smsId belongs to."""
    return f"{SMS_ID_PREFIX}{provider_sms_id}"


JOB_ID_PATTERN = re.compile(re.escape(JOB_ID_PREFIX) + r"([0-9a-f]{32})(?:-r[0-9]+)?")
"""Job ids smsq writes: ``smsq-<message id>``, and ``smsq-<message id>-r<n>`` for the n-th
requeue (built by :func:`requeued_job_id` and by ``worker/store/lua/lib/requeue.lua``)."""


def lane_of_queue(queue: str) -> str:
    """The lane of an RQ queue, by its name (``smsq-bulk``) or its key (``rq:queue:smsq-bulk``)."""
    return queue.removeprefix(RQ_QUEUE_PREFIX).removeprefix(LANE_QUEUE_PREFIX)


def tombstone(message_id: str) -> str:
    """What a key ended as, kept ``SMSQ_KEY_MEMORY_S`` after its record is gone (no personal
    data: the key's hash in the name, a state as the value)."""
    return f"{TOMBSTONE_PREFIX}{message_id}"


def intake_processing(worker_name: str) -> str:
    """Intake entries one worker took and has not yet turned into messages."""
    return f"{INTAKE_PROCESSING}:{worker_name}"


def alive(worker_name: str) -> str:
    """Key a live worker process keeps refreshing; gone means the worker is dead."""
    return f"{PREFIX}:alive:{worker_name}"


CAMPAIGN_INDEX_PREFIX = f"{PREFIX}:cidx:"


def campaign_index(name: str) -> str:
    """Sorted set of the message ids of one campaign (its ``campaign`` field), scored by enqueue
    time; named by a hash of the name (any text of up to 100 characters)."""
    return f"{CAMPAIGN_INDEX_PREFIX}{hashlib.sha256(name.encode('utf-8')).hexdigest()[:32]}"


def quota(login: str, period: str) -> str:
    """A gateway account's SMS counter for one Paris day (``d20261207``) or month (``m202612``)."""
    return f"{PREFIX}:quota:{login}:{period}"


WORKERS = f"{PREFIX}:workers"
"""Sorted set of worker names scored by their last heartbeat (worker/store/workers.py)."""


def worker_info(worker_name: str) -> str:
    """Hash of one worker process on the board: host, pid, lanes, slots, busy, sent, version."""
    return f"{PREFIX}:worker:{worker_name}"


def last_beat(worker_name: str) -> str:
    """``<unix seconds> <alive key's TTL in s>`` of a worker's last heartbeat, kept a day after
    it stops, so ``smsq status`` can say since when a silent worker has been silent."""
    return f"{PREFIX}:lastbeat:{worker_name}"


def first_seen(queue_name: str) -> str:
    """Hash: job id stuck in a lane's intermediate list → when the reconciler first saw it."""
    return f"{PREFIX}:seen:{queue_name}"


def message_id_of_job(jid: str) -> str | None:
    """The message id inside an smsq job id, or None for a job smsq did not create."""
    match = JOB_ID_PATTERN.fullmatch(jid)
    return match.group(1) if match else None


def requeued_job_id(mid: str, generation: int) -> str:
    """RQ job id of the ``generation``-th requeue of a message (a fresh job each time)."""
    return f"{JOB_ID_PREFIX}{mid}-r{generation}"


def job_id(mid: str) -> str:
    """RQ job id of a message's send job."""
    return f"{JOB_ID_PREFIX}{mid}"


def rq_job(jid: str) -> str:
    """RQ's hash of the job ``jid``."""
    return f"{RQ_JOB_PREFIX}{jid}"


def rq_queue(queue_name: str) -> str:
    """RQ's list of the queue ``queue_name``."""
    return f"{RQ_QUEUE_PREFIX}{queue_name}"


def dead_callback(event_id: str) -> str:
    """Hash of one dead callback: its envelope and its reason (expires by itself)."""
    return f"{CALLBACK_DEAD_EVENT_PREFIX}{event_id}"


def evidence_looked_up(mid: str) -> str:
    """``smsq:evidence:looked:<message id>``: set (with a TTL) while an ``unknown`` message's
    own campaign was asked getAcks recently, so the polling fallback asks again only later."""
    return f"{PREFIX}:evidence:looked:{mid}"


def campaign(campaign_id: str) -> str:
    """String: the id of the message an AllMySMS campaignId belongs to."""
    return f"{CAMPAIGN_PREFIX}{campaign_id}"


def callback_keys() -> list[str]:
    """The KEYS a script passes to ``enqueue_callback``: events, due, wake (metrics separate)."""
    return [CALLBACK_EVENTS, CALLBACK_DUE, CALLBACK_WAKE]
