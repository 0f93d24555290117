"""Running the gateway under uvicorn: ``serve()`` for ``smsq gateway``, and ``running()`` for
tests and tools that need it in a background thread."""

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
from worker.gateway.app import create_app


if TYPE_CHECKING:
    from types import FrameType

    from starlette.types import ASGIApp

    from worker.settings import Settings

GRACEFUL_SHUTDOWN_S = 5.0
"""Longest wait for requests in progress once a stop is asked for."""
START_TIMEOUT_S = 10.0
BASE_PATH = "/http/9.0"
"""What clients put in place of ``https://api.allmysms.com/http/9.0``."""


class GatewayServer(uvicorn.Server):
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
            url = base_url(self.config.host, self.port)
            sys.stdout.write(f"gateway listening on {url}{BASE_PATH}/sendSms/\n")
            sys.stdout.flush()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A finished shutdown is a clean exit, not the signal's default action (see admin).
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


def base_url(host: str, port: int, *, tls: bool = False) -> str:
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def config(app: ASGIApp, *, host: str, port: int, tls_cert: str | None = None,
           tls_key: str | None = None) -> uvicorn.Config:
    """uvicorn settings; with ``tls_cert``/``tls_key`` (PEM files) it serves HTTPS itself."""
    return uvicorn.Config(
        app, host=host, port=port, lifespan="off", ssl_certfile=tls_cert, ssl_keyfile=tls_key,
        # An access line would hold GET query strings, hence apiKeys: none at all.
        access_log=False,
        # Leave logging to the process (structlog's root handler) instead of uvicorn's own.
        log_config=None,
        proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S))


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Serve the gateway until SIGINT or SIGTERM, then stop cleanly.

    Prints ``gateway listening on http://HOST:PORT/http/9.0/sendSms/`` once the socket listens.

    Raises:
        ConfigError: no producer account is configured.
    """
    connection = connect(settings.producer)
    try:
        GatewayServer(config(create_app(settings, connection), host=host, port=port),
                      announce=True).run()
    finally:
        connection.close()


@contextmanager
def running(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0,
            tls_cert: str | None = None, tls_key: str | None = None) -> Iterator[str]:
    """Serve ``app`` from a background thread; yield its base URL, stop it on exit.

    Raises:
        TimeoutError: the server did not start listening in time.
    """
    server = GatewayServer(config(app, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key))
    thread = threading.Thread(target=server.run, name="gateway-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"gateway did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield base_url(host, server.port, tls=tls_cert is not None)
    finally:
        server.should_exit = True
        thread.join(GRACEFUL_SHUTDOWN_S + 5)
