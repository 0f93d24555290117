"""Running the admin application under uvicorn: ``serve()`` for ``smsq admin``, and ``running()``
for tests and tools that need it in a background thread."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn

from producers import connect
from worker.admin.app import create_app


if TYPE_CHECKING:
    from types import FrameType

    from starlette.types import ASGIApp

    from worker.settings import Settings

GRACEFUL_SHUTDOWN_S = 5.0
"""Longest wait for requests in progress once a stop is asked for."""
START_TIMEOUT_S = 10.0


class AdminServer(uvicorn.Server):
    """uvicorn's server, announcing where it listens and returning normally on a signal."""

    def __init__(self, config: uvicorn.Config, *, announce: bool = False) -> None:
        super().__init__(config)
        self._announce = announce

    @property
    def port(self) -> int:
        """The port actually bound (``port=0`` picks a free one)."""
        sockets = self.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._announce:
            sys.stdout.write(f"admin listening on {base_url(self.config.host, self.port)}/\n")
            sys.stdout.flush()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn would re-raise the signal after shutting down, ending the process with
        # SIGTERM's default action or a KeyboardInterrupt; a finished shutdown is a clean exit.
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def config(app: ASGIApp, *, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, lifespan="off", access_log=False,
        # Leave logging to the process (structlog's root handler) instead of uvicorn's own.
        log_config=None,
        # The login throttle keys on the peer address; a forwarded header is not trusted.
        proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S))


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Serve the admin page until SIGINT or SIGTERM, then stop cleanly.

    Prints ``admin listening on http://HOST:PORT/`` once the socket listens.
    """
    connection = connect(settings.producer)
    try:
        AdminServer(config(create_app(settings, connection), host=host, port=port),
                    announce=True).run()
    finally:
        connection.close()


@contextmanager
def running(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a background thread; yield its base URL, stop it on exit.

    Raises:
        TimeoutError: the server did not start listening in time.
    """
    server = AdminServer(config(app, host=host, port=port))
    thread = threading.Thread(target=server.run, name="admin-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"admin server did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield base_url(host, server.port)
    finally:
        server.should_exit = True
        thread.join(GRACEFUL_SHUTDOWN_S + 5)
