"""Campaign files: ``smsq enqueue --file numbers.csv --text ... --key ...``."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import Workers
from worker.cli.campaign import BadLine, Campaign, campaign_requests
from worker.sandbox import SandboxProvider


def _escaped(raw: bytes) -> str:
    """What ``smsq enqueue --file`` reads from these bytes."""
    return raw.decode("utf-8", "surrogateescape")


def test_campaign_lines_become_requests_of_at_most_a_block() -> None:
    lines = ["phone,name", "0612345678,Ann", "", "0612345679", "0612345680,Bob", "0612345681,Cy"]

    out = list(
        campaign_requests(Campaign(key="c", text="Hi #param_1#", lane="bulk"), lines, block=2)
    )

    assert [o.line if isinstance(o, BadLine) else o["key"] for o in out] == [4, "c:1", "c:2"]
    bad = out[0]
    assert isinstance(bad, BadLine)
    assert (bad.error.field, bad.error.reason) == (
        "line 4",
        "text uses #param_1# but the line has 0 value(s) after the phone number",
    )
    first = out[1]
    assert isinstance(first, dict)
    assert first == {
        "key": "c:1",
        "text": "Hi #param_1#",
        "campaign": "c",
        "lane": "bulk",
        "to": [
            {"phone": "0612345678", "params": ["Ann"]},
            {"phone": "0612345680", "params": ["Bob"]},
        ],
    }


def test_campaign_file_is_sent_in_parts_once(
    store: MessageStore, sandbox: SandboxProvider, workers: Workers, tmp_path: Path
) -> None:
    """1,201 lines (a header, a landline, 1,199 mobiles) → one request of 1,200 recipients, of
    which 1,199 valid ones go out as three AllMySMS requests (500, 500, 199) with their own
    PARAM_1. Enqueuing the file again adds nothing."""
    numbers = [f"06{n:08d}" for n in range(30_000_000, 30_001_199)]
    file = tmp_path / "numbers.csv"
    file.write_text(
        "phone,first_name\n0140000000,Land\n"
        + "".join(f"{n},P{i}\n" for i, n in enumerate(numbers)),
        encoding="utf-8",
    )
    command = (
        "enqueue",
        "--file",
        str(file),
        "--text",
        "Bonjour #param_1#",
        "--key",
        "spring",
        "--lane",
        "bulk",
    )

    first = workers.smsq(*command)
    run = workers.run_burst()
    again = workers.smsq(*command)

    assert first.returncode == 0, first.stderr
    [answer] = [json.loads(line) for line in first.stdout.splitlines()]
    assert (answer["key"], answer["state"], answer["parts"]) == ("spring:1", "queued", 3)
    assert answer["refused_numbers"][0]["field"] == "to[0]"
    assert run.returncode == 0, run.log
    requests = sandbox.requests()
    assert sorted(len(r["data"]["SMS"]) for r in requests) == [199, 500, 500]
    sent = {sms["MOBILEPHONE"]: sms["PARAM_1"] for r in requests for sms in r["data"]["SMS"]}
    assert sent == {"33" + n[1:]: f"P{i}" for i, n in enumerate(numbers)}
    record = store.get("spring:1")
    assert record is not None
    assert (record.state, len(record.sms_ids), record.campaign_id is not None) == (
        State.SENT,
        1199,
        True,
    )
    assert json.loads(again.stdout)["duplicate"] is True
    assert len(sandbox.requests()) == 3


def test_a_bad_line_is_refused_by_number_and_the_lines_after_it_are_read() -> None:
    lines = [
        "0612345678,Ann\n",
        "0612345679,\udcff\udcfe\n",  # bytes 0xff 0xfe, read with surrogateescape
        "0612345680," + "x" * 200_000 + "\n",
        "0612345681,Bob\n",
    ]

    out = list(campaign_requests(Campaign(key="c", text="Hi #param_1#"), lines))

    assert [(o.line, str(o.error)) for o in out if isinstance(o, BadLine)] == [
        (2, "line 2: is not valid UTF-8"),
        (3, "line 3: is not a CSV line (field larger than field limit (131072))"),
    ]
    assert [o["to"] for o in out if isinstance(o, dict)] == [
        [{"phone": "0612345678", "params": ["Ann"]}, {"phone": "0612345681", "params": ["Bob"]}]
    ]


@given(st.lists(st.text(max_size=40) | st.binary(max_size=40).map(_escaped), max_size=8))
def test_any_lines_become_requests_or_numbered_refusals(lines: list[str]) -> None:
    for item in campaign_requests(Campaign(key="c", text="Hi #param_1#"), lines, block=3):
        if isinstance(item, BadLine):
            assert str(item.error).startswith(f"line {item.line}: ")
        else:
            assert 1 <= len(item["to"]) <= 3
            json.dumps(item, ensure_ascii=False).encode("utf-8")


def test_enqueue_refuses_unreadable_input_line_by_line(workers: Workers, tmp_path: Path) -> None:
    """Bytes that are not UTF-8, a 200,000-character cell, JSON nested 100,000 deep: each is
    refused by line number, and the good lines are enqueued."""
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_bytes(b"0612345678,Ann\n0612345679,\xff\xfe\n0612345680,Bob\n")
    json_file = tmp_path / "requests.jsonl"
    json_file.write_text(
        "[" * 100_000 + "\n" + json.dumps({"key": "ok", "text": "Hi", "to": ["0612345678"]}),
        encoding="utf-8",
    )

    campaign = workers.smsq(
        "enqueue", "--file", str(csv_file), "--text", "Hi #param_1#", "--key", "c"
    )
    requests = workers.smsq("enqueue", "--file", str(json_file))

    assert (campaign.returncode, requests.returncode) == (1, 1)
    assert [
        (a.get("key"), a.get("error")) for a in map(json.loads, campaign.stdout.splitlines())
    ] == [(None, {"field": "line 2", "reason": "is not valid UTF-8"}), ("c:1", None)]
    assert [json.loads(line).get("error") for line in requests.stdout.splitlines()] == [
        {"field": "line 1", "reason": "not valid JSON: nested too deeply"},
        None,
    ]
    assert "Traceback" not in campaign.stderr + requests.stderr
