"""Producers are tenants: the ACL users of ``producers.acl`` on a real redis-server, each allowed
what its role needs and refused (NOPERM) everything that writes smsq's state."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.exceptions
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from producers import acl, keys
from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.errors import InvalidInputError, RedisUnavailableError
from producers.states import State
from producers.store import MessageStore
from tests.helpers.callbacks import SHOP_SECRET, Receiver, deliver_all, finish_sent, settings
from tests.helpers.processes import ROOT, Workers
from worker.callbacks.dispatcher import Dispatcher
from worker.dev.redis_server import RedisServer
from worker.send.reconciler import Reconciler
from worker.send.runner import lane_queues
from worker.store.ledger import Ledger


PASSWORD = "tenant-password-6c1f0e9a"  # noqa: S105 - a test value
COMMAND = "this user has no permissions to run the '{}' command"
KEY = "this user has no permissions to access one of the keys used as arguments"
CHANNEL = "this user has no permissions to access one of the channels used as arguments"
SCRIPT_KEY = (
    "The user executing the script can't access at least one of the keys mentioned in the "
    "command arguments"
)
MID = keys.message_id("acl-1")

Connect = Callable[[str], Redis]


@pytest.fixture
def as_user(redis_server: RedisServer, redis: Redis) -> Iterator[Connect]:
    """``as_user(role)``: a client logged in as a fresh ACL user of that role (deleted after)."""
    made: list[tuple[str, Redis]] = []

    def connect(role: str) -> Redis:
        user = f"acl-test-{role}"
        redis.execute_command(*acl.setuser_args(role, user, PASSWORD))  # type: ignore[no-untyped-call]
        client = Redis(port=redis_server.port, username=user, password=PASSWORD)
        made.append((user, client))
        return client

    yield connect
    for user, client in made:
        client.close()
        redis.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]


def url_of(redis_server: RedisServer, role: str) -> str:
    return f"redis://acl-test-{role}:{PASSWORD}@127.0.0.1:{redis_server.port}/0"


def refused(call: Callable[[], Any]) -> str:
    """The NOPERM (or script ACL) error text of ``call``."""
    with pytest.raises(redis.exceptions.ResponseError) as caught:
        call()
    return str(caught.value).split(" script: ")[0]


def test_rules_name_the_bad_role_user_or_password() -> None:
    with pytest.raises(InvalidInputError) as caught:
        acl.rules("admin", PASSWORD)
    assert str(caught.value) == "role: must be one of redis-producer, python-producer, smsq"
    with pytest.raises(InvalidInputError) as caught:
        acl.rules("smsq", "short")
    assert str(caught.value) == "password: must be at least 16 random characters"
    for user in ("default", "two words", ""):
        with pytest.raises(InvalidInputError) as caught:
            acl.setuser_args("smsq", user, PASSWORD)
        assert caught.value.field == "user"


def test_the_password_is_only_ever_its_sha256(redis: Redis, as_user: Connect) -> None:
    args = acl.setuser_args("redis-producer", "acl-test-redis-producer", PASSWORD)
    assert PASSWORD not in " ".join(args)
    as_user("redis-producer")
    listed = " ".join(str(line) for line in redis.execute_command("ACL", "LIST"))  # type: ignore[no-untyped-call]
    assert PASSWORD not in listed
    assert "#" + hashlib.sha256(PASSWORD.encode()).hexdigest() in args


def test_the_setuser_line_works_piped_into_redis_cli(
    redis: Redis, redis_server: RedisServer
) -> None:
    """What an operator runs: the words, space-separated, on redis-cli's standard input."""
    user = "acl-test-cli"
    line = " ".join(acl.setuser_args("redis-producer", user, PASSWORD))
    cli = shutil.which("redis-cli")
    assert cli is not None
    try:
        done = subprocess.run(
            [cli, "-p", str(redis_server.port)], input=line + "\n", capture_output=True, text=True
        )
        assert done.stdout.strip() == "OK", done.stderr
        tenant = Redis(port=redis_server.port, username=user, password=PASSWORD)
        assert tenant.rpush(keys.INTAKE, "{}") == 1
        assert refused(lambda: tenant.lrange(keys.INTAKE, 0, -1)) == KEY
        tenant.close()
    finally:
        redis.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]


def test_the_config_line_defines_the_user_at_start() -> None:
    """``redis.conf`` / ACL file form, here as redis-server arguments (the same directive)."""
    words = acl.config_line("python-producer", "shop", PASSWORD).split()
    assert words[:2] == ["user", "shop"]
    with RedisServer(extra_args=["--" + words[0], *words[1:]]) as server:
        tenant = Redis(port=server.port, username="shop", password=PASSWORD)
        assert Producer(tenant).enqueue({"key": "k", "to": ["0612345678"], "text": "Hi"}).state is (
            State.QUEUED
        )
        assert refused(lambda: tenant.hset(keys.PAUSED, "*", "{}")) == KEY
        tenant.close()


def test_deploy_redis_conf_documents_the_worker_rules() -> None:
    conf = (ROOT / "deploy" / "redis.conf").read_text().splitlines()
    [line] = [line for line in conf if line.startswith("# user smsq ")]
    assert line == "# user smsq on >CHANGE-ME " + " ".join(acl.WORKER_RULES)


def test_redis_producer_pushes_and_reads_outcomes_end_to_end(
    redis_server: RedisServer, as_user: Connect, workers: Workers
) -> None:
    """A non-Python backend's whole loop: RPUSH a request, an smsq worker running as the
    ``smsq`` ACL user sends it, the backend reads the outcome back."""
    tenant = as_user("redis-producer")
    as_user("smsq")
    request = {"key": "acl-1", "to": ["0612345678"], "text": "Votre code: 4242"}
    assert tenant.rpush(keys.INTAKE, json.dumps(request)) == 1
    workers.redis_url = url_of(redis_server, "smsq")

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    assert tenant.hget(keys.message(MID), "state") == b"sent"
    assert tenant.lrange(keys.history(MID), 0, 0) != []
    record = MessageStore(tenant).get("acl-1")
    assert record is not None
    assert record.state is State.SENT
    assert PASSWORD not in run.log


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (("HSET", keys.message(MID), "state", "sent"), COMMAND.format("hset")),
        (("DEL", keys.message(MID)), COMMAND.format("del")),
        (("EXPIRE", keys.message(MID), "1"), COMMAND.format("expire")),
        (("RPUSH", keys.history(MID), "{}"), KEY),
        (("EVAL", "return 1", "0"), COMMAND.format("eval")),
        (("EVALSHA", "0" * 40, "0"), COMMAND.format("evalsha")),
        (("SCRIPT", "LOAD", "return 1"), COMMAND.format("script|load")),
        (("FCALL", "f", "0"), COMMAND.format("fcall")),
        (("FUNCTION", "LOAD", "#!lua name=x\n"), COMMAND.format("function|load")),
        (("RPUSH", keys.rq_queue("smsq-urgent"), "smsq-x"), KEY),
        (("HGETALL", keys.rq_job("smsq-x")), KEY),
        (("HSET", keys.PAUSED, "*", "{}"), COMMAND.format("hset")),
        (("HGETALL", keys.PAUSED), KEY),
        (("LRANGE", keys.INTAKE, "0", "-1"), KEY),
        (("LPOP", keys.INTAKE), COMMAND.format("lpop")),
        (("RPUSH", keys.INTAKE_PROCESSING, "{}"), KEY),
        (("HGETALL", keys.CALLBACK_EVENTS), KEY),
        (("HGETALL", keys.dead_letter("x")), KEY),
        (("ZADD", keys.SENDING, "1", MID), COMMAND.format("zadd")),
        (("LPUSH", keys.WAKE, "1"), COMMAND.format("lpush")),
        (("PUBLISH", "rq:pubsub:w", "x"), COMMAND.format("publish")),
        (("SUBSCRIBE", "rq:pubsub:w"), COMMAND.format("subscribe")),
        (("KEYS", "*"), COMMAND.format("keys")),
        (("SCAN", "0"), COMMAND.format("scan")),
        (("FLUSHALL",), COMMAND.format("flushall")),
        (("CONFIG", "GET", "*"), COMMAND.format("config|get")),
        (("ACL", "LIST"), COMMAND.format("acl|list")),
        (("CLIENT", "LIST"), COMMAND.format("client|list")),
        (("MONITOR",), COMMAND.format("monitor")),
        (("SELECT", "1"), COMMAND.format("select")),
    ],
)
def test_redis_producer_is_refused_every_other_access(
    redis: Redis, as_user: Connect, command: tuple[str, ...], error: str
) -> None:
    redis.hset(keys.message(MID), mapping={"state": "queued", "key": "acl-1"})
    tenant = as_user("redis-producer")
    assert refused(lambda: tenant.execute_command(*command)) == error  # type: ignore[no-untyped-call]
    assert redis.hget(keys.message(MID), "state") == b"queued"


def test_python_producer_enqueues_and_reads_through_the_library(
    redis_server: RedisServer, as_user: Connect, workers: Workers
) -> None:
    """``Producer.enqueue`` (one script call) and ``enqueue_many`` over several pipelined
    calls (``SCRIPT LOAD`` + ``EVALSHA``), sent by a worker as ``smsq``, read back as the
    producer."""
    tenant = as_user("python-producer")
    as_user("smsq")
    producer = Producer(tenant, ProducerSettings())
    assert producer.enqueue({"key": "acl-1", "to": ["0612345678"], "text": "Hi"}).state is (
        State.QUEUED
    )
    batch = [
        {"key": f"acl-batch-{n}", "to": [f"06{n:08d}" for n in range(10, 130)], "text": "Hi"}
        for n in range(3)
    ]
    assert [r.as_dict() for r in producer.enqueue_many(batch)] == [
        {"key": f"acl-batch-{n}", "state": "queued"} for n in range(3)
    ]
    assert producer.enqueue({"key": "acl-1", "to": ["0612345678"], "text": "Hi"}).duplicate
    workers.redis_url = url_of(redis_server, "smsq")

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    store = MessageStore(tenant)
    states = [store.get(k) for k in ["acl-1", *(f"acl-batch-{n}" for n in range(3))]]
    assert [r.state if r else None for r in states] == [State.SENT] * 4


def test_python_producer_cannot_touch_pauses_queues_internals_or_admin(
    redis: Redis, as_user: Connect
) -> None:
    tenant = as_user("python-producer")
    assert refused(lambda: tenant.hset(keys.PAUSED, "*", "{}")) == KEY
    assert refused(lambda: tenant.hset(keys.RATE_LIMIT_STATE, "rate", "0")) == KEY
    assert refused(lambda: tenant.rpush(keys.INTAKE_PROCESSING, "{}")) == KEY
    assert refused(lambda: tenant.rpush(keys.INTAKE, "{}")) == KEY
    assert refused(lambda: tenant.hgetall(keys.rq_job("smsq-x"))) == KEY  # write-only
    assert refused(lambda: tenant.hgetall(keys.CALLBACK_EVENTS)) == KEY
    assert refused(lambda: tenant.delete(keys.message(MID))) == COMMAND.format("del")
    assert refused(lambda: tenant.eval("return 1", 0)) == COMMAND.format("eval")
    assert refused(lambda: tenant.script_flush()) == COMMAND.format("script|flush")
    assert refused(lambda: tenant.flushall()) == COMMAND.format("flushall")
    assert refused(lambda: tenant.config_get("*")) == COMMAND.format("config|get")
    assert refused(lambda: tenant.keys("*")) == COMMAND.format("keys")
    # A script of its own runs with its own rights, not more.
    pause = tenant.register_script("return redis.call('HSET', ARGV[1], '*', '{}')")
    assert refused(lambda: pause(args=[keys.PAUSED])) == SCRIPT_KEY
    assert redis.exists(keys.PAUSED) == 0


def test_python_producer_without_its_script_rights_gets_a_clear_error(
    redis: Redis, redis_server: RedisServer
) -> None:
    """A producer connected as a ``redis-producer`` user: the refusal names the command."""
    user = "acl-test-wrong-role"
    redis.execute_command(*acl.setuser_args("redis-producer", user, PASSWORD))  # type: ignore[no-untyped-call]
    client = Redis(port=redis_server.port, username=user, password=PASSWORD)
    try:
        with pytest.raises(RedisUnavailableError) as caught:
            Producer(client).enqueue({"key": "acl-1", "to": ["0612345678"], "text": "Hi"})
        assert str(caught.value) == (f"Redis refused the command: {COMMAND.format('evalsha')}")
    finally:
        client.close()
        redis.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]


def test_known_limit_a_python_producer_can_rewrite_message_hashes(
    redis: Redis, as_user: Connect
) -> None:
    """Redis checks a script's commands against its caller, so the rights the enqueue script
    needs are the user's own: HSET and EXPIRE on every ``smsq:msg:*``. Tenants who must not
    have them are ``redis-producer``s (see the module docstring of producers.acl)."""
    redis.hset(keys.message(MID), mapping={"state": "queued"})
    tenant = as_user("python-producer")
    assert tenant.hset(keys.message(MID), "state", "sent") == 0
    assert redis.hget(keys.message(MID), "state") == b"sent"


def test_smsq_user_delivers_callbacks_and_may_not_run_admin_commands(
    as_user: Connect, receiver: Receiver
) -> None:
    worker = as_user("smsq")
    finish_sent(
        worker, Producer(worker), "acl-cb", callback_url=receiver.start(), producer_login="shop"
    )
    assert deliver_all(Dispatcher(settings(), worker)) == ["delivered"]
    [got] = receiver.received
    assert got.verified(SHOP_SECRET)["key"] == "acl-cb"
    for call, name in [
        (worker.flushall, "flushall"),
        (worker.flushdb, "flushdb"),
        (lambda: worker.config_set("appendonly", "no"), "config|set"),
        (lambda: worker.keys("*"), "keys"),
        (worker.client_list, "client|list"),
        (lambda: worker.execute_command("ACL", "SETUSER", "x"), "acl|setuser"),  # type: ignore[no-untyped-call]
        (worker.save, "save"),
    ]:
        assert refused(call) == COMMAND.format(name)
    assert refused(lambda: worker.set("other-app:key", "x")) == KEY


def test_smsq_user_settles_a_dead_workers_send_as_unknown(
    redis: Redis, as_user: Connect, producer: Producer
) -> None:
    """The reconciler's crash path (``Ledger.finish`` with no job to drop) under the ACL: it
    used to declare the key '' to its script, which no key pattern allows (NOPERM), so a dead
    worker's message stayed ``sending`` forever."""
    producer.enqueue({"key": "acl-crash", "to": ["0612345678"], "text": "Hi"})
    mid = keys.message_id("acl-crash")
    worker = as_user("smsq")
    ledger = Ledger(worker, ttl_s=3600, worker_name="dead-worker")
    assert ledger.claim(mid).outcome == "claimed"  # no smsq:alive:dead-worker: it died

    report = Reconciler(
        worker, ledger, lane_queues(worker), dead_after_s=30, interval_s=10, stale_after_s=60
    ).run()

    assert report.unknown == 1
    record = MessageStore(worker).get("acl-crash")
    assert record is not None
    assert (record.state, record.error) == (State.UNKNOWN, "worker died during the send")


def smsq_acl(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """``smsq acl ...`` as an operator runs it, the password on standard input."""
    return subprocess.run(
        [sys.executable, "-m", "worker", "acl", *args],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_smsq_acl_output_piped_into_redis_cli_makes_the_user(
    redis: Redis, redis_server: RedisServer
) -> None:
    done = smsq_acl("redis-producer", "acl-test-cmd", stdin=PASSWORD + "\n")
    assert (done.returncode, done.stderr) == (0, "")
    assert (
        done.stdout == " ".join(acl.setuser_args("redis-producer", "acl-test-cmd", PASSWORD)) + "\n"
    )
    assert PASSWORD not in done.stdout
    cli = shutil.which("redis-cli")
    assert cli is not None
    try:
        made = subprocess.run(
            [cli, "-p", str(redis_server.port)], input=done.stdout, capture_output=True, text=True
        )
        assert made.stdout.strip() == "OK", made.stderr
        tenant = Redis(port=redis_server.port, username="acl-test-cmd", password=PASSWORD)
        assert tenant.rpush(keys.INTAKE, "{}") == 1
        assert refused(lambda: tenant.hset(keys.PAUSED, "*", "{}")) == COMMAND.format("hset")
        tenant.close()
    finally:
        redis.execute_command("ACL", "DELUSER", "acl-test-cmd")  # type: ignore[no-untyped-call]


def test_smsq_acl_config_line_and_its_refusals() -> None:
    line = smsq_acl("smsq", "workers", "--config-line", stdin=PASSWORD)
    short = smsq_acl("python-producer", "shop", stdin="short\n")
    default = smsq_acl("smsq", "default", stdin=PASSWORD + "\n")
    role = smsq_acl("admin", "shop", stdin=PASSWORD + "\n")

    assert (line.returncode, line.stdout) == (
        0,
        acl.config_line("smsq", "workers", PASSWORD) + "\n",
    )
    assert (short.returncode, short.stdout, short.stderr) == (
        1,
        "",
        "smsq: password: must be at least 16 random characters\n",
    )
    assert (default.returncode, default.stderr) == (
        1,
        "smsq: user: must be 1 to 64 letters, digits, '_', '.' or '-', and not 'default'\n",
    )
    assert role.returncode == 2
    assert role.stderr.splitlines()[-1].startswith("smsq acl: error: argument role: invalid choice")


def test_runbook_rotation_and_revocation(redis: Redis, redis_server: RedisServer) -> None:
    """RUNBOOK section 8: a second hash lets both passwords in, ``!<hash>`` drops the old one,
    and ``ACL DELUSER`` closes the tenant's open connection."""
    new = "tenant-password-rotated-77d2"
    user = "acl-test-rotate"

    def sha(password: str) -> str:
        return hashlib.sha256(password.encode()).hexdigest()

    def login(password: str) -> Redis:
        once = Retry(NoBackoff(), 0)  # a refused login is not retried (4 s of back-off)
        client = Redis(port=redis_server.port, username=user, password=password, retry=once)
        client.ping()
        return client

    redis.execute_command(*acl.setuser_args("redis-producer", user, PASSWORD))  # type: ignore[no-untyped-call]
    try:
        redis.execute_command("ACL", "SETUSER", user, "#" + sha(new))  # type: ignore[no-untyped-call]
        login(PASSWORD).close()
        redis.execute_command("ACL", "SETUSER", user, "!" + sha(PASSWORD))  # type: ignore[no-untyped-call]
        with pytest.raises(AuthenticationError):
            login(PASSWORD)
        tenant = login(new)
        open_connection = tenant.connection_pool.get_connection()
    finally:
        redis.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]
    open_connection.send_command("PING")  # type: ignore[no-untyped-call]
    with pytest.raises(RedisConnectionError):
        open_connection.read_response()
    tenant.close()


def test_readme_security_model_shows_the_lines_smsq_acl_prints() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Security model", 1)[1].split("\n## ", 1)[0]
    shown = [line.strip() for line in section.splitlines() if line.startswith("    user ")]
    expected = []
    for role, user in [
        ("redis-producer", "shop"),
        ("python-producer", "billing"),
        ("smsq", "smsq"),
    ]:
        digest = acl.rules(role, PASSWORD)[1]
        expected.append(acl.config_line(role, user, PASSWORD).replace(digest, "#<sha256>"))
    assert shown == expected
