"""Everyday command-line mistakes: one line naming the problem and an exit code the README
lists, never a traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT, Workers


def smsq(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()[1]
    listener.close()


def test_a_missing_file_and_a_directory_are_named(tmp_path: Path) -> None:
    missing = smsq("enqueue", "--file", str(tmp_path / "nope.csv"))
    folder = smsq("enqueue", "--file", str(tmp_path))

    assert (missing.returncode, missing.stderr) == (
        2,
        f"smsq: cannot read {tmp_path / 'nope.csv'}: No such file or directory\n",
    )
    assert (folder.returncode, folder.stderr) == (
        2,
        f"smsq: cannot read {tmp_path}: Is a directory\n",
    )


def test_a_port_out_of_range_is_a_usage_error() -> None:
    done = smsq("sandbox", "--port", "99999")

    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "smsq sandbox: error: argument --port: '99999' is not a port number from 0 to 65535"
    )


@pytest.mark.parametrize("command", ["sandbox", "admin"])
def test_a_port_in_use_is_one_line(command: str, taken_port: int) -> None:
    done = smsq(
        command,
        "--port",
        str(taken_port),
        SMSQ_ADMIN_PASSWORD="correct horse battery",  # noqa: S106 - a test password
        SMSQ_ADMIN_SESSION_SECRET="s" * 40,
    )

    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"smsq: port {taken_port} is already in use (choose another with --port)"
    )
    assert "Traceback" not in done.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(workers: Workers) -> None:
    """`smsq dlq list | head -1` with many lines: exit 141 (SIGPIPE's code), nothing on
    stderr."""
    from redis import Redis

    from producers.enqueue import Producer

    Producer(Redis.from_url(workers.redis_url)).enqueue_many(
        [
            {"key": f"k{n}", "text": "Hi", "to": ["0612345678"], "valid_for_s": 0.001}
            for n in range(1500)
        ]
    )
    assert workers.run_burst().returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "dlq", "list", "--limit", "1500"],
        env=workers.env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    code = proc.wait(timeout=30)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()

    assert (code, stderr) == (141, "")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, -15)])
def test_a_worker_waiting_for_redis_stops_on_a_signal(signum: int, code: int) -> None:
    """README exit codes: 130 on Ctrl-C; SIGTERM before it began working ends it by the signal
    (a shell shows 143). Neither prints a traceback."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker"],
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "ALLMYSMS_LOGIN": "a",
            "ALLMYSMS_API_KEY": "b",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    assert "sms.worker.waiting_for_redis" in worker.stderr.readline()

    worker.send_signal(signum)

    assert worker.wait(timeout=10) == code
    rest = worker.stderr.read()
    worker.stderr.close()
    assert "Traceback" not in rest
