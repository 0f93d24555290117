"""worker/dev/sentinel.py: a real primary, replica and three sentinels on loopback ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from redis import Redis

from worker.dev.sentinel import SentinelTopology


pytestmark = pytest.mark.workers
"""Several real redis-server processes and failovers: the slow part of the suite."""


def role(port: int) -> str:
    client = Redis(port=port, decode_responses=True)
    try:
        return str(client.info("replication")["role"])
    finally:
        client.close()


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def topology() -> Iterator[SentinelTopology]:
    with SentinelTopology() as started:
        yield started


def test_start_reports_the_primary_and_stop_ends_every_process() -> None:
    topology = SentinelTopology(master_name="other")
    with topology:
        ports = [s.port for s in topology.servers]
        sentinel_ports = [port for _, port in topology.sentinels]
        assert topology.master_name == "other"
        assert len(ports) == 2
        assert len(sentinel_ports) == 3
        assert topology.primary() == ports[0]
        assert topology.sentinels_env == ",".join(f"127.0.0.1:{p}" for p in sentinel_ports)
        assert [role(p) for p in ports] == ["master", "slave"]
    assert [refused(p) for p in [*ports, *sentinel_ports]] == [True] * 5


def test_failover_moves_the_primary_and_keeps_replicated_data(topology: SentinelTopology) -> None:
    old = topology.primary()
    Redis(port=old).set("smsq:test:before", "1")
    topology.wait_until_replicated()
    new = topology.failover()
    assert new != old
    assert topology.primary() == new
    assert role(new) == "master"
    assert Redis(port=new).get("smsq:test:before") == b"1"
    topology.wait_until_replicated()
    assert role(old) == "slave"


def test_coordinated_switchover_moves_the_primary_without_losing_a_write(
    topology: SentinelTopology,
) -> None:
    topology.wait_until_replicated()
    old = topology.primary()
    writer = Redis(port=old)
    writer.delete("smsq:test:counter")
    for _ in range(200):
        writer.incr("smsq:test:counter")
    new = topology.coordinated_switchover()
    assert new != old
    assert topology.primary() == new
    assert [role(new), role(old)] == ["master", "slave"]
    assert Redis(port=new).get("smsq:test:counter") == b"200"


def test_killed_primary_restarts_from_its_aof_and_rejoins_as_replica(
    topology: SentinelTopology,
) -> None:
    topology.wait_until_replicated()
    Redis(port=topology.primary()).set("smsq:test:kill", "kept")
    topology.wait_until_replicated()
    dead = topology.kill_primary()
    assert refused(dead.port)
    new = topology.wait_for_new_primary(dead.port)
    assert new != dead.port
    assert role(new) == "master"
    assert Redis(port=new).get("smsq:test:kill") == b"kept"
    primary = topology.restart(dead)
    # Usually the restarted node is made a replica; under load the sentinels may fail over
    # again, to it (see restart()): either way one primary, one linked replica, nothing lost.
    assert primary in (new, dead.port)
    replica = dead.port if primary == new else new
    assert topology.primary() == primary
    assert [role(primary), role(replica)] == ["master", "slave"]
    assert Redis(port=replica).get("smsq:test:kill") == b"kept"
    Redis(port=primary).set("smsq:test:after", "1")
    topology.wait_until_replicated()
    assert Redis(port=replica).get("smsq:test:after") == b"1"
