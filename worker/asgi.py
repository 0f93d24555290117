"""Running an ASGI application (the admin page, the gateway) under uvicorn: in the foreground
for a command, or from a background thread for tests and tools.

Both servers read requests with deadlines (:mod:`worker.deadlines`) and believe forwarded
headers only from ``SMSQ_TRUSTED_PROXIES`` (:class:`worker.settings.ServerSettings`).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn

from worker.deadlines import deadline_protocol
from worker.settings import ServerSettings


if TYPE_CHECKING:
    from types import FrameType

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

GRACEFUL_SHUTDOWN_S = 5.0
"""Longest wait for requests in progress once a stop is asked for."""
START_TIMEOUT_S = 10.0


class AppServer(uvicorn.Server):
    """uvicorn's server, announcing where it listens and returning normally on a signal."""

    def __init__(self, config: uvicorn.Config, *, announce: str | None = None) -> None:
        """``announce`` is printed once listening, ``{url}`` replaced by the base URL."""
        super().__init__(config)
        self._announce = announce

    @property
    def port(self) -> int:
        """The port actually bound (``port=0`` picks a free one)."""
        sockets = self.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until stopped. The listening socket is opened here first, so a port in use
        raises ``OSError`` (``EADDRINUSE``) to the caller instead of uvicorn's log-and-exit."""
        if sockets is None:
            sockets = [listen(self.config.host, self.config.port)]
        super().run(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._announce:
            url = base_url(self.config.host, self.port, tls=self.config.ssl_certfile is not None)
            sys.stdout.write(self._announce.format(url=url) + "\n")
            sys.stdout.flush()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn would re-raise the signal after shutting down, ending the process with
        # SIGTERM's default action or a KeyboardInterrupt; a finished shutdown is a clean exit.
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (IPv6 when the host has a colon).

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def base_url(host: str, port: int, *, tls: bool = False) -> str:
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    server: ServerSettings | None = None,
) -> uvicorn.Config:
    """uvicorn settings; with ``tls_cert``/``tls_key`` (PEM files) it serves HTTPS itself.

    Args:
        server: read deadlines and trusted proxies; None reads them from the environment
            (``ServerSettings.from_env``).

    Raises:
        ConfigError: ``server`` is None and a variable is invalid.
    """
    server = ServerSettings.from_env() if server is None else server
    proxies = [str(network) for network in server.trusted_proxies]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        # No access log: gateway query strings carry apiKeys and webhook paths their secret.
        access_log=False,
        # Leave logging to the process (structlog's root handler) instead of uvicorn's own.
        log_config=None,
        # The admin login throttle and the logs key on the client address: X-Forwarded-For and
        # X-Forwarded-Proto count only from a listed proxy (uvicorn takes the nearest address
        # not itself a listed proxy); without one, uvicorn's own default (loopback) is not used.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
        http=deadline_protocol(server),
        server_header=False,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
    )


@contextmanager
def running(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    server: ServerSettings | None = None,
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yield its base URL, stop it on exit.

    Raises:
        TimeoutError: the server did not start listening in time.
    """
    uvicorn_config = config(
        app, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, server=server
    )
    app_server = AppServer(uvicorn_config)
    thread = threading.Thread(target=app_server.run, name="asgi-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not app_server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            app_server.should_exit = True
            raise TimeoutError(f"server did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield base_url(host, app_server.port, tls=tls_cert is not None)
    finally:
        app_server.should_exit = True
        thread.join(GRACEFUL_SHUTDOWN_S + 5)


class SecurityHeaders:
    """ASGI middleware: ``headers`` on every HTTP response that does not set them itself,
    errors included (``Middleware(SecurityHeaders, headers={...})``)."""

    def __init__(self, app: ASGIApp, *, headers: Mapping[str, str]) -> None:
        self.app = app
        self._headers = [
            (n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self._headers if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
