"""``smsq enqueue --dry-run`` and ``--show-cost``: the real command against the sandbox and the
test Redis; a dry run writes nothing to Redis and asks only simulateCampaign."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from redis import Redis

from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import API_KEY, ROOT, Workers
from tests.helpers.redis_dump import redis_dump
from worker.allmysms.flux import STATUS_TEXTS
from worker.sandbox import SandboxProvider


REQUESTS = "\n".join(
    [
        json.dumps(
            {"key": "a", "text": "Bonjour", "to": ["0612345678", "0140000000", "0630999999"]}
        ),
        json.dumps({"key": "b", "text": ""}),
        "not json",
        json.dumps({"key": "gw:x:1", "text": "hi", "to": ["0612345678"]}),
    ]
)
CAMPAIGN = "phone,first_name\n0630000001,Ann\n0630000002," + "x" * 200 + "\n0630999999,Bob\n"


def _endpoints(sandbox: SandboxProvider) -> list[str]:
    return [r.get("endpoint", "sendSms") for r in sandbox.requests()]


def test_dry_run_checks_like_enqueue_prints_the_cost_and_writes_nothing(
    redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Contract refusals are the enqueue's own; valid requests get simulateCampaign's counts;
    Redis is byte for byte what it was and AllMySMS got only simulateCampaign."""
    redis.set("unrelated", "kept")
    before = redis_dump(redis)

    run = workers.smsq("enqueue", "--dry-run", "--json", stdin=REQUESTS)

    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout) == {
        "dry_run": True,
        "requests": [
            {
                "key": "a",
                "would_send": True,
                "status": 113,
                "status_text": STATUS_TEXTS[113],
                "nb_sms": 1,
                "nb_credits": 15,
                "nb_contacts": 1,
                "invalid_numbers": ["33630999999", "0140000000"],
                "segments": 1,
                "encoding": "gsm7",
                "refused_numbers": [
                    {
                        "field": "to[1]",
                        "phone": "0140000000",
                        "reason": "cannot receive SMS (fixed_line number)",
                    }
                ],
            },
            {"key": "b", "error": {"field": "text", "reason": "must not be empty"}},
            {"key": None, "error": {"field": "line 3", "reason": "not valid JSON"}},
            {
                "key": "gw:x:1",
                "error": {
                    "field": "key",
                    "reason": "keys starting with gw: belong to gateway producers",
                },
            },
        ],
        "total": {
            "requests": 4,
            "refused": 3,
            "nb_sms": 1,
            "nb_credits": 15,
            "nb_contacts": 1,
            "invalid_numbers": ["33630999999", "0140000000"],
        },
    }
    assert redis_dump(redis) == before
    assert redis.dbsize() == 1
    assert _endpoints(sandbox) == ["simulateCampaign"]
    assert sandbox.requests()[0]["data"]["SMS"] == [
        {"MOBILEPHONE": "33612345678"},
        {"MOBILEPHONE": "33630999999"},
    ]
    assert API_KEY not in run.stdout + run.stderr


def test_dry_run_of_a_campaign_file_sums_its_parts(
    redis: Redis, sandbox: SandboxProvider, workers: Workers, tmp_path: Path
) -> None:
    """A campaign file is simulated part by part (as workers send it) and the total printed."""
    file = tmp_path / "numbers.csv"
    file.write_text(CAMPAIGN, encoding="utf-8")

    run = workers.smsq(
        "enqueue",
        "--dry-run",
        "--file",
        str(file),
        "--text",
        "Bonjour #param_1#",
        "--key",
        "spring",
        SMSQ_CHUNK_RECIPIENTS="2",
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "spring:1: 2 recipient(s), 3 SMS, 45 credits (2 parts)",
        "  invalid: 33630999999 (AllMySMS)",
        "total: 1 request(s), 0 refused; 2 recipient(s), 3 SMS, 45 credits; 1 invalid number(s)",
        "dry run: nothing was enqueued or sent",
    ]
    assert redis.dbsize() == 0
    assert _endpoints(sandbox) == ["simulateCampaign", "simulateCampaign"]
    assert [len(r["data"]["SMS"]) for r in sandbox.requests()] == [2, 1]
    assert sandbox.requests()[0]["data"]["CAMPAIGN_NAME"] == "spring"
    # The second part's only number is invalid (114): the message is partly sent, 113.
    as_json = workers.smsq(
        "enqueue",
        "--dry-run",
        "--json",
        "--file",
        str(file),
        "--text",
        "Bonjour #param_1#",
        "--key",
        "spring",
        SMSQ_CHUNK_RECIPIENTS="2",
    )
    [estimate] = json.loads(as_json.stdout)["requests"]
    assert (estimate["status"], estimate["parts"], estimate["would_send"]) == (113, 2, True)
    # With the default 500 per part, the file is one AllMySMS request (the README's example).
    whole = workers.smsq(
        "enqueue",
        "--dry-run",
        "--file",
        str(file),
        "--text",
        "Bonjour #param_1#",
        "--key",
        "spring-sale",
    )
    assert whole.stdout.splitlines() == [
        "spring-sale:1: 2 recipient(s), 3 SMS, 45 credits",
        "  invalid: 33630999999 (AllMySMS)",
        "total: 1 request(s), 0 refused; 2 recipient(s), 3 SMS, 45 credits; 1 invalid number(s)",
        "dry run: nothing was enqueued or sent",
    ]


def test_dry_run_says_when_allmysms_would_refuse(
    redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    """A request whose every number AllMySMS refuses is reported with its status, exit 1."""
    request = json.dumps({"key": "z", "text": "hi", "to": ["0630999999"]})

    run = workers.smsq("enqueue", "--dry-run", stdin=request)

    assert run.returncode == 1
    assert run.stdout.splitlines()[0] == (
        f"z: 0 recipient(s), 0 SMS, 0 credits; AllMySMS would refuse it: status 114 "
        f"{STATUS_TEXTS[114]}"
    )
    assert redis.dbsize() == 0


def test_dry_run_without_allmysms_fails_clearly(redis: Redis, workers: Workers) -> None:
    run = workers.smsq(
        "enqueue",
        "--dry-run",
        stdin=REQUESTS,
        ALLMYSMS_BASE_URL="http://127.0.0.1:9/http/9.0",
    )

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == (
        "smsq enqueue: AllMySMS simulateCampaign failed, nothing was enqueued or sent: "
        "ConnectError: AllMySMS simulateCampaign was not reached\n"
    )
    assert redis.dbsize() == 0


def test_dry_run_needs_the_allmysms_credentials(redis: Redis, workers: Workers) -> None:
    run = workers.smsq("enqueue", "--dry-run", stdin=REQUESTS, ALLMYSMS_API_KEY="")
    assert run.returncode == 2
    assert run.stderr == (
        "smsq: configuration error: ALLMYSMS_API_KEY: is required to send (the API key from "
        "your AllMySMS account)\n"
    )


def test_show_cost_without_yes_enqueues_nothing(
    redis: Redis, sandbox: SandboxProvider, workers: Workers
) -> None:
    """Without a terminal to ask on, --show-cost prints the cost on stderr and stops."""
    request = json.dumps({"key": "c", "text": "hi", "to": ["0612345678", "0612345679"]})

    run = workers.smsq("enqueue", "--show-cost", stdin=request)

    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.splitlines() == [
        "c: 2 recipient(s), 2 SMS, 30 credits",
        "total: 1 request(s), 0 refused; 2 recipient(s), 2 SMS, 30 credits; 0 invalid number(s)",
        "smsq enqueue: nothing was enqueued (--show-cost without --yes, or not confirmed)",
    ]
    assert redis.dbsize() == 0
    assert _endpoints(sandbox) == ["simulateCampaign"]


def test_show_cost_with_yes_prints_the_cost_then_enqueues(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers
) -> None:
    request = json.dumps({"key": "c", "text": "hi", "to": ["0612345678"]})

    run = workers.smsq("enqueue", "--show-cost", "--yes", stdin=request)

    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[0] == "c: 1 recipient(s), 1 SMS, 15 credits"
    assert json.loads(run.stdout) == {"key": "c", "state": "queued"}
    record = store.get("c")
    assert record is not None
    assert record.state is State.QUEUED
    assert _endpoints(sandbox) == ["simulateCampaign"]


def _ask_on_a_terminal(workers: Workers, file: Path, answer: bytes) -> tuple[int, str, str]:
    """Run ``smsq enqueue --show-cost --file FILE`` with stdin and stderr on a terminal, answer
    the question, and return the exit code, what the terminal showed and stdout."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "enqueue", "--show-cost", "--file", str(file)],
        env=workers.env(),
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        cwd=ROOT,
    )
    os.close(secondary)
    shown = b""
    while b"[y/N]" not in shown:
        shown += os.read(primary, 4096)
    os.write(primary, answer)
    stdout, _ = proc.communicate(timeout=60)
    os.close(primary)
    return proc.returncode, shown.decode(), stdout.decode()


def test_show_cost_asks_on_a_terminal(
    redis: Redis, store: MessageStore, sandbox: SandboxProvider, workers: Workers, tmp_path: Path
) -> None:
    """With the requests in --file and a person at the terminal, --show-cost asks: "n" enqueues
    nothing, "y" enqueues."""
    file = tmp_path / "requests.jsonl"
    file.write_text(json.dumps({"key": "t", "text": "hi", "to": ["0612345678"]}) + "\n")

    refused, shown, stdout = _ask_on_a_terminal(workers, file, b"n\n")
    assert (refused, stdout) == (1, "")
    assert "t: 1 recipient(s), 1 SMS, 15 credits" in shown
    assert shown.rstrip().endswith("enqueue and send these? [y/N]")
    assert redis.dbsize() == 0

    accepted, _, stdout = _ask_on_a_terminal(workers, file, b"y\n")
    assert accepted == 0
    assert json.loads(stdout) == {"key": "t", "state": "queued"}
    assert store.get("t") is not None
    assert _endpoints(sandbox) == ["simulateCampaign", "simulateCampaign"]


def test_show_cost_stops_when_allmysms_cannot_tell(redis: Redis, workers: Workers) -> None:
    request = json.dumps({"key": "c", "text": "hi", "to": ["0612345678"]})
    run = workers.smsq(
        "enqueue",
        "--show-cost",
        "--yes",
        stdin=request,
        ALLMYSMS_BASE_URL="http://127.0.0.1:9/http/9.0",
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert redis.dbsize() == 0


def test_cost_options_that_do_not_go_together(redis: Redis, workers: Workers) -> None:
    yes = workers.smsq("enqueue", "--yes", stdin="")
    json_alone = workers.smsq("enqueue", "--json", stdin="")
    both = workers.smsq("enqueue", "--dry-run", "--show-cost", stdin="")

    assert (yes.returncode, yes.stderr) == (
        2,
        "smsq: configuration error: --yes: only goes with --show-cost\n",
    )
    assert (json_alone.returncode, json_alone.stderr) == (
        2,
        "smsq: configuration error: --json: only goes with --dry-run\n",
    )
    assert both.returncode == 2
    assert "argument --show-cost: not allowed with argument --dry-run" in both.stderr
    assert redis.dbsize() == 0
