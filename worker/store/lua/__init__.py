"""The worker's Lua scripts: one ``<module>_<action>.lua`` file each, read by :func:`load`.

Every script opens with a comment header (what it does, then one ``-- KEYS[n] name: ...`` or
``-- ARGV[n] name: ...`` line per key and argument it reads) and names them once at the top of
its body (``local message = KEYS[1]``); the rest of the body uses the names.

Two things are resolved once, when a script is loaded:

* ``-- include: lib/<fragment>.lua`` on a line of its own is replaced by that fragment's text
  (recursively). Each fragment is included at most once per script: a second include of the
  same fragment is dropped. A fragment's header names the includer's locals it relies on.
* ``{{NAME}}`` placeholders are replaced by :data:`PLACEHOLDERS` (the key prefixes and
  contract values smsq shares with the producers, so no ``.lua`` file spells a key itself) and
  by the caller's own ``values``. A placeholder without a value, a caller's value the script
  does not use, a caller's value named like a shared one, and anything else left between
  ``{{`` and ``}}`` all raise :class:`LuaScriptError`. So ``{{`` never appears in Lua code
  (write ``{ {`` for a table in a table).

Values are inlined as they are, so they must be safe in a Lua string literal or as a number:

* a plain value holds only letters, digits and ``_ . : -`` (key prefixes, event names,
  counts);
* a value whose name ends in ``_JSON`` is JSON text meant for ``cjson.decode('{{X_JSON}}')``:
  it must parse, and hold no ``'``, backslash, line break or ``]]``.

Anything else raises :class:`UnsafeValueError`. Files are read with :mod:`importlib.resources`,
so the scripts work from an installed wheel.
"""

from __future__ import annotations

import functools
import json
import re
from importlib.resources import files
from typing import TYPE_CHECKING

from producers import keys
from producers.contract import EVENT_FINAL, EVENT_RECEIPT, EVENT_REPLY
from producers.errors import SmsqError
from producers.states import TERMINAL_STATES


if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PLACEHOLDERS: dict[str, str] = {
    "RQ_JOB_PREFIX": keys.RQ_JOB_PREFIX,
    "RQ_QUEUE_PREFIX": keys.RQ_QUEUE_PREFIX,
    "JOB_ID_PREFIX": keys.JOB_ID_PREFIX,
    "LANE_QUEUE_PREFIX": keys.LANE_QUEUE_PREFIX,
    "MESSAGE_PREFIX": keys.MESSAGE_PREFIX,
    "SMS_ID_PREFIX": keys.SMS_ID_PREFIX,
    "CAMPAIGN_PREFIX": keys.CAMPAIGN_PREFIX,
    "AWAITING_RECEIPTS": keys.AWAITING_RECEIPTS,
    "RECEIPTS_PREFIX": keys.RECEIPTS_PREFIX,
    "REPLIES_PREFIX": keys.REPLIES_PREFIX,
    "TOMBSTONE_PREFIX": keys.TOMBSTONE_PREFIX,
    "WAKE_TOKENS_LAST": str(keys.WAKE_TOKENS_MAX - 1),
    "EVENT_FINAL": EVENT_FINAL,
    "EVENT_RECEIPT": EVENT_RECEIPT,
    "EVENT_REPLY": EVENT_REPLY,
    "TERMINAL_STATES_JSON": json.dumps({s.value: True for s in sorted(TERMINAL_STATES)}),
}
"""Values every script may use: key prefixes from :mod:`producers.keys`, the index of the last
wake token kept (``LTRIM key 0 {{WAKE_TOKENS_LAST}}``), callback event names, and the terminal
states as a JSON object (state → true)."""

SCRIPT_NAME = re.compile(r"[a-z][a-z0-9_]*")
"""A script's name: its file name without ``.lua`` (``ledger_claim``)."""
FRAGMENT_PATH = re.compile(r"lib/[a-z][a-z0-9_]*\.lua")
INCLUDE_LINE = re.compile(r"^-- include:[ \t]*(\S*)[ \t]*$", re.MULTILINE)
PLACEHOLDER = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:-]+")
JSON_SUFFIX = "_JSON"
UNSAFE_IN_JSON = ("'", "\\", "\n", "\r", "]]")
SAFE_VALUES = (
    "plain values hold only letters, digits and _ . : -; *_JSON values are JSON "
    "without ', \\, a line break or ]]"
)


class LuaScriptError(SmsqError, KeyError):
    """A script, fragment, placeholder or value is missing, unknown or unused; the message names
    it and the file."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnsafeValueError(SmsqError, ValueError):
    """A value cannot be inlined into Lua source safely."""


@functools.cache
def load(name: str, **values: str) -> str:
    """The final source of ``<name>.lua``: fragments included, placeholders replaced.

    Args:
        name: the script's file name without ``.lua`` (``ledger_claim``).
        values: the script's own placeholder values (``FINAL_STATUSES_JSON='{"1": true}'``).

    Raises:
        LuaScriptError: unknown script or fragment, a placeholder without a value, a value not
            used, or a value named like one of :data:`PLACEHOLDERS`.
        UnsafeValueError: a value that cannot be inlined safely.
    """
    if not SCRIPT_NAME.fullmatch(name):
        raise LuaScriptError(f"{name!r} is not a script name (lowercase letters, digits, _)")
    script = f"{name}.lua"
    shadowing = sorted(set(values) & set(PLACEHOLDERS))
    if shadowing:
        raise LuaScriptError(f"{script}: {{{{{shadowing[0]}}}}} is shared, it cannot be passed")
    merged = {**PLACEHOLDERS, **values}
    for placeholder, value in merged.items():
        check_value(script, placeholder, value)
    used: set[str] = set()
    source = _expand(script, script, merged, used, included=set())
    unused = sorted(set(values) - used)
    if unused:
        raise LuaScriptError(f"{script}: value {unused[0]} is not used by the script")
    return source


def check_value(script: str, placeholder: str, value: object) -> None:
    """Refuse a value that is not safe to inline (see the module's docstring).

    Raises:
        UnsafeValueError: names the placeholder, the script and the value.
    """
    if isinstance(value, str) and (
        _safe_json(value)
        if placeholder.endswith(JSON_SUFFIX)
        else PLAIN_VALUE.fullmatch(value) is not None
    ):
        return
    raise UnsafeValueError(
        f"{script}: unsafe value for {{{{{placeholder}}}}}: {value!r} ({SAFE_VALUES})"
    )


def _safe_json(value: str) -> bool:
    if any(bad in value for bad in UNSAFE_IN_JSON):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _expand(
    path: str, script: str, values: dict[str, str], used: set[str], *, included: set[str]
) -> str:
    """The text of ``path`` with its placeholders replaced and its includes expanded."""
    where = script if path == script else f"{path} (included by {script})"
    text = _substitute(_read(path, script), where, values, used)

    def include(match: re.Match[str]) -> str:
        fragment = match.group(1)
        if not FRAGMENT_PATH.fullmatch(fragment):
            raise LuaScriptError(
                f"{where}: bad include {match.group(0)!r} (expected '-- include: lib/<name>.lua')"
            )
        if fragment in included:
            return f"-- {fragment}: included above"
        included.add(fragment)
        return _expand(fragment, script, values, used, included=included).rstrip("\n")

    return INCLUDE_LINE.sub(include, text)


def _substitute(text: str, where: str, values: dict[str, str], used: set[str]) -> str:
    """Replace every ``{{NAME}}`` of one file; anything else between braces is an error."""
    leftover = PLACEHOLDER.sub("", text)
    if "{{" in leftover:
        start = leftover.find("{{")
        raise LuaScriptError(f"{where}: malformed placeholder {leftover[start : start + 20]!r}")

    def value(match: re.Match[str]) -> str:
        placeholder = match.group(1)
        if placeholder not in values:
            raise LuaScriptError(f"{where}: no value for {{{{{placeholder}}}}}")
        used.add(placeholder)
        return values[placeholder]

    return PLACEHOLDER.sub(value, text)


def _read(path: str, script: str) -> str:
    """One file of this package, by its ``/``-separated path."""
    resource: Traversable = files(__name__)
    for part in path.split("/"):
        resource = resource.joinpath(part)
    if not resource.is_file():
        if path == script:
            raise LuaScriptError(f"no Lua script {script} in {__name__}")
        raise LuaScriptError(f"{script} includes {path}, which does not exist")
    return resource.read_text(encoding="utf-8")
