"""Every command that talks to Redis, with a bad REDIS_URL and with Redis down: one line that
names the problem (the variable, or the address without the password), an exit code the
README lists, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.processes import API_KEY, LOGIN, ROOT
from worker.cli.environment import READS
from worker.dev.redis_server import free_port


COMMANDS = [
    ("worker", "--burst"),
    ("status", "some-key"),
    ("stats",),
    ("pause", "--reason", "test"),
    ("resume",),
    ("dlq", "list"),
    ("dlq", "show", "some-key"),
    ("dlq", "requeue", "some-key"),
    ("dlq", "purge", "some-key"),
    ("dlq", "resolve", "some-key", "--sent", "--why", "checked"),
    ("replies", "some-key"),
    ("purge", "--phone", "0612345678"),
    ("callbacks", "--burst"),
    ("audit",),
    ("cancel", "some-key", "--why", "test"),
    ("cancel", "--campaign", "spring", "--why", "test"),
    ("export", "--phone", "0612345678"),
    ("optout", "add", "0612345678", "--why", "test"),
    ("optout", "remove", "0612345678", "--why", "test"),
    ("optout", "check", "0612345678"),
    ("optout", "list"),
    ("workers",),
    ("campaign", "spring"),
]


def smsq(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "ALLMYSMS_LOGIN": LOGIN,
        "ALLMYSMS_API_KEY": API_KEY,
        "SMSQ_CALLBACK_SECRET": "c" * 32,
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_bad_redis_url_is_one_line_naming_the_variable(command: tuple[str, ...]) -> None:
    done = smsq(*command, redis_url="http://:hunter2@127.0.0.1:6379/0")

    assert (done.returncode, done.stderr) == (
        2,
        "smsq: configuration error: REDIS_URL: must start with redis://, rediss:// or unix:// "
        "(http://); e.g. redis://127.0.0.1:6379/0\n",
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_redis_down_is_one_line_naming_the_address(command: tuple[str, ...]) -> None:
    port = free_port()

    done = smsq(*command, redis_url=f"redis://:hunter2@127.0.0.1:{port}/0")

    assert "Traceback" not in done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"smsq: Redis at 127.0.0.1:{port}/0 is unreachable ("), done.stderr
    assert "retrying with the same keys" not in last
    assert done.returncode == 2


SERVERS = [("admin", "--port", "0"), ("gateway", "--port", "0")]
"""Servers start while Redis is down (they answer 503 until it is back), so only a bad URL is an
exit; see tests/test_admin.py and tests/test_gateway.py for their 503s."""


def test_every_command_that_reads_redis_url_is_walked() -> None:
    walked = {" ".join(c[:2]) if c[0] in ("dlq", "optout") else c[0] for c in [*COMMANDS, *SERVERS]}
    walked.add("enqueue")

    assert walked == {command for command, names in READS.items() if "REDIS_URL" in names}


@pytest.mark.parametrize("command", SERVERS, ids=lambda c: c[0])
def test_a_server_with_a_bad_redis_url_does_not_start(command: tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", *command],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": "http://:hunter2@127.0.0.1:6379/0",
            "SMSQ_PRODUCERS": '[{"login": "shop", "api_key": "change-me-0123456789"}]',
            "SMSQ_ADMIN_PASSWORD": "admin-password-0123",
            "SMSQ_ADMIN_SESSION_SECRET": "s" * 40,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )

    assert (done.returncode, done.stderr.splitlines()[-1]) == (
        2,
        "smsq: configuration error: REDIS_URL: must start with redis://, rediss:// or unix:// "
        "(http://); e.g. redis://127.0.0.1:6379/0",
    )


def test_enqueue_with_redis_down_says_a_retry_is_safe(tmp_path: Path) -> None:
    """The one write a person retries by hand: the hint is there (and only there)."""
    path = tmp_path / "one.jsonl"
    path.write_text('{"key": "k", "to": ["0612345678"], "text": "Hi"}\n')
    port = free_port()

    down = smsq("enqueue", "--file", str(path), redis_url=f"redis://:hunter2@127.0.0.1:{port}/0")
    bad = smsq("enqueue", "--file", str(path), redis_url="http://:hunter2@127.0.0.1:6379/0")

    assert (down.returncode, down.stderr) == (
        2,
        f"smsq: Redis at 127.0.0.1:{port}/0 is unreachable (ConnectionError); retrying with the "
        "same keys is safe, duplicates are ignored\n",
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("smsq: configuration error: REDIS_URL: must start with redis://")
