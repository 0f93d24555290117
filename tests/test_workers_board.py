"""``smsq workers`` and the admin page ``/workers``: live workers with their host, lanes, slots,
sends and heartbeat; a cleanly stopped one as stopped, a killed one as dead."""

from __future__ import annotations

import json
import os
import signal
import socket

import httpx
from redis import Redis

from producers.enqueue import Producer
from tests.helpers.admin import admin_settings, log_in
from tests.helpers.crashes import FAST
from tests.helpers.processes import Workers, wait_for
from worker import __version__
from worker.admin import create_app
from worker.admin.server import running
from worker.dev.redis_server import RedisServer, free_port


def _board(workers: Workers) -> list[dict[str, object]]:
    done = workers.smsq("workers", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_board_shows_alive_stopped_and_dead_workers(
    redis_server: RedisServer, redis: Redis, producer: Producer, workers: Workers
) -> None:
    producer.enqueue_many(
        [{"key": f"w{n}", "to": ["0612345678"], "text": "Code"} for n in range(3)]
    )
    assert workers.run_burst().returncode == 0
    live = workers.start("--lanes", "urgent,default", **FAST, SMSQ_SEND_SLOTS="4")

    wait_for(lambda: any(w["state"] == "alive" for w in _board(workers)), what="a live worker")
    board = _board(workers)
    alive = next(w for w in board if w["state"] == "alive")
    stopped = next(w for w in board if w["state"] == "stopped")
    assert (alive["host"], alive["pid"], alive["lanes"], alive["slots"], alive["busy"]) == (
        socket.gethostname(),
        live.pid,
        ["urgent", "default"],
        4,
        0,
    )
    assert alive["version"] == __version__
    assert stopped["sent"] == 3
    assert [w["state"] for w in board] == ["alive", "stopped"]

    os.killpg(live.pid, signal.SIGKILL)
    live.wait()
    wait_for(
        lambda: [w["state"] for w in _board(workers)] == ["dead", "stopped"],
        timeout_s=10,
        what="the killed worker shown dead",
    )
    text = workers.smsq("workers").stdout
    assert text.splitlines()[0].split() == [
        "NAME",
        "STATE",
        "LANES",
        "BUSY",
        "SENT",
        "LAST",
        "BEAT",
    ]
    assert " dead " in text

    app = create_app(admin_settings(redis_server.url), redis)
    with running(app, port=free_port()) as base_url, httpx.Client(base_url=base_url) as http:
        log_in(http)
        page = http.get("/workers").text
    assert page.count('<tr class="dead">') == 1
    assert page.count('<tr class="stopped">') == 1
    assert f"(pid {live.pid})" in page
