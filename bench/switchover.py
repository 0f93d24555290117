"""What a Sentinel switchover costs a client: outage and acknowledged writes lost, on this Redis.

Starts worker/dev/sentinel.py's topology (1 primary, 1 replica, 3 sentinels on 127.0.0.1, AOF
always) per run. A client built with redis-py's ``Sentinel(...).master_for("smsq")`` sends one
pipeline every ~5 ms: ``INCR`` of a counter + ``RPUSH`` of the attempt's sequence number (so each
write can be found afterwards) + optionally ``WAIT 1 200``. A write is acknowledged if the
pipeline returned and, with WAIT, WAIT answered >= 1. ``--before-s`` after the start the switch
happens; the client keeps writing for ``--after-s``. Then, once the sentinels agree on the primary,
the lost writes are the acknowledged sequence numbers missing from its list.

Scenarios (``--only`` picks some):

* ``failover``, ``failover+wait``: plain ``SENTINEL FAILOVER``.
* ``coordinated``, ``coordinated+wait``: SentinelTopology.coordinated_switchover() (CLIENT PAUSE
  WRITE, replica caught up, SENTINEL FAILOVER, REPLICAOF on the old primary, unpause).
* ``failover-to``: Redis's own ``FAILOVER TO host port TIMEOUT 5000`` on the primary, Sentinel
  left to notice.
* ``kill9``, ``kill9+wait``: SIGKILL of the primary, Sentinel fails over by itself.

Outage = the longest time between two acknowledged writes. Every scenario uses
``down-after-milliseconds`` = ``--down-after-ms`` (5000, as deploy/sentinel/sentinel.conf).
Not a CI test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

from worker.dev.sentinel import HOST, SentinelTopology


PERIOD_S = 0.005
SOCKET_TIMEOUT_S = 0.5
SCENARIOS = [
    "failover",
    "failover+wait",
    "coordinated",
    "coordinated+wait",
    "failover-to",
    "kill9",
    "kill9+wait",
]


@dataclass
class Run:
    scenario: str
    acked: list[int] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    errors: int = 0
    short_waits: int = 0
    switch_s: float = 0.0
    switch_error: str = ""
    lost: int = 0


def failover_to(topology: SentinelTopology) -> None:
    old = topology.primary()
    [replica] = [s.port for s in topology.servers if s.port != old]
    client = Redis(host=HOST, port=old)
    try:
        client.execute_command("FAILOVER", "TO", HOST, replica, "TIMEOUT", 5000)  # type: ignore[no-untyped-call]
    finally:
        client.close()
    topology.wait_for_new_primary(old)


def action_for(scenario: str, topology: SentinelTopology) -> Callable[[], object]:
    base = scenario.removesuffix("+wait")
    if base == "failover":
        return topology.failover
    if base == "coordinated":
        return topology.coordinated_switchover
    if base == "failover-to":
        return lambda: failover_to(topology)

    def kill() -> None:
        dead = topology.kill_primary()
        topology.wait_for_new_primary(dead.port)

    return kill


def one_run(scenario: str, before_s: float, after_s: float, down_after_ms: int) -> Run:
    run = Run(scenario)
    wait = scenario.endswith("+wait")
    with SentinelTopology(down_after_ms=down_after_ms, failover_timeout_ms=10_000) as topology:
        sentinel = Sentinel(topology.sentinels, socket_timeout=SOCKET_TIMEOUT_S)
        client = sentinel.master_for(
            topology.master_name,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
        )
        action = action_for(scenario, topology)

        def switch() -> None:
            started = time.monotonic()
            try:
                action()
            except (TimeoutError, RedisError) as exc:
                run.switch_error = str(exc)
            run.switch_s = time.monotonic() - started

        switcher = threading.Thread(target=switch, daemon=True)
        start = time.monotonic()
        seq = 0
        switching = False
        while time.monotonic() - start < before_s + after_s:
            if not switching and time.monotonic() - start >= before_s:
                switcher.start()
                switching = True
            seq += 1
            pipe = client.pipeline(transaction=False)
            pipe.incr("bench:counter")
            pipe.rpush("bench:log", seq)
            if wait:
                pipe.execute_command("WAIT", 1, 200)
            try:
                result = pipe.execute()
            except (RedisError, OSError):
                run.errors += 1
            else:
                if not wait or int(result[2]) >= 1:
                    run.acked.append(seq)
                    run.ack_times.append(time.monotonic())
                else:
                    run.short_waits += 1
            time.sleep(PERIOD_S)
        switcher.join(timeout=60)
        primary = Redis(host=HOST, port=topology.primary(), decode_responses=True)
        present = {int(v) for v in primary.lrange("bench:log", 0, -1)}
        primary.close()
        client.close()
    run.lost = len([s for s in run.acked if s not in present])
    return run


def outage_s(run: Run) -> float:
    gaps = [b - a for a, b in zip(run.ack_times, run.ack_times[1:], strict=False)]
    return max(gaps, default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--before-s", type=float, default=2.0)
    parser.add_argument("--after-s", type=float, default=25.0)
    parser.add_argument("--down-after-ms", type=int, default=5000)
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=SCENARIOS)
    args = parser.parse_args(argv)
    print(  # noqa: T201
        f"{'scenario':18} {'run':>3} {'acked':>6} {'lost':>5} {'errors':>6} "
        f"{'wait<1':>6} {'outage_s':>8} {'switch_s':>8}  note"
    )
    for scenario in args.only:
        for index in range(1, args.runs + 1):
            run = one_run(scenario, args.before_s, args.after_s, args.down_after_ms)
            print(  # noqa: T201
                f"{scenario:18} {index:>3} {len(run.acked):>6} {run.lost:>5} {run.errors:>6} "
                f"{run.short_waits:>6} {outage_s(run):>8.2f} {run.switch_s:>8.2f}  "
                f"{run.switch_error[:60]}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
