"""What each ``smsq`` subcommand reads from the environment, shown at the end of its ``--help``.

Names ending in ``*`` stand for every variable of ``.env.example`` with that prefix
(``tests/test_cli_help.py`` checks each one names at least one real variable).
"""

from __future__ import annotations

import argparse


_STORE = ("REDIS_URL", "SMSQ_DEFAULT_COUNTRY", "SMSQ_OUTCOME_TTL_S", "SMSQ_KEY_MEMORY_S")
_PRODUCER = (*_STORE, "SMSQ_CHUNK_RECIPIENTS")
_SERVER = ("SMSQ_TRUSTED_PROXIES", "SMSQ_SERVER_*", "SMSQ_LOG_*")
_OPERATOR = ("REDIS_URL", "SMSQ_OUTCOME_TTL_S", "SMSQ_AUDIT_TTL_S")

READS: dict[str, tuple[str, ...]] = {
    "worker": (
        *_PRODUCER,
        "ALLMYSMS_LOGIN",
        "ALLMYSMS_API_KEY",
        "ALLMYSMS_BASE_URL",
        "SMSQ_HTTP_*",
        "SMSQ_SEND_*",
        "SMSQ_RETRY_*",
        "SMSQ_IDLE_WAIT_S",
        "SMSQ_WORKER_DEAD_AFTER_S",
        "SMSQ_RECONCILE_INTERVAL_S",
        "SMSQ_POLL_*",
        "SMSQ_CREDITS_*",
        "SMSQ_LATER_RETRY_*",
        "SMSQ_MARKETING_*",
        "SMSQ_OPTOUT_*",
        "SMSQ_TRANSLITERATE",
        "SMSQ_BLACKLIST_POLL_INTERVAL_S",
        "SMSQ_REPLIES_TTL_S",
        "SMSQ_LONG_WAIT_S",
        "SMSQ_INTAKE_MAX_BYTES",
        "SMSQ_RATE_LIMIT_*",
        "SMSQ_AUDIT_TTL_S",
        "SMSQ_LOG_*",
    ),
    "enqueue": (
        *_PRODUCER,
        "ALLMYSMS_LOGIN",
        "ALLMYSMS_API_KEY",
        "ALLMYSMS_BASE_URL",
        "SMSQ_HTTP_*",
        "SMSQ_MARKETING_STOP_*",
        "SMSQ_OPTOUT_KEY",
        "SMSQ_OPTOUT_TRANSACTIONAL",
        "SMSQ_TRANSLITERATE",
    ),
    "status": ("REDIS_URL", "SMSQ_RECONCILE_INTERVAL_S"),
    "purge": ("REDIS_URL", "SMSQ_DEFAULT_COUNTRY", "SMSQ_AUDIT_TTL_S"),
    "sandbox": ("ALLMYSMS_LOGIN", "ALLMYSMS_API_KEY"),
    "admin": ("REDIS_URL", "SMSQ_ADMIN_*", "SMSQ_AUDIT_TTL_S", "SMSQ_LONG_WAIT_S", *_SERVER),
    "gateway": (
        *_PRODUCER,
        "ALLMYSMS_LOGIN",
        "ALLMYSMS_API_KEY",
        "ALLMYSMS_BASE_URL",
        "SMSQ_HTTP_*",
        "SMSQ_PRODUCERS",
        "SMSQ_GATEWAY_*",
        "SMSQ_WEBHOOK_SECRET",
        "SMSQ_CALLBACK_ALLOWED_*",
        "SMSQ_MARKETING_STOP_*",
        "SMSQ_OPTOUT_*",
        "SMSQ_TRANSLITERATE",
        "SMSQ_REPLIES_TTL_S",
        "PORT",
        *_SERVER,
    ),
    "replies": ("REDIS_URL",),
    "callbacks": (
        "REDIS_URL",
        "SMSQ_PRODUCERS",
        "SMSQ_CALLBACK_*",
        "SMSQ_OUTCOME_TTL_S",
        "SMSQ_AUDIT_TTL_S",
        "SMSQ_LOG_*",
    ),
    "demo": (),
    "acl": (),
    "dlq list": _OPERATOR,
    "dlq show": _OPERATOR,
    "dlq requeue": _OPERATOR,
    "dlq purge": _OPERATOR,
    "dlq resolve": _OPERATOR,
    "cancel": _OPERATOR,
    "export": ("REDIS_URL", "SMSQ_DEFAULT_COUNTRY", "SMSQ_OPTOUT_KEY", "SMSQ_AUDIT_TTL_S"),
    "optout add": ("REDIS_URL", "SMSQ_DEFAULT_COUNTRY", "SMSQ_OPTOUT_KEY", "SMSQ_AUDIT_TTL_S"),
    "optout remove": ("REDIS_URL", "SMSQ_DEFAULT_COUNTRY", "SMSQ_OPTOUT_KEY", "SMSQ_AUDIT_TTL_S"),
    "optout check": ("REDIS_URL", "SMSQ_DEFAULT_COUNTRY", "SMSQ_OPTOUT_KEY"),
    "optout list": ("REDIS_URL",),
    "pause": ("REDIS_URL", "SMSQ_AUDIT_TTL_S"),
    "resume": ("REDIS_URL", "SMSQ_AUDIT_TTL_S"),
    "stats": ("REDIS_URL",),
    "workers": ("REDIS_URL",),
    "campaign": ("REDIS_URL",),
    "audit": ("REDIS_URL", "SMSQ_AUDIT_TTL_S"),
}
NOTHING = {
    "demo": "none needed: it starts its own redis-server, sandbox and worker on free ports",
    "acl": "none: it only prints (pipe the output into redis-cli as an admin user)",
}


def epilog(command: str) -> str:
    names = READS[command]
    if not names:
        return f"environment: {NOTHING[command]}"
    return f"environment: {', '.join(names)} (see .env.example)"


def annotate(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give every subcommand under ``parser`` the epilog naming what it reads."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                command = f"{path} {name}".strip()
                if command in READS:
                    child.epilog = epilog(command)
                annotate(child, command)


def commands(parser: argparse.ArgumentParser, path: str = "") -> list[str]:
    """Every leaf subcommand under ``parser``, as ``"dlq list"``."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                command = f"{path} {name}".strip()
                below = commands(child, command)
                found.extend(below or [command])
    return found
