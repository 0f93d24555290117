"""Start a private ``redis-server`` on a free loopback port (the demo and the test suite)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from redis import Redis


START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[bytes] | None, *, grace_s: float = 5.0) -> None:
    """SIGTERM ``process`` if it still runs, SIGKILL it after ``grace_s``, and reap it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class RedisServer:
    """A redis-server child process in its own temporary directory."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        directory: Path | None = None,
        extra_args: list[str] | None = None,
        client_kwargs: dict[str, object] | None = None,
        log: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.client_kwargs = client_kwargs or {}
        self.appendonly = appendonly
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="smsq-redis-"))
        self.log_path: Path | None = self.directory / "redis.log" if log else None
        """With ``log=True``: the server's own log (kept across restarts, read on failures)."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start and wait until it answers PING.

        Raises:
            FileNotFoundError: no ``redis-server`` on PATH.
            TimeoutError: it did not answer within ``START_TIMEOUT_S``.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError(
                "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)"
            )
        self._process = subprocess.Popen(  # noqa: S603 - our own argument list
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--dir",
                str(self.directory),
                # As deploy/redis.conf: an acknowledged write (a claim) is on disk.
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
                "--protected-mode",
                "yes",
                *(["--logfile", str(self.log_path)] if self.log_path is not None else []),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis(port=self.port, socket_connect_timeout=0.5, **self.client_kwargs)  # type: ignore[arg-type]
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                client.ping()
            except OSError:
                time.sleep(0.05)
            except Exception:  # noqa: BLE001 - redis-py wraps connection refusals variously
                time.sleep(0.05)
            else:
                client.close()
                return self
        self.stop()
        raise TimeoutError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; its directory (and AOF) stays for a restart."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def stop(self) -> None:
        terminate(self._process)
        self._process = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
