"""The ``smsq`` command: enqueue, status, dlq list, worker start-up checks, sandbox."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from producers.store import MessageStore
from tests.helpers.processes import ROOT, Workers
from worker.dev.redis_server import free_port
from worker.sandbox import SandboxProvider


def test_enqueue_reads_json_lines_and_answers_one_line_each(
    workers: Workers, store: MessageStore
) -> None:
    """Each input line gets a JSON line; a refused one makes the exit code 1."""
    lines = "\n".join(
        [
            json.dumps({"key": "a", "text": "Hi", "to": ["0612345678"]}),
            json.dumps({"key": "b", "text": "Hi", "to": ["0612345678"], "sender": "x"}),
            "{oops",
            json.dumps({"key": "a", "text": "Hi", "to": ["0612345678"]}),
        ]
    )

    result = workers.smsq("enqueue", stdin=lines)

    assert result.returncode == 1, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"key": "a", "state": "queued"},
        {
            "key": "b",
            "error": {
                "field": "sender",
                "reason": "must be 3 to 11 letters and digits, starting with a letter",
            },
        },
        {"key": None, "error": {"field": "line 3", "reason": "not valid JSON"}},
        {"key": "a", "state": "queued", "duplicate": True},
    ]
    record = store.get("a")
    assert record is not None
    assert record.state.value == "queued"


def test_enqueue_from_a_file_exits_zero_when_all_are_accepted(
    workers: Workers, tmp_path: Path
) -> None:
    """--file with one JSON object enqueues it and exits 0."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"key": "f", "text": "Hi", "to": ["0612345678"], "lane": "urgent"}))

    result = workers.smsq("enqueue", "--file", str(path))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"key": "f", "state": "queued"}


def test_status_and_dlq_show_outcomes(workers: Workers, sandbox: SandboxProvider) -> None:
    """After a send and a rejection, status shows each state and dlq lists the rejection."""
    sandbox.add_fault({"action": "status", "status": 114, "match": {"campaign": "broke"}})
    workers.smsq(
        "enqueue",
        stdin="\n".join(
            [
                json.dumps({"key": "ok-1", "text": "Hi", "to": ["0612345678"]}),
                json.dumps(
                    {"key": "broke-1", "text": "Hi", "to": ["0612345678"], "campaign": "broke"}
                ),
            ]
        ),
    )
    workers.run_burst()

    ok = workers.smsq("status", "ok-1", "--json")
    human = workers.smsq("status", "broke-1")
    dlq = workers.smsq("dlq", "list", "--json")
    missing = workers.smsq("status", "nope")

    record = json.loads(ok.stdout)
    assert (record["state"], record["provider_status"], record["nb_sms"]) == ("sent", 100, 1)
    assert [h["state"] for h in record["history"]] == ["queued", "sending", "sent"]
    assert "state:      rejected" in human.stdout
    assert "provider:   114" in human.stdout
    [letter] = [json.loads(line) for line in dlq.stdout.splitlines()]
    assert (letter["key"], letter["state"], letter["provider_status"]) == (
        "broke-1",
        "rejected",
        114,
    )
    assert letter["reason"] == "114 no valid number"
    assert (missing.returncode, missing.stderr) == (1, "smsq: no message with key 'nope'\n")


def test_worker_refuses_to_start_without_credentials(workers: Workers) -> None:
    """A missing apiKey stops the worker at start with the variable's name."""
    result = workers.smsq("worker", "--burst", ALLMYSMS_API_KEY="")
    assert result.returncode == 2
    assert result.stderr == (
        "smsq: configuration error: ALLMYSMS_API_KEY: is required to send "
        "(the API key from your AllMySMS account)\n"
    )


def test_worker_rejects_an_unknown_lane(workers: Workers) -> None:
    """--lanes with a typo is a configuration error naming the option."""
    result = workers.smsq("worker", "--burst", "--lanes", "urgent,fast")
    assert result.returncode == 2
    assert result.stderr == (
        "smsq: configuration error: --lanes: must list urgent, default and/or bulk\n"
    )


def test_sandbox_command_serves_and_stops_on_sigterm() -> None:
    """``smsq sandbox --port P`` answers sendSms and its control API, and exits on SIGTERM."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "sandbox", "--port", str(port)],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "ALLMYSMS_LOGIN": "me",
            "ALLMYSMS_API_KEY": "k-1",
            "PYTHONPATH": str(ROOT),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"sandbox listening on http://127.0.0.1:{port}/http/9.0"
        base = f"http://127.0.0.1:{port}"
        reply = httpx.post(
            f"{base}/http/9.0/sendSms/",
            data={
                "login": "me",
                "apiKey": "k-1",
                "smsData": json.dumps(
                    {"DATA": {"MESSAGE": "Hi", "SMS": [{"MOBILEPHONE": "33612345678"}]}}
                ),
            },
        )
        assert reply.json()["status"] == 100
        assert len(httpx.get(f"{base}/_sandbox/requests").json()) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err
