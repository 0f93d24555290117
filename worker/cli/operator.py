"""Operator subcommands: ``smsq dlq …``, ``cancel``, ``pause``, ``resume``, ``stats``,
``workers``, ``audit``."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from datetime import datetime
from typing import Any

from producers import ProducerSettings, connect
from producers.durability import Barrier
from producers.errors import ConfigError
from producers.redis_errors import translate_redis_errors
from worker.cli.text import dumps_json, printable


EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def add_commands(sub: Any) -> None:
    """Register the operator subcommands on the ``smsq`` parser."""
    dlq = sub.add_parser("dlq", help="dead letters: terminal non-successes")
    actions = dlq.add_subparsers(required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="newest first, filtered")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=dlq_list)

    show = actions.add_parser("show", help="one dead letter and its message's history")
    show.add_argument("ref", help="message key or dead-letter id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=dlq_show)

    for name, handler, text in (
        ("requeue", dlq_requeue, "send again messages that were provably not sent"),
        ("purge", dlq_purge, "forget dead letters"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("refs", nargs="*", help="keys or dead-letter ids")
        _filters(action, prefix="all matching: ")
        action.add_argument("--dry-run", action="store_true", help="say what would happen")
        action.add_argument("--by", default=default_operator(), help="who decides (recorded)")
        action.add_argument("--why", default="", help="why (recorded in the audit stream)")
        action.add_argument("--json", action="store_true", help="one JSON object per line")
        action.set_defaults(handler=handler)

    resolve = actions.add_parser(
        "resolve",
        help="record whether unknown messages were sent",
        description="Settle unknown messages: by key, or every unknown dead letter the filters "
        "match (the filters of dlq list; --dry-run first to see which).",
    )
    resolve.add_argument("refs", nargs="*", help="message keys or dead-letter ids")
    _filters(resolve, prefix="all unknown messages matching: ")
    outcome = resolve.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--sent", action="store_true", help="it reached the recipients")
    outcome.add_argument("--not-sent", action="store_true", help="AllMySMS never sent it")
    resolve.add_argument("--why", required=True, help="how you know (recorded)")
    resolve.add_argument("--by", default=default_operator(), help="who decides (recorded)")
    resolve.add_argument("--dry-run", action="store_true", help="say what would happen")
    resolve.add_argument("--json", action="store_true", help="one JSON object per line")
    resolve.set_defaults(handler=dlq_resolve)

    cancel = sub.add_parser(
        "cancel",
        help="cancel queued or scheduled messages: they end cancelled, never sent",
        description="Cancel messages smsq still holds (queued, or the queued parts of a split "
        "message): each ends in the terminal state cancelled, with who and why in its history. "
        "A scheduled message (accepted by AllMySMS for a later DATE) is cancelled there first "
        "with deleteCampaign; only AllMySMS's OK makes it cancelled. Messages already sending "
        "or sent are refused with the reason.",
    )
    cancel.add_argument("keys", nargs="*", metavar="KEY", help="message keys")
    cancel.add_argument(
        "--campaign", help="also every queued or scheduled message of this campaign (exact name)"
    )
    cancel.add_argument(
        "--prefix",
        metavar="KEYPREFIX",
        help="also every queued or scheduled message whose key starts with this (a campaign "
        "file's KEY: requests)",
    )
    cancel.add_argument("--dry-run", action="store_true", help="say what would happen")
    cancel.add_argument("--by", default=default_operator(), help="who decides (recorded)")
    cancel.add_argument("--why", required=True, help="why (recorded in history and audit)")
    cancel.add_argument("--json", action="store_true", help="one JSON object per line")
    cancel.set_defaults(handler=cancel_messages)

    for name, handler, text in (
        ("pause", pause, "stop sending (all lanes, or one)"),
        ("resume", resume, "start sending again"),
    ):
        switch = sub.add_parser(name, help=text)
        switch.add_argument("lane", nargs="?", help="urgent, default or bulk (default: all)")
        switch.add_argument("--dry-run", action="store_true", help="say what would happen")
        switch.add_argument("--json", action="store_true", help="print JSON")
        if name == "pause":
            switch.add_argument(
                "--reason", default="paused by an operator", help="why (shown to everyone)"
            )
            switch.add_argument("--by", default=default_operator(), help="who pauses (recorded)")
        else:
            switch.add_argument("--by", default=default_operator(), help="who resumes (recorded)")
            switch.add_argument("--why", default="", help="why (recorded in the audit stream)")
        switch.set_defaults(handler=handler)

    campaign = sub.add_parser(
        "campaign", help="a campaign's progress: recipients by state, delivery, rate, end"
    )
    campaign.add_argument("name", help="the campaign name (a campaign file: its --key)")
    campaign.add_argument("--json", action="store_true", help="print JSON")
    campaign.set_defaults(handler=show_campaign)

    workers = sub.add_parser(
        "workers", help="worker processes: alive, stopped or dead in the last day, and their load"
    )
    workers.add_argument("--json", action="store_true", help="one JSON object per line")
    workers.set_defaults(handler=show_workers)

    stats = sub.add_parser("stats", help="lanes, depth, age, states, provider statuses, latency")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=show_stats)

    audit = sub.add_parser(
        "audit",
        help="operator actions: who did what, when, why, to how many",
        description="The audit stream, newest first: dead-letter decisions, pauses and "
        "resumes (by operators and by workers), erasures (smsq purge --phone). No phone "
        "number, no message text.",
    )
    audit.add_argument("--since", type=_moment, help="at or after (ISO-8601 with an offset)")
    audit.add_argument("--action", choices=_audit_actions(), help="only this action")
    audit.add_argument("--limit", type=_positive, default=100, help="at most this many (100)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.set_defaults(handler=show_audit)


def _filters(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument("--reason", help=f"{prefix}reason contains this text")
    parser.add_argument("--status", type=int, help=f"{prefix}AllMySMS status")
    parser.add_argument(
        "--lane", choices=["urgent", "default", "bulk"], help=f"{prefix}in this lane"
    )
    parser.add_argument("--since", type=_moment, help=f"{prefix}at or after (ISO-8601)")
    parser.add_argument("--until", type=_moment, help=f"{prefix}at or before (ISO-8601)")
    parser.add_argument("--campaign", help=f"{prefix}of this campaign (exact name)")
    parser.add_argument(
        "--kind",
        choices=["message", "job", "intake"],
        help=f"{prefix}a message's outcome, a refused job, or a refused intake entry",
    )
    parser.add_argument(
        "--state",
        choices=["rejected", "unknown", "expired", "failed", "refused"],
        help=f"{prefix}in this state",
    )


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a UTC offset, e.g. 2026-11-25T10:00:00+01:00")
    return moment


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number, at least 1")
    return int(text)


def _audit_actions() -> tuple[str, ...]:
    from worker.store.audit import ACTIONS

    return ACTIONS


def _audit_ttl_s() -> int:
    from worker.settings import read_audit_ttl_s

    return read_audit_ttl_s()


def default_operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _operator_ledger(by: str) -> tuple[ProducerSettings, Any, Any]:
    """Settings, a connection and a ledger whose history entries name operator ``by``."""
    from worker.store.ledger import Ledger

    settings = ProducerSettings.from_env()
    connection = connect(settings)
    ledger = Ledger(
        connection,
        ttl_s=settings.outcome_ttl_s,
        worker_name=f"operator {by}",
        barrier=Barrier.from_settings(settings),
    )
    return settings, connection, ledger


def _desk(by: str = "smsq") -> Any:
    from worker.store.deadletters import DeadLetterDesk

    settings, connection, ledger = _operator_ledger(by)
    return DeadLetterDesk(
        connection, ledger, ttl_s=settings.outcome_ttl_s, audit_ttl_s=_audit_ttl_s()
    )


def _query(args: argparse.Namespace) -> Any:
    from worker.store.deadletters import Query

    return Query(
        reason=args.reason,
        provider_status=args.status,
        lane=args.lane,
        since=args.since,
        until=args.until,
        campaign=args.campaign,
        kind=args.kind,
        state=args.state,
    )


def _outages() -> Any:
    """Redis outages as one clear error naming the address of ``REDIS_URL``."""
    from producers.redis_errors import url_address

    return translate_redis_errors(address=url_address(ProducerSettings.from_env()))


def _has_filters(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name) is not None
        for name in ("reason", "status", "lane", "since", "until", "campaign", "kind", "state")
    )


def dlq_list(args: argparse.Namespace) -> int:
    with _outages():
        rows = _desk().list(_query(args), limit=args.limit)
    if args.json:
        for letter, _ in rows:
            print(dumps_json(letter.as_dict()))
        return EXIT_OK
    from worker.cli.text import render_dead_letters

    print(render_dead_letters([letter for letter, _ in rows]))
    return EXIT_OK


def dlq_show(args: argparse.Namespace) -> int:
    with _outages():
        letter, record = _desk().show(args.ref)
    if letter is None and record is None:
        print(f"smsq: nothing found for {args.ref!r}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(
            dumps_json(
                {
                    "dead_letter": letter.as_dict() if letter else None,
                    "message": record.as_dict() if record else None,
                },
                indent=2,
            )
        )
        return EXIT_OK
    from worker.cli.text import render_dead_letter, render_dead_letters, render_status

    if letter and letter.kind != "message":
        print(render_dead_letter(letter))
    elif letter:
        print(render_dead_letters([letter]))
    if record:
        print(render_status(record))
    return EXIT_OK


def _bulk(args: argparse.Namespace, act: Any) -> int:
    desk = _desk(args.by)
    with _outages():
        refs = list(args.refs)
        if _has_filters(args):
            refs += [letter.ref for letter, _ in desk.list(_query(args), limit=100_000)]
        if not refs and not _has_filters(args):
            raise ConfigError("refs", "name keys or dead-letter ids, or give filters")
        decisions = act(desk, list(dict.fromkeys(refs)))
    return _print_decisions(decisions, as_json=args.json, nothing="nothing matches")


def _print_decisions(decisions: list[Any], *, as_json: bool, nothing: str) -> int:
    """One line (or JSON object) per decision; 1 if any was refused, 0 otherwise (also when
    there was none: ``nothing`` goes to stderr)."""
    for decision in decisions:
        print(
            dumps_json(decision.as_dict())
            if as_json
            else printable(
                f"{decision.ref}: {decision.action}{' (dry run)' if decision.dry_run else ''}"
                f" - {decision.detail}"
            )
        )
    if not decisions:
        print(nothing, file=sys.stderr)
    return EXIT_OK if all(d.action != "refused" for d in decisions) else EXIT_REFUSED


def dlq_requeue(args: argparse.Namespace) -> int:
    return _bulk(
        args,
        lambda desk, refs: desk.requeue_many(
            refs, actor=args.by, why=args.why, dry_run=args.dry_run
        ),
    )


def dlq_purge(args: argparse.Namespace) -> int:
    return _bulk(
        args,
        lambda desk, refs: desk.purge_many(refs, actor=args.by, why=args.why, dry_run=args.dry_run),
    )


def dlq_resolve(args: argparse.Namespace) -> int:
    if _has_filters(args):
        if args.state not in (None, "unknown"):
            raise ConfigError("--state", "resolve settles unknown messages only")
        args.state = "unknown"
    return _bulk(
        args,
        lambda desk, refs: desk.resolve_many(
            refs, sent=args.sent, actor=args.by, why=args.why, dry_run=args.dry_run
        ),
    )


def cancel_messages(args: argparse.Namespace) -> int:
    from worker.store.cancel import Canceller

    if not args.keys and args.campaign is None and args.prefix is None:
        print(
            "smsq cancel: name message keys, or give --campaign NAME or --prefix KEYPREFIX",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.prefix is not None and not args.prefix.strip():
        print("smsq cancel: --prefix must not be empty (it would match every key)", file=sys.stderr)
        return EXIT_USAGE
    if not args.why.strip():
        print("smsq cancel: --why must say why (it is recorded)", file=sys.stderr)
        return EXIT_USAGE
    _, connection, ledger = _operator_ledger(args.by)
    canceller = Canceller(connection, ledger, audit_ttl_s=_audit_ttl_s(), deleter=_allmysms_client)
    with _outages():
        refs = list(args.keys)
        if args.campaign is not None:
            refs += canceller.campaign_keys(args.campaign)
        if args.prefix is not None:
            refs += canceller.prefix_keys(args.prefix)
        decisions = canceller.cancel_many(refs, actor=args.by, why=args.why, dry_run=args.dry_run)
    where = " and ".join(
        text
        for text, given in (
            (f"in campaign {args.campaign!r}", args.campaign is not None),
            (f"with a key starting {args.prefix!r}", args.prefix is not None),
        )
        if given
    )
    return _print_decisions(
        decisions,
        as_json=args.json,
        nothing=f"nothing matches: no queued or scheduled message {where}",
    )


def _allmysms_client() -> Any:
    """The AllMySMS client of the ``ALLMYSMS_*`` settings, for deleteCampaign (made only when a
    scheduled message is met: cancelling queued ones needs no provider credentials)."""
    from worker.allmysms.client import AllMySmsClient
    from worker.settings import Settings

    settings = Settings.from_env()
    settings.require_credentials()
    return AllMySmsClient.from_settings(settings)


def _switch() -> Any:
    from worker.store.control import Switch

    settings = ProducerSettings.from_env()
    return Switch(
        connect(settings), audit_ttl_s=_audit_ttl_s(), barrier=Barrier.from_settings(settings)
    )


def pause(args: argparse.Namespace) -> int:
    from worker.store.control import lane_names

    try:
        lane = lane_names(args.lane)
    except ValueError:
        raise ConfigError("lane", "must be urgent, default, bulk or all") from None
    if args.dry_run:
        print(
            dumps_json({"paused": lane, "dry_run": True})
            if args.json
            else f"would pause {_lanes_text(lane)} (dry run)"
        )
        return EXIT_OK
    with _outages():
        done = _switch().pause(lane, reason=args.reason, by=args.by)
    print(
        dumps_json({"paused": done.lane, "reason": done.reason, "by": done.by})
        if args.json
        else printable(f"paused {_lanes_text(done.lane)}: {done.reason} (by {done.by})")
    )
    return EXIT_OK


def _lanes_text(lane: str) -> str:
    from worker.store.control import ALL_LANES

    return "all lanes" if lane == ALL_LANES else f"lane {lane}"


def _resumed_text(names: list[str], *, dry_run: bool) -> str:
    if not names:
        return "nothing was paused"
    verb = "would resume" if dry_run else "resumed"
    return f"{verb} {', '.join(_lanes_text(n) for n in names)}{' (dry run)' if dry_run else ''}"


def resume(args: argparse.Namespace) -> int:
    from worker.store.control import lane_names

    try:
        lane = None if args.lane is None else lane_names(args.lane)
    except ValueError:
        raise ConfigError("lane", "must be urgent, default, bulk or all") from None
    with _outages():
        switch = _switch()
        if args.dry_run:
            names = sorted(p.lane for p in switch.paused() if lane in (None, p.lane))
            print(
                dumps_json({"resumed": names, "dry_run": True})
                if args.json
                else _resumed_text(names, dry_run=True)
            )
            return EXIT_OK
        names = switch.resume(lane, by=args.by, why=args.why)
    print(dumps_json({"resumed": names}) if args.json else _resumed_text(names, dry_run=False))
    return EXIT_OK


def show_stats(args: argparse.Namespace) -> int:
    from worker.store.stats import collect

    with _outages():
        stats = collect(connect(ProducerSettings.from_env()))
    if args.json:
        print(dumps_json(stats.as_dict(), indent=2))
        return EXIT_OK
    from worker.cli.text import render_stats

    print(render_stats(stats))
    return EXIT_OK


def show_campaign(args: argparse.Namespace) -> int:
    from worker.store.campaigns import progress

    with _outages():
        view = progress(connect(ProducerSettings.from_env()), args.name)
    if not view.messages:
        print(f"smsq campaign: no message in campaign {printable(args.name)!r}", file=sys.stderr)
        return EXIT_REFUSED
    data = view.as_dict()
    if args.json:
        print(dumps_json(data, indent=2))
        return EXIT_OK
    share = view.done / view.recipients if view.recipients else 1.0
    bar = "#" * round(share * 30)
    states = ", ".join(f"{n} {s}" for s, n in data["states"].items())
    size = f"{view.messages} message(s), {view.recipients} recipient(s)"
    print(f"campaign {printable(args.name)}: {size}")
    print(f"[{bar:<30}] {share:.0%} gone through: {states}")
    print(
        f"delivered {view.delivered}, delivery failed {view.delivery_failed}, "
        f"opted out {view.opted_out}"
    )
    rate = data["rate_per_min"]
    print(
        f"started {view.started_at or '-'}; "
        + (
            f"{rate} recipients/min; ends about {data['eta']}"
            if rate and data["eta"]
            else f"{rate} recipients/min"
            if rate
            else "nothing gone yet"
        )
    )
    return EXIT_OK


def show_workers(args: argparse.Namespace) -> int:
    import time

    from worker.store.workers import board

    with _outages():
        views = board(connect(ProducerSettings.from_env()))
    now = time.time()
    if args.json:
        for view in views:
            print(dumps_json(view.as_dict(now)))
        return EXIT_OK
    if not views:
        print("no worker seen in the last day")
        return EXIT_OK
    print(f"{'NAME':<40} {'STATE':<8} {'LANES':<20} {'BUSY':>9} {'SENT':>8} {'LAST BEAT':>10}")
    for view in views:
        data = view.as_dict(now)
        busy = f"{view.busy if view.busy is not None else '?'}/{view.slots or '?'}"
        age = "-" if data["last_beat_age_s"] is None else f"{data['last_beat_age_s']:.0f}s ago"
        print(
            f"{printable(view.name)[:40]:<40} {view.state:<8} "
            f"{printable(','.join(view.lanes))[:20]:<20} {busy:>9} {view.sent or 0:>8} {age:>10}"
        )
    return EXIT_OK


def show_audit(args: argparse.Namespace) -> int:
    from worker.store.audit import AuditLog

    with _outages():
        entries = AuditLog(connect(ProducerSettings.from_env()), ttl_s=_audit_ttl_s()).entries(
            since=args.since, action=args.action, limit=args.limit
        )
    if args.json:
        for entry in entries:
            print(dumps_json(entry.as_dict()))
        return EXIT_OK
    from worker.cli.text import render_audit

    print(render_audit(entries))
    return EXIT_OK
