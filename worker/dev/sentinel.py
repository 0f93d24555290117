"""A private Redis Sentinel topology on loopback ports (the test suite, bench/switchover.py).

One primary and N replicas (AOF on, ``appendfsync always``, as deploy/redis.conf) plus three
sentinels (``redis-server CONF --sentinel``: the same binary as Debian's redis-sentinel) with
quorum 2, each process in its own temporary directory.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from worker.dev.redis_server import RedisServer, free_port, terminate


HOST = "127.0.0.1"
SENTINEL_COUNT = 3
QUORUM = 2
WAIT_TIMEOUT_S = 20.0
"""Upper bound of every wait below (start, failover, rejoin); each raises TimeoutError past it."""
REJOIN_TIMEOUT_S = 90.0
"""A restarted old primary comes back as a master: the sentinels convert it only after it has been
up and reporting that role for 8 s (4 hello periods), seen by an INFO every 10 s: up to ~20 s.
A sentinel stalled for over 2 s (an fsync of its config on a disk busy with ``appendfsync always``
writers) enters TILT mode and does nothing for 30 s more; 45 s was once not enough in CI."""
POLL_S = 0.05

T = TypeVar("T")


def _until(what: str, check: Callable[[], T | None], timeout_s: float = WAIT_TIMEOUT_S) -> T:
    """Poll ``check`` until it returns neither None nor False; TimeoutError names ``what``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (RedisError, OSError) as exc:
            last_error = exc
        else:
            if result is not None and result is not False:
                return result
        time.sleep(POLL_S)
    detail = f" (last error: {last_error})" if last_error is not None else ""
    raise TimeoutError(f"sentinel topology: {what} not within {timeout_s:g} s{detail}")


class SentinelProcess:
    """One ``redis-server sentinel.conf --sentinel`` child in its own temporary directory."""

    def __init__(self, *, master_name: str, primary_port: int, down_after_ms: int,
                 failover_timeout_ms: int) -> None:  # fmt: skip
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="smsq-sentinel-"))
        self.log_path = self.directory / "sentinel.log"
        # Sentinel rewrites its config file (known replicas/sentinels, epochs): it must own it.
        (self.directory / "sentinel.conf").write_text(
            f"port {self.port}\n"
            f"bind {HOST}\n"
            f"dir {self.directory}\n"
            f"logfile {self.log_path}\n"
            f"sentinel monitor {master_name} {HOST} {primary_port} {QUORUM}\n"
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}\n"
            f"sentinel failover-timeout {master_name} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {master_name} 1\n",
            encoding="utf-8",
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError(
                "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)"
            )
        self._process = subprocess.Popen(  # noqa: S603 - our own argument list
            [binary, str(self.directory / "sentinel.conf"), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def client(self) -> Redis:
        return Redis(host=HOST, port=self.port, socket_timeout=2, decode_responses=True)

    def stop(self) -> None:
        terminate(self._process)
        self._process = None
        shutil.rmtree(self.directory, ignore_errors=True)


class SentinelTopology:
    """1 primary + ``replicas`` replicas + 3 sentinels watching master ``master_name``."""

    def __init__(
        self,
        *,
        replicas: int = 1,
        master_name: str = "smsq",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
    ) -> None:
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.servers: list[RedisServer] = []
        """Every data node, the first started as the primary (roles change with failovers)."""
        self._replica_count = replicas
        self._sentinels: list[SentinelProcess] = []

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> SentinelTopology:
        """Start everything; return once all three sentinels see the master and every replica.

        Raises:
            TimeoutError: the topology did not form within ``WAIT_TIMEOUT_S``.
        """
        try:
            primary = RedisServer(appendonly=True, log=True).start()
            self.servers.append(primary)
            for _ in range(self._replica_count):
                replica = RedisServer(
                    appendonly=True, log=True, extra_args=["--replicaof", HOST, str(primary.port)]
                )
                self.servers.append(replica.start())
            self.wait_until_replicated()
            for _ in range(SENTINEL_COUNT):
                self._sentinels.append(
                    SentinelProcess(
                        master_name=self.master_name,
                        primary_port=primary.port,
                        down_after_ms=self.down_after_ms,
                        failover_timeout_ms=self.failover_timeout_ms,
                    ).start()
                )
            _until("all sentinels seeing the master, its replicas and each other", self._formed)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for sentinel in self._sentinels:
            sentinel.stop()
        self._sentinels.clear()
        for server in self.servers:
            server.stop()
        self.servers.clear()

    def __enter__(self) -> SentinelTopology:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what clients need -----------------------------------------------------------------------

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(HOST, s.port) for s in self._sentinels]

    @property
    def sentinels_env(self) -> str:
        """The ``SMSQ_REDIS_SENTINELS`` value: ``host:port,host:port,host:port``."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def server(self, port: int) -> RedisServer:
        [found] = [s for s in self.servers if s.port == port]
        return found

    def primary(self) -> int:
        """The port of the primary as the sentinels report it (all three must agree).

        Raises:
            TimeoutError: they did not agree within ``WAIT_TIMEOUT_S``.
        """
        return _until("the sentinels agreeing on one primary", self._agreed_primary)

    # --- switches --------------------------------------------------------------------------------

    def failover(self) -> int:
        """A plain ``SENTINEL FAILOVER``: returns the new primary's port once all sentinels report
        it and it has the role master. Asynchronous replication: acknowledged writes can be lost.
        """
        old = self.primary()
        _until("SENTINEL FAILOVER accepted", self._request_failover)
        return self.wait_for_new_primary(old)

    def coordinated_switchover(self) -> int:
        """A planned switch that loses no acknowledged write, on Redis 7.0 with Sentinel running.

        ``FAILOVER TO`` (Redis >= 6.2) alone does not work with Sentinel: the sentinels keep
        advertising the old primary, now a replica, until they declare it down (down-after), so
        clients loop on READONLY. Instead: pause writes on the primary (``CLIENT PAUSE ... WRITE``:
        writers block, nothing is accepted), wait until every replica has the primary's
        replication offset, ``SENTINEL FAILOVER``, make the old primary a replica of the new one
        at once, then unpause it: the writes that waited get READONLY and go to the new primary.
        Returns the new primary's port.
        """
        old = self.primary()
        old_client = self._data_client(old)
        pause_ms = int(WAIT_TIMEOUT_S * 1000)
        old_client.execute_command("CLIENT", "PAUSE", pause_ms, "WRITE")  # type: ignore[no-untyped-call]
        try:
            _until("the replicas catching up with the paused primary", self._caught_up)
            _until("SENTINEL FAILOVER accepted", self._request_failover)
            new = _until("a sentinel reporting the new primary", lambda: self._any_new(old))
            old_client.execute_command("REPLICAOF", HOST, new)  # type: ignore[no-untyped-call]
        finally:
            old_client.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
            old_client.close()
        return self.wait_for_new_primary(old)

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary (its directory and AOF stay); returns it for restart().

        The sentinels fail over once it has been unreachable for ``down_after_ms``:
        wait_for_new_primary() returns when they have.
        """
        server = self.server(self.primary())
        server.kill()
        return server

    def restart(self, server: RedisServer) -> int:
        """Start a killed server again, same port and directory, from its AOF; return the
        primary's port once the topology has settled: the sentinels agree on a primary and every
        other data node, this one included, is its replica with the link up.

        Usually the sentinels make the restarted node a replica of the one they promoted. Under
        load they may also declare the freshly promoted primary down (``down_after_ms`` is short
        here) and fail over again, to the restarted node, which then stays the primary: settled
        too. Whichever it is, writes the demoted side took without its replica were never
        acknowledged under the durability barrier.

        Raises:
            TimeoutError: not settled within ``REJOIN_TIMEOUT_S``.
        """
        # Started before the sentinels replaced it, a killed primary would simply be the primary
        # again (its replicas reconnect): wait for the failover first.
        self.wait_for_new_primary(server.port)
        server.start()

        def settled() -> int | None:
            primary = self._agreed_primary()
            if primary is None:
                return None
            for other in self.servers:
                if other.port == primary:
                    continue
                client = self._data_client(other.port)
                try:
                    info = client.info("replication")
                finally:
                    client.close()
                if not (
                    info.get("role") == "slave"
                    and int(info.get("master_port", 0)) == primary
                    and info.get("master_link_status") == "up"
                ):
                    return None
            return primary

        try:
            what = f"port {server.port} back and the topology settled"
            return _until(what, settled, REJOIN_TIMEOUT_S)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log_tails()}") from None

    def log_tails(self, lines: int = 25) -> str:
        """The last ``lines`` of every sentinel's and data node's log, for a failure message."""
        parts = []
        named = [(f"sentinel {s.port}", s.log_path) for s in self._sentinels]
        named += [(f"redis {s.port}", s.log_path) for s in self.servers if s.log_path]
        for name, path in named:
            try:
                tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            except OSError as exc:
                tail = [f"(unreadable: {exc})"]
            parts.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def wait_until_replicated(self) -> None:
        """Return once every replica is linked to the primary and has its replication offset.

        Raises:
            TimeoutError: not within ``WAIT_TIMEOUT_S``.
        """
        _until("every replica online with the primary's offset", self._caught_up)

    # --- internals -------------------------------------------------------------------------------

    def _data_client(self, port: int) -> Redis:
        return Redis(host=HOST, port=port, socket_timeout=5, decode_responses=True)

    def _current_master_port(self) -> int | None:
        """The live server whose role is master (the first, while the sentinels are not up)."""
        for server in self.servers:
            client = self._data_client(server.port)
            try:
                if client.info("replication").get("role") == "master":
                    return server.port
            except (RedisError, OSError):
                continue
            finally:
                client.close()
        return None

    def _caught_up(self) -> bool:
        port = self._current_master_port()
        if port is None:
            return False
        client = self._data_client(port)
        try:
            info = client.info("replication")
        finally:
            client.close()
        offset = int(info["master_repl_offset"])
        linked = [
            value
            for key, value in info.items()
            if key.startswith("slave") and isinstance(value, dict)
        ]
        expected = len([s for s in self.servers if s.port != port])
        return len(linked) == expected and all(
            v.get("state") == "online" and int(v.get("offset", -1)) == offset for v in linked
        )

    def _formed(self) -> bool:
        primary = self._agreed_primary()
        if primary is None:
            return False
        for sentinel in self._sentinels:
            client = sentinel.client()
            try:
                replicas = client.execute_command("SENTINEL", "REPLICAS", self.master_name)  # type: ignore[no-untyped-call]
                peers = client.execute_command("SENTINEL", "SENTINELS", self.master_name)  # type: ignore[no-untyped-call]
            finally:
                client.close()
            healthy = [r for r in replicas if _flags(r) == {"slave"}]
            if len(healthy) != len(self.servers) - 1 or len(peers) != SENTINEL_COUNT - 1:
                return False
        return True

    def _reports(self) -> list[int | None]:
        ports: list[int | None] = []
        for sentinel in self._sentinels:
            client = sentinel.client()
            try:
                addr = client.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
                )
            except (RedisError, OSError):
                addr = None
            finally:
                client.close()
            ports.append(int(addr[1]) if addr else None)
        return ports

    def _agreed_primary(self) -> int | None:
        reports = self._reports()
        if not reports or reports[0] is None or len(set(reports)) != 1:
            return None
        return reports[0]

    def _any_new(self, old: int) -> int | None:
        for port in self._reports():
            if port is not None and port != old:
                return port
        return None

    def _request_failover(self) -> bool:
        """``SENTINEL FAILOVER`` on the first sentinel; False while it answers INPROG/NOGOODSLAVE
        (a previous failover still running, or the replicas not yet known healthy)."""
        client = self._sentinels[0].client()
        try:
            client.execute_command("SENTINEL", "FAILOVER", self.master_name)  # type: ignore[no-untyped-call]
        except ResponseError:
            return False
        finally:
            client.close()
        return True

    def wait_for_new_primary(self, old: int) -> int:
        """Return the port of the primary once all sentinels report one other than ``old`` and
        it has the role master (after kill_primary: the failover Sentinel starts by itself).

        Raises:
            TimeoutError: not within ``WAIT_TIMEOUT_S``.
        """

        def switched() -> int | None:
            new = self._agreed_primary()
            if new is None or new == old:
                return None
            client = self._data_client(new)
            try:
                return new if client.info("replication").get("role") == "master" else None
            finally:
                client.close()

        return _until(f"a new primary replacing port {old}", switched)


def _flags(entry: object) -> set[str]:
    """The ``flags`` of a ``SENTINEL REPLICAS`` entry (redis-py parses it into a dict with a set
    under ``flags``, or leaves a flat name/value list)."""
    if isinstance(entry, dict):
        flags = entry.get("flags", "")
        return set(flags) if isinstance(flags, (set, list, tuple)) else set(str(flags).split(","))
    if not isinstance(entry, list):
        raise TypeError(f"unexpected SENTINEL REPLICAS entry: {entry!r}")
    fields = dict(zip(entry[::2], entry[1::2], strict=True))
    return set(str(fields.get("flags", "")).split(","))
