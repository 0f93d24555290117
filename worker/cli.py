"""``smsq`` command line: the only place that reads argv; imports lazily per subcommand."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from producers.errors import ConfigError, RedisUnavailableError


EXIT_OK = 0
EXIT_REFUSED = 1
"""Some input was refused, or what was asked for does not exist."""
EXIT_CONFIG = 2
"""Configuration or infrastructure problem (settings, Redis)."""
ENQUEUE_BATCH = 1000


def main(argv: Sequence[str] | None = None) -> int:
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
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsq", description="Durable SMS sending via AllMySMS.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", help="run worker processes")
    worker.add_argument("--burst", action="store_true", help="exit when the lanes are empty")
    worker.add_argument("--lanes", default="urgent,default,bulk",
                        help="lanes to drain, in any order; urgent is always drained first")
    worker.add_argument("--processes", type=int, default=1, help="worker processes to supervise")
    worker.set_defaults(handler=_worker)

    enqueue = sub.add_parser("enqueue", help="enqueue JSON requests from stdin or a file")
    enqueue.add_argument("--file", help="read from this file instead of stdin")
    enqueue.set_defaults(handler=_enqueue)

    status = sub.add_parser("status", help="show a message's state and history")
    status.add_argument("key", help="the idempotency key given at enqueue")
    status.add_argument("--json", action="store_true", help="print the record as JSON")
    status.set_defaults(handler=_status)

    dlq = sub.add_parser("dlq", help="dead letters: terminal non-successes")
    dlq_sub = dlq.add_subparsers(required=True, metavar="ACTION")
    dlq_list = dlq_sub.add_parser("list", help="newest first")
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq_list.add_argument("--limit", type=int, default=100)
    dlq_list.set_defaults(handler=_dlq_list)

    purge = sub.add_parser("purge", help="erase one person's data everywhere (GDPR)")
    purge.add_argument("--phone", required=True, help="the person's phone number, any format")
    purge.add_argument("--dry-run", action="store_true", help="show what would be erased")
    purge.set_defaults(handler=_purge)

    sandbox = sub.add_parser("sandbox", help="serve a local AllMySMS stand-in")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8025)
    sandbox.add_argument("--latency-ms", type=int, default=0)
    sandbox.set_defaults(handler=_sandbox)

    demo = sub.add_parser("demo", help="run everything locally end to end and print outcomes")
    demo.set_defaults(handler=_demo)
    return parser


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
        from worker.supervisor import supervise

        return supervise(args.processes, burst=args.burst, lanes=args.lanes)
    from worker.runner import build_worker
    from worker.runtime import build_runtime, install, uninstall

    runtime = build_runtime(settings)
    _ping(runtime.redis)
    install(runtime)
    try:
        build_worker(runtime, lanes).work(burst=args.burst, logging_level=settings.log_level)
    finally:
        uninstall()
    return EXIT_OK


def _configure_logging(settings: Any) -> None:
    from worker.logs import configure_logging

    configure_logging(level=settings.log_level, fmt=settings.log_format,
                      secrets=[settings.api_key.reveal()])


def _ping(connection: Any) -> None:
    from producers.redis_errors import translate_redis_errors

    with translate_redis_errors():
        connection.ping()


def _enqueue(args: argparse.Namespace) -> int:
    from producers import ProducerSettings, connect
    from producers.enqueue import Producer, Refused
    from producers.errors import InvalidRequestError

    settings = ProducerSettings.from_env()
    producer = Producer(connect(settings), settings)
    stream: IO[str] = open(args.file, encoding="utf-8") if args.file else sys.stdin  # noqa: SIM115
    all_ok = True
    batch: list[Any] = []

    def flush() -> None:
        nonlocal all_ok
        # Lines that were not JSON are answered in place, in input order.
        valid = [item for item in batch if not isinstance(item, Refused)]
        results = iter(producer.enqueue_many(valid, source="cli"))
        for item in batch:
            result = item if isinstance(item, Refused) else next(results)
            all_ok &= not isinstance(result, Refused)
            print(json.dumps(result.as_dict(), ensure_ascii=False), flush=False)
        sys.stdout.flush()
        batch.clear()

    try:
        for number, obj in _read_requests(stream):
            if obj is _NOT_JSON:
                batch.append(Refused(None, InvalidRequestError(f"line {number}",
                                                               "not valid JSON")))
            else:
                batch.append(obj)
            if len(batch) >= ENQUEUE_BATCH:
                flush()
        flush()
    finally:
        if args.file:
            stream.close()
    return EXIT_OK if all_ok else EXIT_REFUSED


_NOT_JSON = object()


def _read_requests(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """One JSON object or array for the whole input, or else one JSON value per line."""
    text = stream.read()
    try:
        whole = json.loads(text)
    except ValueError:
        whole = _NOT_JSON
    if whole is not _NOT_JSON:
        items = whole if isinstance(whole, list) else [whole]
        yield from enumerate(items, start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError:
            yield number, _NOT_JSON


def _status(args: argparse.Namespace) -> int:
    from producers import MessageStore, ProducerSettings, connect

    record = MessageStore(connect(ProducerSettings.from_env())).get(args.key)
    if record is None:
        print(f"smsq: no message with key {args.key!r}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps(record.as_dict(), ensure_ascii=False, indent=2))
        return EXIT_OK
    from worker.views import render_status

    print(render_status(record))
    return EXIT_OK


def _dlq_list(args: argparse.Namespace) -> int:
    from producers import MessageStore, ProducerSettings, connect

    settings = ProducerSettings.from_env()
    letters = MessageStore(connect(settings)).dead_letters(limit=args.limit,
                                                           ttl_s=settings.outcome_ttl_s)
    if args.json:
        for letter in letters:
            print(json.dumps(letter.as_dict(), ensure_ascii=False))
        return EXIT_OK
    from worker.views import render_dead_letters

    print(render_dead_letters(letters))
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    from producers import ProducerSettings, connect
    from producers.phones import PhoneError
    from producers.redis_errors import translate_redis_errors
    from worker.purge import Purger

    settings = ProducerSettings.from_env()
    try:
        with translate_redis_errors():
            report = Purger(connect(settings), default_region=settings.default_country).purge(
                args.phone, dry_run=args.dry_run)
    except PhoneError as exc:
        print(f"smsq: --phone: {exc.reason}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps({"dry_run": args.dry_run, **report.as_dict()}, ensure_ascii=False))
    return EXIT_OK


def _sandbox(args: argparse.Namespace) -> int:
    import os

    from worker.sandbox import serve

    serve(host=args.host, port=args.port, latency_ms=args.latency_ms,
          login=os.environ.get("ALLMYSMS_LOGIN") or "demo",
          api_key=os.environ.get("ALLMYSMS_API_KEY") or "sandbox-key")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
