"""deploy/compose.sentinel.yaml and deploy/sentinel/*.conf: the override's structure against
compose.yaml, and the Redis/Sentinel files loaded by real redis-server processes (ports and
directories overridden on the command line) forming a working topology.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from redis.exceptions import RedisError

from producers.redis_errors import NoReplicasError
from tests.helpers.processes import ROOT
from worker.dev.redis_server import free_port


DEPLOY = ROOT / "deploy"
SENTINEL_DIR = DEPLOY / "sentinel"
PASSWORD = "d2c1a0"  # noqa: S105 - the test servers' requirepass
MONITOR_LINE = "sentinel monitor smsq redis 6379 2"
SMSQ_SERVICES = {"worker", "admin", "gateway", "callbacks"}
SENTINELS = {"sentinel-1", "sentinel-2", "sentinel-3"}


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to deploy/) of a service's bind mounts and volumes."""
    pairs = [str(v).split(":") for v in service.get("volumes", [])]
    return {p[1]: p[0] for p in pairs}


# --- the compose override ------------------------------------------------------------------------


def test_override_adds_the_replica_and_three_sentinels_to_compose_yaml() -> None:
    base = load("compose.yaml")
    override = load("compose.sentinel.yaml")
    assert set(override["services"]) == {"redis", "redis-replica", *SENTINELS, *SMSQ_SERVICES}
    assert set(override["services"]) - set(base["services"]) == {"redis-replica", *SENTINELS}
    assert set(override["volumes"]) == {"redis-replica-data", *(f"{s}-data" for s in SENTINELS)}
    assert set(base["volumes"]) == {"redis-data"}


def test_override_points_every_smsq_service_at_the_sentinels() -> None:
    override = load("compose.sentinel.yaml")
    for name in SMSQ_SERVICES:
        service = override["services"][name]
        assert service["environment"] == {
            "SMSQ_REDIS_SENTINELS": "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379",
            "SMSQ_REDIS_SENTINEL_MASTER": "smsq",
        }, name
        assert service["depends_on"] == {s: {"condition": "service_healthy"} for s in SENTINELS}
        # Nothing else is replaced: image, command and the blanked secrets come from compose.yaml.
        assert set(service) == {"environment", "depends_on"}, name


def test_override_data_nodes_load_the_ha_files_with_the_password_from_stdin() -> None:
    override = load("compose.sentinel.yaml")
    for name, extra in (("redis", []), ("redis-replica", ["redis-replica.conf"])):
        service = override["services"][name]
        assert service["image"] == "redis:7"
        assert mounts(service) == {
            "/usr/local/etc/redis/redis.conf": "./redis.conf",
            "/usr/local/etc/redis/sentinel": "./sentinel",
            "/data": "redis-data" if name == "redis" else "redis-replica-data",
        }
        script = service["command"][2]
        includes = [
            line.split()[1] for line in script.splitlines() if line.strip().startswith("include")
        ]
        assert includes == [
            f"/usr/local/etc/redis/sentinel/{f}" for f in ["redis-ha.conf", *extra]
        ], name
        assert 'requirepass "$${REDIS_PASSWORD}"' in script
        assert 'masterauth "$${REDIS_PASSWORD}"' in script
        assert f"replica-announce-ip {name}\n" in script
        assert service["environment"] == {
            "REDIS_PASSWORD": "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"
        }
    for name in SENTINELS:
        service = override["services"][name]
        assert mounts(service) == {
            "/usr/local/etc/redis/sentinel": "./sentinel",
            "/data": f"{name}-data",
        }
        assert "redis-server /data/sentinel.conf --sentinel" in service["command"][2]
    for path in mounts(override["services"]["redis"]).values():
        if path.startswith("./"):
            assert (DEPLOY / path).exists(), path


# --- the configs, on real redis-server processes --------------------------------------------------


def _until(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (RedisError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(what)


class Topology:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []
        self.primary = free_port()
        self.replica = free_port()
        self.sentinels = [free_port() for _ in range(3)]

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        binary = shutil.which("redis-server")
        assert binary is not None
        process = subprocess.Popen(
            [binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.processes.append(process)
        return process

    def data_node(self, port: int, *extra: str) -> subprocess.Popen[bytes]:
        directory = self.tmp_path / str(port)
        directory.mkdir()
        # As compose.sentinel.yaml's stdin lines, with loopback ports and temporary directories.
        return self.spawn(
            str(DEPLOY / "redis.conf"),
            "--include",
            str(SENTINEL_DIR / "redis-ha.conf"),
            *extra,
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--requirepass",
            PASSWORD,
            "--masterauth",
            PASSWORD,
            "--replica-announce-ip",
            "127.0.0.1",
        )

    def start(self) -> None:
        self.data_node(self.primary)
        self.data_node(
            self.replica,
            "--include",
            str(SENTINEL_DIR / "redis-replica.conf"),
            "--replicaof",
            "127.0.0.1",
            str(self.primary),
        )
        text = (SENTINEL_DIR / "sentinel.conf").read_text(encoding="utf-8")
        for port in self.sentinels:
            directory = self.tmp_path / str(port)
            directory.mkdir()
            conf = directory / "sentinel.conf"
            # What the compose command does, with the monitored address on loopback.
            conf.write_text(
                text.replace(MONITOR_LINE, f"sentinel monitor smsq 127.0.0.1 {self.primary} 2")
                + f'sentinel auth-pass smsq "{PASSWORD}"\n',
                encoding="utf-8",
            )
            self.spawn(str(conf), "--sentinel", "--port", str(port), "--dir", str(directory))

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Topology]:
    """Named ``workers`` so the suite marks this test as slow (several real processes)."""
    topology = Topology(tmp_path)
    topology.start()
    yield topology
    topology.stop()


def test_sentinel_text_has_the_monitor_line_the_test_relocates() -> None:
    lines = (SENTINEL_DIR / "sentinel.conf").read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if line.startswith("sentinel monitor")] == [MONITOR_LINE]
    assert "sentinel down-after-milliseconds smsq 5000" in lines
    assert [line for line in lines if line.startswith("replicaof")] == []


def test_configs_form_a_working_topology_and_refuse_writes_without_replica(
    workers: Topology,
) -> None:
    topology = workers
    primary = Redis(port=topology.primary, password=PASSWORD, decode_responses=True)
    replica = Redis(port=topology.replica, password=PASSWORD, decode_responses=True)
    _until("replica linked", lambda: replica.info("replication")["master_link_status"] == "up")
    assert primary.config_get("min-replicas-*") == {
        "min-replicas-to-write": "1",
        "min-replicas-max-lag": "10",
    }
    assert replica.config_get("replica-priority") == {"replica-priority": "50"}
    assert replica.config_get("appendfsync") == {"appendfsync": "always"}
    assert primary.config_get("appendfsync") == {"appendfsync": "always"}

    def formed(port: int) -> bool:
        sentinel = Redis(port=port, decode_responses=True)
        master: dict[str, Any] = sentinel.sentinel_master("smsq")  # type: ignore[assignment]
        replicas: list[dict[str, Any]] = sentinel.sentinel_slaves("smsq")
        peers: list[Any] = sentinel.sentinel_sentinels("smsq")  # type: ignore[assignment]
        sentinel.close()
        return (
            master["port"] == topology.primary
            and master["is_master"]
            and not master["is_sdown"]
            and master["quorum"] == 2
            and master["down-after-milliseconds"] == 5000
            and [(r["port"], r["is_sdown"]) for r in replicas] == [(topology.replica, False)]
            and len(peers) == 2
        )

    for port in topology.sentinels:
        _until(f"sentinel {port} formed", lambda p=port: formed(p))  # type: ignore[misc]
    primary.set("smsq:test:ha", "1")
    assert primary.wait(1, 2000) == 1
    assert replica.get("smsq:test:ha") == "1"

    # The replica goes away: once its lag passes min-replicas-max-lag, writes are refused.
    primary.config_set("min-replicas-max-lag", 1)
    topology.processes[1].kill()
    topology.processes[1].wait()

    errors: list[str] = []

    def refused() -> bool:
        try:
            primary.set("smsq:test:ha", "2")
        except NoReplicasError as exc:  # NOREPLICAS, waited out by smsq like READONLY
            errors.append(str(exc))
            return True
        return False

    _until("writes refused without replica", refused, timeout_s=10)
    assert errors == ["Not enough good replicas to write."]
    assert primary.get("smsq:test:ha") == "1"
