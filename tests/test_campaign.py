"""Campaign files: ``smsq enqueue --file numbers.csv --text ... --key ...``."""

from __future__ import annotations

import json
from pathlib import Path

from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import Workers
from worker.cli.campaign import BadLine, Campaign, campaign_requests
from worker.sandbox import SandboxProvider


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
