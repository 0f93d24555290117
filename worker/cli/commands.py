"""``smsq`` command line: the only place that reads argv; imports lazily per subcommand."""

from __future__ import annotations

import argparse
import errno
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import IO, Any

from producers.errors import ConfigError, RedisUnavailableError
from worker import __version__
from worker.cli.text import dumps_json, printable, printable_lines
from worker.coredumps import disable_core_dumps, report_core_dumps


# httpx's package imports its own command-line client, hence click and pygments (about 2 MiB
# per process), whenever they are installed (rq needs click, pytest pygments). smsq never uses
# that client: a None entry in sys.modules makes the import fail, and httpx falls back to the
# stub it ships for exactly that case (httpx/__init__.py, "except ImportError").
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
# Likewise structlog's package imports its deprecated thread-local module, which loads the
# greenlet C extension (1.2 MiB) whenever greenlet is installed (playwright, a dev tool, brings
# it). smsq keeps context in contextvars and runs threads, never greenlets: without
# structlog._greenlets that module falls back to threading.local, as it does when greenlet is
# absent (structlog/threadlocal.py, "except ImportError").
sys.modules.setdefault("structlog._greenlets", None)  # type: ignore[arg-type]

EXIT_OK = 0
EXIT_REFUSED = 1
"""Some input was refused, or what was asked for does not exist."""
EXIT_CONFIG = 2
"""Configuration or infrastructure problem (settings, Redis, a file, a port), or bad usage."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT)."""
EXIT_BROKEN_PIPE = 141
"""The output's reader went away (128 + SIGPIPE, as a shell reports it)."""
ENQUEUE_BATCH = 1000
WEB_MODULES = (
    "starlette",
    "uvicorn",
    "jinja2",
    "itsdangerous",
    "python_multipart",
    "prometheus_client",
)
"""What ``smsq[web]`` installs: ``smsq admin``, ``smsq gateway`` and ``smsq demo`` need it."""


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything reads a secret: no core file or ptrace of this process can show one.
    disable_core_dumps()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"smsq: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RedisUnavailableError as exc:
        print(f"smsq: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`smsq status KEY | head`): stop quietly, like other tools.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        print(f"smsq: {_os_problem(exc, args)}", file=sys.stderr)
        return EXIT_CONFIG


def _os_problem(exc: OSError, args: argparse.Namespace) -> str:
    """One line for a file that cannot be read or a port that cannot be listened on."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {getattr(args, 'port', '?')} is already in use (choose another with --port)"
    if exc.filename is not None:
        return f"cannot read {exc.filename}: {exc.strerror or type(exc).__name__}"
    return f"{exc.strerror or exc} ({type(exc).__name__})"


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _port(value: str) -> int:
    """``--port``: a TCP port (0 picks a free one)."""
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number from 0 to 65535")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsq", description="Durable SMS sending via AllMySMS.")
    parser.add_argument("--version", action="version", version=f"smsq {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", help="run worker processes")
    worker.add_argument("--burst", action="store_true", help="exit when the lanes are empty")
    worker.add_argument(
        "--lanes",
        default="urgent,default,bulk",
        help="lanes to drain, in any order; urgent is always drained first",
    )
    worker.add_argument("--processes", type=int, default=1, help="worker processes to supervise")
    worker.set_defaults(handler=_worker)

    enqueue = sub.add_parser(
        "enqueue",
        help="enqueue JSON requests from stdin or a file, or a campaign file",
        description="Without --text: one JSON request per line (or a JSON array). With --text: "
        "a campaign, one recipient per line as phone[,param_1,param_2...].",
    )
    enqueue.add_argument("--file", help="read from this file instead of stdin")
    enqueue.add_argument("--text", help="campaign: the text every recipient gets")
    enqueue.add_argument("--key", help="campaign: its key; requests are keyed KEY:1, KEY:2...")
    enqueue.add_argument("--sender", help="campaign: TPOA sender name")
    enqueue.add_argument("--lane", help="campaign: urgent, default or bulk")
    enqueue.add_argument("--send-at", help="campaign: ISO-8601 date-time with offset")
    enqueue.add_argument(
        "--purpose",
        help="campaign: transactional (default) or marketing (STOP mention, sending hours)",
    )
    cost = enqueue.add_mutually_exclusive_group()
    cost.add_argument(
        "--dry-run",
        action="store_true",
        help="check the requests and print what they would cost (AllMySMS simulateCampaign); "
        "enqueue and send nothing",
    )
    cost.add_argument(
        "--show-cost",
        action="store_true",
        help="print the cost first (on stderr), then enqueue only after a yes (or --yes)",
    )
    enqueue.add_argument("--yes", action="store_true", help="with --show-cost: do not ask")
    enqueue.add_argument("--json", action="store_true", help="with --dry-run: print JSON")
    enqueue.set_defaults(handler=_enqueue)

    status = sub.add_parser("status", help="show a message's state and history")
    status.add_argument(
        "key",
        help="the idempotency key given at enqueue, or a gateway "
        "campaignId / smsId (<message id>[-<recipient>])",
    )
    status.add_argument("--json", action="store_true", help="print the record as JSON")
    status.add_argument(
        "--recipients",
        action="store_true",
        help="list every recipient (by default the first 10, then a count)",
    )
    status.set_defaults(handler=_status)

    from worker.cli.operator import _moment, add_commands, default_operator
    from worker.cli.optout import add_commands as add_optout_commands

    add_commands(sub)
    add_optout_commands(sub)

    purge = sub.add_parser("purge", help="erase one person's data everywhere (GDPR)")
    purge.add_argument("--phone", required=True, help="the person's phone number, any format")
    purge.add_argument("--dry-run", action="store_true", help="show what would be erased")
    purge.add_argument("--json", action="store_true", help="print the report as JSON")
    purge.add_argument(
        "--by", default=default_operator(), help="who erases (recorded in the erasure record)"
    )
    purge.add_argument(
        "--why", default="", help="why, e.g. a ticket number (recorded; never the number)"
    )
    purge.set_defaults(handler=_purge)

    sandbox = sub.add_parser("sandbox", help="serve a local AllMySMS stand-in")
    sandbox.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1; 0.0.0.0 for every interface)",
    )
    sandbox.add_argument(
        "--port", type=_port, default=8025, help="TCP port (8025; 0: any free one)"
    )
    sandbox.add_argument(
        "--latency-ms", type=int, default=0, help="answer each sendSms this much later (0)"
    )
    sandbox.add_argument(
        "--receipts-url",
        help="after each send, POST delivery receipts here "
        "(e.g. http://127.0.0.1:8090/webhooks/allmysms/SECRET/receipts)",
    )
    sandbox.add_argument("--replies-url", help="and replies from numbers ending in 555555 here")
    sandbox.add_argument(
        "--receipts-delay-ms", type=int, default=300, help="wait before the first receipt of a send"
    )
    sandbox.set_defaults(handler=_sandbox)

    admin = sub.add_parser("admin", help="serve the operators' web page and /metrics")
    admin.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1; 0.0.0.0 for every interface)",
    )
    admin.add_argument("--port", type=_port, default=8026, help="TCP port (8026; 0: any free one)")
    admin.set_defaults(handler=_admin)

    gateway = sub.add_parser("gateway", help="serve AllMySMS-compatible sendSms for any language")
    gateway.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1; 0.0.0.0 for every interface)",
    )
    gateway.add_argument(
        "--port", type=_port, default=8090, help="TCP port (8090; 0: any free one)"
    )
    gateway.set_defaults(handler=_gateway)

    replies = sub.add_parser("replies", help="show the replies (MO SMS) to a message")
    replies.add_argument("key", help="the idempotency key given at enqueue")
    replies.add_argument("--json", action="store_true", help="print the replies as JSON")
    replies.set_defaults(handler=_replies)

    callbacks = sub.add_parser(
        "callbacks",
        help="deliver signed callbacks to producers",
        description="Deliver callback events until stopped. With --dead: list the dead ones. "
        "With --requeue: put dead ones (the EVENT_IDs, and every one the filters match) back "
        "in the outbox, same event id, fresh attempt budget; --dry-run first to see which.",
    )
    callbacks.add_argument("--threads", type=int, default=4, help="deliveries in flight at once")
    callbacks.add_argument("--burst", action="store_true", help="exit when nothing is due")
    mode = callbacks.add_mutually_exclusive_group()
    mode.add_argument(
        "--dead",
        action="store_true",
        help="list dead callbacks (given up on) instead, newest first",
    )
    mode.add_argument(
        "--requeue",
        action="store_true",
        help="send dead callbacks again: the EVENT_IDs and all the filters match",
    )
    callbacks.add_argument(
        "event_ids", nargs="*", metavar="EVENT_ID", help="with --requeue: dead callbacks' ids"
    )
    callbacks.add_argument("--reason", help="with --requeue: all whose reason contains this text")
    callbacks.add_argument(
        "--since", type=_moment, help="with --requeue: all dead at or after (ISO-8601 with offset)"
    )
    callbacks.add_argument(
        "--until", type=_moment, help="with --requeue: all dead at or before (ISO-8601 with offset)"
    )
    callbacks.add_argument(
        "--producer", help="with --requeue: all of this producer account (login)"
    )
    callbacks.add_argument("--host", help="with --requeue: all whose callback URL has this host")
    callbacks.add_argument(
        "--dry-run", action="store_true", help="with --requeue: say what would be requeued"
    )
    callbacks.add_argument(
        "--by", default=default_operator(), help="with --requeue: who decides (recorded)"
    )
    callbacks.add_argument(
        "--why", default="", help="with --requeue: why (recorded in the audit stream)"
    )
    callbacks.add_argument(
        "--json",
        action="store_true",
        help="with --dead: print JSON; with --requeue: one JSON object per line",
    )
    callbacks.set_defaults(handler=_callbacks)

    demo = sub.add_parser("demo", help="run everything locally end to end and print outcomes")
    demo.set_defaults(handler=_demo)

    from producers.acl import ROLES

    acl = sub.add_parser(
        "acl",
        help="print the Redis ACL user of a producer or of smsq (password read from stdin)",
        description="Print the ACL SETUSER command (pipe it into redis-cli as an admin user) or, "
        "with --config-line, the `user` line for redis.conf or an ACL file. The password is "
        "read from standard input (prompted on a terminal) and printed only as its SHA-256.",
    )
    acl.add_argument("role", choices=list(ROLES), help="what the user may do")
    acl.add_argument("user", help="the Redis user name (not 'default')")
    acl.add_argument(
        "--config-line", action="store_true", help="print the redis.conf / ACL file line instead"
    )
    acl.set_defaults(handler=_acl)

    from worker.cli.environment import annotate

    annotate(parser)
    return parser


def _acl(args: argparse.Namespace) -> int:
    from producers import acl
    from producers.errors import InvalidInputError

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for Redis user {args.user}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        if args.config_line:
            print(acl.config_line(args.role, args.user, password))
        else:
            print(" ".join(acl.setuser_args(args.role, args.user, password)))
    except InvalidInputError as exc:
        print(f"smsq: {printable(str(exc))}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    from producers.contract import Lane
    from worker.settings import Settings

    settings = Settings.from_env()
    settings.require_credentials()
    try:
        lanes = [Lane(name.strip()) for name in args.lanes.split(",") if name.strip()]
    except ValueError:
        raise ConfigError("--lanes", "must list urgent, default and/or bulk") from None
    if not lanes:
        raise ConfigError("--lanes", "must name at least one lane")
    if args.processes < 1:
        raise ConfigError("--processes", "must be at least 1")
    _configure_logging(settings)
    if args.processes > 1:
        from worker.send.supervisor import supervise

        return supervise(args.processes, burst=args.burst, lanes=args.lanes)
    from producers.durability import Barrier
    from worker.connections import check_failover_margin
    from worker.send.runner import build_worker, wait_for_redis
    from worker.send.runtime import build_runtime

    runtime = build_runtime(settings)
    try:
        if args.burst:
            _ping(runtime.redis)
        else:
            wait_for_redis(runtime.redis)  # logged, however long it takes
        check_failover_margin(settings, runtime.redis)
        Barrier.from_settings(settings.producer).check_server(runtime.redis)
        build_worker(runtime, lanes).work(burst=args.burst, logging_level=settings.log_level)
    finally:
        runtime.close()
    return EXIT_OK


def _configure_logging(settings: Any) -> None:
    from worker.logs import configure_logging

    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        secrets=[
            settings.api_key.reveal(),
            settings.admin_password.reveal(),
            settings.admin_session_secret.reveal(),
            settings.webhook_secret.reveal(),
            settings.callback_secret.reveal(),
            *(
                a.callback_secret.reveal()
                for a in settings.producers
                if a.callback_secret is not None
            ),
        ],
    )
    report_core_dumps()


def _ping(connection: Any) -> None:
    from producers.redis_errors import translate_redis_errors

    with translate_redis_errors(connection):
        connection.ping()


def _enqueue(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from producers import ProducerSettings, connect
    from producers.enqueue import Producer, Refused
    from producers.errors import InvalidRequestError

    if args.yes and not args.show_cost:
        raise ConfigError("--yes", "only goes with --show-cost")
    if args.json and not args.dry_run:
        raise ConfigError("--json", "only goes with --dry-run")
    settings = ProducerSettings.from_env()
    read = _read_requests if args.text is None else partial(_read_campaign, args)
    if args.file:
        # surrogateescape: bytes that are not UTF-8 refuse their own line, not the whole file.
        with open(args.file, encoding="utf-8", errors="surrogateescape", newline="") as stream:
            items = list(read(stream))
    else:
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
        items = list(read(stdin))
    if args.dry_run or args.show_cost:
        refused = _cost(args, settings, items)
        if args.dry_run or refused is None:
            return EXIT_CONFIG if refused is None else EXIT_REFUSED if refused else EXIT_OK
        if not (args.yes or _confirmed(args)):
            print(
                "smsq enqueue: nothing was enqueued (--show-cost without --yes, or not confirmed)",
                file=sys.stderr,
            )
            return EXIT_REFUSED
    producer = Producer(connect(settings), settings)
    started = time.monotonic()
    counts = {"accepted": 0, "duplicates": 0, "refused": 0}
    # A progress bar only where a person watches; scripts get one summary line instead.
    bar = tqdm(total=len(items), unit="msg", file=sys.stderr, disable=not sys.stderr.isatty())
    for start in range(0, len(items), ENQUEUE_BATCH):
        batch = [
            Refused(None, InvalidRequestError(f"line {number}", obj.reason))
            if isinstance(obj, _Unreadable)
            else obj
            for number, obj in items[start : start + ENQUEUE_BATCH]
        ]
        # Lines that were not JSON are answered in place, in input order.
        results = iter(
            producer.enqueue_many(
                [item for item in batch if not isinstance(item, Refused)], source="cli"
            )
        )
        for item in batch:
            result = item if isinstance(item, Refused) else next(results)
            if isinstance(result, Refused):
                counts["refused"] += 1
            else:
                counts["duplicates" if result.duplicate else "accepted"] += 1
            sys.stdout.write(dumps_json(result.as_dict()) + "\n")
        sys.stdout.flush()
        bar.update(len(batch))
    bar.close()
    if args.file or not sys.stderr.isatty():
        print(
            f"smsq enqueue: {len(items)} request(s): {counts['accepted']} accepted, "
            f"{counts['duplicates']} duplicate(s), {counts['refused']} refused in "
            f"{time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )
    return EXIT_OK if not counts["refused"] else EXIT_REFUSED


def _cost(args: argparse.Namespace, settings: Any, items: list[tuple[int, Any]]) -> int | None:
    """Print what ``items`` would cost (``--dry-run``: on stdout, ``--show-cost``: on stderr) and
    return how many requests would not be sent, or None when AllMySMS could not tell (the
    reason printed). Touches no Redis."""
    from datetime import UTC, datetime

    from producers.enqueue import Refused
    from producers.errors import InvalidRequestError, ProviderError
    from worker.allmysms.client import AllMySmsClient
    from worker.cli.dryrun import estimate
    from worker.settings import Settings

    worker_settings = Settings.from_env()
    worker_settings.require_credentials()
    inputs = [
        Refused(None, InvalidRequestError(f"line {number}", obj.reason))
        if isinstance(obj, _Unreadable)
        else obj
        for number, obj in items
    ]
    client = AllMySmsClient.from_settings(worker_settings)
    try:
        cost = estimate(
            inputs,
            client,
            default_region=settings.default_country,
            chunk_recipients=settings.chunk_recipients,
            now=datetime.now(UTC),
            stop=settings.stop,
            transliteration=settings.transliteration,
        )
    except ProviderError as exc:
        print(
            f"smsq enqueue: AllMySMS simulateCampaign failed, nothing was enqueued or sent: "
            f"{printable(str(exc))}",
            file=sys.stderr,
        )
        return None
    finally:
        client.close()
    out = sys.stdout if args.dry_run else sys.stderr
    if args.json:
        out.write(dumps_json(cost.as_dict(), indent=2) + "\n")
    else:
        out.write(printable_lines(cost.lines()) + "\n")
        if args.dry_run:
            out.write("dry run: nothing was enqueued or sent\n")
    out.flush()
    return cost.refused


def _confirmed(args: argparse.Namespace) -> bool:
    """Ask on the terminal whether to send; only when the requests came from ``--file`` (stdin
    then is free) and a person is there."""
    if not (args.file and sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    sys.stderr.write("enqueue and send these? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@dataclass(frozen=True, slots=True)
class _Unreadable:
    """An input line that is not a JSON value, and why."""

    reason: str


def _json_value(text: str) -> Any:
    """``text`` decoded as JSON, or why it cannot be (read with ``surrogateescape``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _Unreadable("not valid UTF-8")
    try:
        return json.loads(text)
    except RecursionError:
        return _Unreadable("not valid JSON: nested too deeply")
    except ValueError:
        return _Unreadable("not valid JSON")


def _read_campaign(args: argparse.Namespace, stream: IO[str]) -> Iterator[tuple[int, Any]]:
    from producers.enqueue import Refused
    from worker.cli.campaign import BadLine, Campaign, campaign_requests

    if not args.key:
        raise ConfigError("--key", "is required with --text (the campaign's idempotency key)")
    campaign = Campaign(
        key=args.key,
        text=args.text,
        sender=args.sender,
        lane=args.lane,
        send_at=args.send_at,
        purpose=args.purpose,
    )
    for number, item in enumerate(campaign_requests(campaign, stream), start=1):
        yield number, Refused(None, item.error) if isinstance(item, BadLine) else item


def _read_requests(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """One JSON object or array for the whole input, or else one JSON value per line."""
    text = stream.read()
    whole = _json_value(text)
    if not isinstance(whole, _Unreadable):
        items = whole if isinstance(whole, list) else [whole]
        yield from enumerate(items, start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, _json_value(line)


def _status(args: argparse.Namespace) -> int:
    from producers import MessageStore, ProducerSettings, connect

    connection = connect(ProducerSettings.from_env())
    store = MessageStore(connection)
    record = store.get(args.key)
    recipient: int | None = None
    if record is None:  # not a key: maybe a gateway id (campaignId or smsId)
        from worker.gateway.ids import parse_sms_id

        parsed = parse_sms_id(args.key)
        if parsed is not None:
            record, recipient = store.get_by_id(parsed[0]), parsed[1]
    if record is None:
        print(f"smsq: no message with key {args.key!r}", file=sys.stderr)
        return EXIT_REFUSED
    if recipient is not None:
        return _print_recipient(record, recipient, as_json=args.json)
    from producers.states import State
    from worker.settings import Settings
    from worker.store.claims import claim_of

    claim = claim_of(connection, record.message_id) if record.state is State.SENDING else None
    interval_s = Settings.from_env().reconcile_interval_s
    if args.json:
        data = record.as_dict()
        if claim is not None:
            data["claim"] = claim.as_dict(interval_s)
        print(dumps_json(data, indent=2))
        return EXIT_OK
    from worker.cli.text import render_status

    print(
        render_status(
            record,
            claim=claim,
            reconcile_interval_s=interval_s,
            all_recipients=args.recipients,
        )
    )
    return EXIT_OK


def _print_recipient(record: Any, position: int, *, as_json: bool) -> int:
    """``smsq status <message id>-<n>``: recipient n of the message, then the whole record."""
    recipients = record.request.get("to", [])
    if not 1 <= position <= len(recipients):
        print(
            f"smsq: message {record.message_id} has no recipient {position} "
            f"(it has {len(recipients)})",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    phone = recipients[position - 1]["phone"]
    sms_id = record.sms_ids.get(phone)
    if as_json:
        data = record.as_dict()
        data["recipient"] = {"position": position, "phone": phone, "provider_sms_id": sms_id}
        print(dumps_json(data, indent=2))
        return EXIT_OK
    from worker.cli.text import render_status

    print(
        printable(
            f"recipient:  {position} of {len(recipients)}: {phone}  "
            f"(message {record.state.value}; AllMySMS smsId {sms_id or 'none yet'})"
        )
    )
    print(render_status(record))
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    from producers import ProducerSettings, connect
    from producers.errors import InvalidInputError, PhoneError
    from producers.redis_errors import translate_redis_errors
    from worker.settings import read_audit_ttl_s
    from worker.store.purge import Purger

    settings = ProducerSettings.from_env()
    connection = connect(settings)
    purger = Purger(
        connection, default_region=settings.default_country, audit_ttl_s=read_audit_ttl_s()
    )
    try:
        with translate_redis_errors(connection):
            report = purger.purge(args.phone, actor=args.by, why=args.why, dry_run=args.dry_run)
    except PhoneError as exc:
        print(f"smsq: --phone: {exc.reason}", file=sys.stderr)
        return EXIT_REFUSED
    except InvalidInputError as exc:
        print(f"smsq: --{exc.field}: {exc.reason}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(dumps_json({"dry_run": args.dry_run, **report.as_dict()}))
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    remove = "would remove" if args.dry_run else "removed"
    lines = [
        f"{verb} {len(report.deleted_messages)} message(s) sent only to this number"
        + _listed(report.deleted_messages),
        f"{remove} the number from "
        f"{len(report.redacted_messages)} message(s) sent to several people"
        + _listed(report.redacted_messages),
        f"{verb} {len(report.deleted_dead_letters)} dead letter(s) and "
        f"{report.deleted_intake_entries} intake entry(ies)",
        f"{verb} {report.deleted_callback_events} waiting and {report.deleted_dead_callbacks} "
        f"dead callback(s); {remove} the number from {report.redacted_callback_events} "
        f"waiting and {report.redacted_dead_callbacks} dead callback(s)",
        "dry run: nothing changed"
        if args.dry_run
        else f"erasure record {report.erasure_id} (smsq audit --action erasure)",
    ]
    print(printable_lines(lines))
    return EXIT_OK


def _listed(keys: list[str]) -> str:
    return f": {', '.join(sorted(keys))}" if keys else ""


def _sandbox(args: argparse.Namespace) -> int:
    import os

    from worker.sandbox import serve

    serve(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        login=os.environ.get("ALLMYSMS_LOGIN") or "demo",
        api_key=os.environ.get("ALLMYSMS_API_KEY") or "sandbox-key",
        receipts_url=args.receipts_url,
        replies_url=args.replies_url,
        receipts_delay_ms=args.receipts_delay_ms,
    )
    return EXIT_OK


def _replies(args: argparse.Namespace) -> int:
    from producers import MessageStore, ProducerSettings, connect
    from worker.cli.text import render_replies

    record = MessageStore(connect(ProducerSettings.from_env())).get(args.key)
    if record is None:
        print(f"smsq: no message with key {args.key!r}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(dumps_json(record.replies, indent=2))
    else:
        print(render_replies(record))
    return EXIT_OK


def _callbacks(args: argparse.Namespace) -> int:
    import signal
    import threading

    from producers import connect
    from worker.callbacks.outbox import dead_callbacks
    from worker.settings import Settings

    requeue_only = ("event_ids", "reason", "since", "until", "producer", "host")
    if not args.requeue:
        for name in (*requeue_only, "dry_run"):
            if getattr(args, name):
                option = "EVENT_ID" if name == "event_ids" else f"--{name.replace('_', '-')}"
                raise ConfigError(option, "only goes with --requeue")
    settings = Settings.from_env()
    connection = connect(settings.producer)
    if args.requeue:
        return _requeue_callbacks(args, connection)
    if args.dead:
        _ping(connection)
        dead = [d.as_dict() for d in dead_callbacks(connection)]
        if args.json:
            print(dumps_json(dead, indent=2))
        for item in [] if args.json else dead:
            print(
                printable(
                    f"{item['event_id']}  {item['event'].get('event')}  {item['event'].get('key')}"
                    f"  attempts={item['attempts']}  {item['reason']}"
                )
            )
        return EXIT_OK
    if args.threads < 1:
        raise ConfigError("--threads", "must be at least 1")
    _configure_logging(settings)
    _ping(connection)
    from worker.callbacks.dispatcher import run_dispatchers

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    run_dispatchers(settings, connection, stop, threads=args.threads, burst=args.burst)
    return EXIT_OK


def _requeue_callbacks(args: argparse.Namespace, connection: Any) -> int:
    from worker.callbacks.requeue import CallbackRequeue, DeadQuery
    from worker.settings import read_audit_ttl_s

    query = DeadQuery(
        reason=args.reason,
        since=args.since,
        until=args.until,
        producer=args.producer,
        host=args.host,
    )
    if not args.event_ids and query.is_empty():
        raise ConfigError(
            "--requeue", "name dead callbacks' event ids, or give filters (--reason, --since...)"
        )
    _ping(connection)
    done = CallbackRequeue(connection, audit_ttl_s=read_audit_ttl_s()).requeue(
        args.event_ids, query, actor=args.by, why=args.why, dry_run=args.dry_run
    )
    for item in done:
        print(
            dumps_json(item.as_dict())
            if args.json
            else printable(
                f"{item.event_id}: {item.action}{' (dry run)' if item.dry_run else ''}"
                f" - {item.detail}"
            )
        )
    if not done:
        print("nothing matches", file=sys.stderr)
    return EXIT_OK if all(d.action != "refused" for d in done) else EXIT_REFUSED


def _require_web(command: str) -> None:
    """Refuse a web command clearly when the ``web`` extra is not installed."""
    from importlib.util import find_spec

    missing = [name for name in WEB_MODULES if find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"smsq {command}",
            f"needs the web extra, install smsq[web] ({', '.join(missing)} missing)",
        )


def _admin(args: argparse.Namespace) -> int:
    _require_web("admin")
    from worker.admin import serve
    from worker.settings import Settings

    settings = Settings.from_env()
    settings.require_admin()
    _configure_logging(settings)
    serve(settings, host=args.host, port=args.port)
    return EXIT_OK


def _gateway(args: argparse.Namespace) -> int:
    _require_web("gateway")
    from worker.gateway import serve
    from worker.logs import configure_logging
    from worker.settings import Settings

    settings = Settings.from_env()
    settings.require_gateway()
    secrets = [
        settings.api_key.reveal(),
        settings.admin_password.reveal(),
        settings.admin_session_secret.reveal(),
        settings.webhook_secret.reveal(),
        settings.callback_secret.reveal(),
    ]
    for account in settings.producers:
        secrets.append(account.api_key.reveal())
        if account.callback_secret is not None:
            secrets.append(account.callback_secret.reveal())
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=secrets)
    report_core_dumps()
    serve(settings, host=args.host, port=args.port)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    _require_web("demo")
    from worker.dev.demo import run_demo

    return run_demo()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
