"""Producer- and sender-controlled text reaches the operator's terminal escaped: keys, reasons
and SMS reply texts can hold ESC sequences, carriage returns and bidi overrides."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from redis import Redis

from producers.enqueue import Producer
from producers.store import MessageStore
from tests.helpers.processes import Workers
from worker.cli.text import dumps_json, printable
from worker.sandbox import SandboxProvider
from worker.store.receipts import ReceiptBook, parse_reply


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\rok\u202e\x9b\x7f"
"""Retitle the terminal, clear it, return to column 0, reverse the text, a C1 CSI, a DEL."""
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\x0dok\\u202e\\x9b\\x7f"
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\u202e", "\x9b", "\x7f")


def unescape(shown: str) -> str:
    """Read an escaped form back with the standard library's own Python-escape decoder."""
    return shown.encode("latin-1", "backslashreplace").decode("unicode_escape")


def unprintable(text: str) -> list[str]:
    return [c for c in text if not (c.isprintable() or c == "\n")]


def test_printable_escapes_exactly_the_controls() -> None:
    assert printable(HOSTILE) == SHOWN
    assert printable("Oui, merci é \U0001f600 a\\x1b") == "Oui, merci é \U0001f600 a\\\\x1b"
    assert (
        printable("\u2028\u00a0\ufeff\U000e0001\ud800") == "\\u2028\\xa0\\ufeff\\U000e0001\\ud800"
    )
    assert printable(42) == "42"


@given(st.text())
def test_any_text_escapes_to_printable_text_that_reads_back(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable() or shown == ""
    assert unescape(shown) == text
    # Printable text other than the backslash is shown as it is.
    if "\\" not in text and text.isprintable():
        assert shown == text


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=10,
    ),
    st.sampled_from([None, 2]),
)
def test_any_json_stays_valid_and_shows_no_control(data: object, indent: int | None) -> None:
    text = dumps_json(data, indent=indent)
    assert json.loads(text) == data
    assert unprintable(text) == []
    if indent is None:
        assert "\n" not in text


def test_status_dlq_and_replies_show_hostile_text_escaped(
    producer: Producer,
    sandbox: SandboxProvider,
    workers: Workers,
    store: MessageStore,
    redis: Redis,
) -> None:
    """End to end: a hostile key sent, another rejected, a hostile reply; every view escapes."""
    sandbox.add_fault({"action": "status", "status": 114, "match": {"campaign": "broke"}})
    sent_key, dead_key = f"sent{HOSTILE}", f"dead{HOSTILE}"
    producer.enqueue_many(
        [
            {"key": sent_key, "text": "Hi", "to": ["0612345678"]},
            {"key": dead_key, "text": "Hi", "to": ["0612345678"], "campaign": "broke"},
        ]
    )
    assert workers.run_burst().returncode == 0
    record = store.get(sent_key)
    assert record is not None
    [sms_id] = record.sms_ids.values()
    book = ReceiptBook(redis)
    reply = parse_reply({"smsMoId": "mo-1", "smsId": sms_id, "message": f"STOP{HOSTILE}"})
    assert book.store_reply(reply, event_id="e-1").outcome == "stored"

    status = workers.smsq("status", sent_key)
    dlq = workers.smsq("dlq", "list")
    replies = workers.smsq("replies", sent_key)
    as_json = [
        workers.smsq("status", sent_key, "--json"),
        workers.smsq("dlq", "list", "--json"),
        workers.smsq("replies", sent_key, "--json"),
    ]

    for answer in (status, dlq, replies, *as_json):
        assert answer.returncode == 0, answer.stderr
        assert [c for c in RAW_CONTROLS if c in answer.stdout] == []
        assert unprintable(answer.stdout) == []
    assert f"key:        sent{SHOWN}\n" in status.stdout
    assert f"  dead{SHOWN}  " in dlq.stdout
    assert replies.stdout.endswith(f"STOP{SHOWN}\n")
    assert json.loads(as_json[0].stdout)["key"] == sent_key
    assert [json.loads(line)["key"] for line in as_json[1].stdout.splitlines()] == [dead_key]
    assert [r["message"] for r in json.loads(as_json[2].stdout)] == [f"STOP{HOSTILE}"]
