"""``smsq optout add|remove|check|list``: the suppression list by hand (producers/optouts.py).

Numbers are read as at enqueue (``SMSQ_DEFAULT_COUNTRY`` for national ones) and never printed
back in clear: ``list`` shows each entry's keyed hash, date, source and comment; ``check`` says
whether one number is on it. Every change is one audit entry with no number in it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from producers import ProducerSettings, connect
from producers.durability import Barrier
from producers.errors import PhoneError
from producers.optouts import OptOuts, Source
from producers.phones import normalise_phone
from worker.cli.operator import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, _outages, default_operator
from worker.cli.text import dumps_json


def add_commands(sub: Any) -> None:
    """Register ``smsq optout`` on the ``smsq`` parser."""
    optout = sub.add_parser(
        "optout",
        help="the suppression list: numbers no marketing message goes to",
        description="Numbers that opted out (STOP replies, AllMySMS's blacklist, operators, "
        "producers). Marketing messages never go to them, also when already queued; "
        "transactional ones do unless SMSQ_OPTOUT_TRANSACTIONAL=1. Stored as keyed hashes.",
    )
    actions = optout.add_subparsers(required=True, metavar="ACTION")
    for name, text in (
        ("add", "put numbers on the list (the person asked to stop)"),
        ("remove", "take numbers off the list (the person consented again)"),
        ("check", "say whether each number is on the list"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("phones", nargs="+", metavar="PHONE", help="numbers, any format")
        if name != "check":
            action.add_argument("--by", default=default_operator(), help="who (recorded)")
            action.add_argument("--why", required=True, help="why (recorded in the audit)")
        action.add_argument("--json", action="store_true", help="one JSON object per line")
        action.set_defaults(handler=_change if name != "check" else _check, action=name)
    listing = actions.add_parser("list", help="every entry: hash, date, source (no numbers)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)


def _optouts() -> tuple[OptOuts, ProducerSettings]:
    settings = ProducerSettings.from_env()
    connection = connect(settings)
    barrier = Barrier.from_settings(settings)
    return OptOuts(connection, key=settings.optout_key, barrier=barrier), settings


def _numbers(phones: list[str], region: str) -> list[str] | None:
    numbers = []
    for index, phone in enumerate(phones):
        try:
            numbers.append(normalise_phone(phone, region))
        except PhoneError as exc:
            print(f"smsq optout: PHONE {index + 1}: {exc.reason}", file=sys.stderr)
            return None
    return numbers


def _change(args: argparse.Namespace) -> int:
    from worker.settings import read_audit_ttl_s
    from worker.store.audit import OPTOUT_ADD, OPTOUT_REMOVE, AuditEntry, AuditLog

    if not args.why.strip():
        print("smsq optout: --why must say why (it is recorded)", file=sys.stderr)
        return EXIT_USAGE
    optouts, settings = _optouts()
    numbers = _numbers(args.phones, settings.default_country)
    if numbers is None:
        return EXIT_USAGE
    changed = 0
    with _outages():
        for number in numbers:
            if args.action == "add":
                done = optouts.add(number, source=Source.MANUAL, by=args.by, comment=args.why)
            else:
                done = optouts.remove(number)
            changed += done
            _print(
                args, optouts.digest(number), "added" if args.action == "add" else "removed", done
            )
        if changed:
            audit = AuditLog(optouts.connection, ttl_s=read_audit_ttl_s())
            audit.record(
                AuditEntry(
                    action=OPTOUT_ADD if args.action == "add" else OPTOUT_REMOVE,
                    actor=args.by,
                    why=args.why,
                    count=changed,
                )
            )
    return EXIT_OK


def _print(args: argparse.Namespace, digest: str, done_word: str, done: bool) -> None:
    outcome = done_word if done else ("already there" if done_word == "added" else "not there")
    if args.json:
        print(dumps_json({"digest": digest, "outcome": outcome}))
    else:
        print(f"{digest}  {outcome}")


def _check(args: argparse.Namespace) -> int:
    optouts, settings = _optouts()
    numbers = _numbers(args.phones, settings.default_country)
    if numbers is None:
        return EXIT_USAGE
    found = 0
    with _outages():
        for number in numbers:
            entry = optouts.get(number)
            found += entry is not None
            data = {"digest": optouts.digest(number), "opted_out": entry is not None}
            if entry is not None:
                data |= {"at": entry.at, "source": entry.source}
            if args.json:
                print(dumps_json(data))
            elif entry is None:
                print(f"{data['digest']}  not on the list")
            else:
                print(f"{data['digest']}  opted out {entry.at} ({entry.source})")
    return EXIT_OK if found == len(numbers) else EXIT_REFUSED


def _list(args: argparse.Namespace) -> int:
    optouts, _ = _optouts()
    with _outages():
        for entry in optouts.entries():
            if args.json:
                print(dumps_json(entry.as_dict()))
            else:
                print(f"{entry.digest}  {entry.at}  {entry.source}  {entry.comment}".rstrip())
    return EXIT_OK
