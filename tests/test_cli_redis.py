"""Every command that talks to Redis, with a bad REDIS_URL and with Redis down: one line that
names the problem (the variable, or the address without the password), an exit code the
README lists, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.processes import API_KEY, LOGIN, ROOT
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
