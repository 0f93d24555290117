"""Import boundaries: producers stay light and never reach into the worker."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.processes import ROOT


def test_importing_producers_loads_no_httpx_tenacity_or_worker() -> None:
    """A fresh interpreter that imports producers has no httpx, tenacity or worker module."""
    code = (
        "import json, sys, producers\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('httpx', 'tenacity', 'worker', 'httpcore'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(out.stdout) == []


def test_producers_source_never_imports_worker() -> None:
    """No module under producers/ names the worker package in an import."""
    offenders = [
        path.name
        for path in (ROOT / "producers").glob("*.py")
        if any(
            line.lstrip().startswith(("import worker", "from worker"))
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []


def test_job_path_resolves_to_the_send_function() -> None:
    """The job path stored in every job names worker.jobs.send_sms."""
    from producers.contract import SEND_SMS_JOB
    from worker.jobs import send_sms

    assert f"{send_sms.__module__}.{send_sms.__name__}" == SEND_SMS_JOB


def test_smsq_processes_do_not_load_httpx_command_line_client() -> None:
    """``smsq`` keeps httpx's CLI (click, pygments) out of every process: about 2 MiB each."""
    probe = (
        "import sys, worker.cli.commands, httpx, worker.send.runner, worker.send.runtime; "
        "print(sorted(m for m in ('click', 'pygments', 'httpx._main') if m in sys.modules "
        "and sys.modules[m] is not None))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


def test_smsq_processes_do_not_load_greenlet_for_structlog() -> None:
    """structlog would load greenlet (1.2 MiB) for a deprecated thread-local smsq never uses;
    its fallback, threading.local, is what a process without greenlet gets."""
    probe = (
        "import sys, worker.cli.commands, structlog, structlog.threadlocal, threading, "
        "worker.send.runner, worker.send.runtime; "
        "print('greenlet' in sys.modules, "
        "structlog.threadlocal.ThreadLocal is threading.local)"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert result.stdout.strip() == "False True"
