"""Read deadlines for the HTTP servers (``smsq admin``, ``smsq gateway``): uvicorn's h11
protocol with a limit on how long a client may take to send a request's head and its body.

uvicorn (0.54) has no such limit: ``timeout_keep_alive`` only covers the idle gap after a
response, and any byte received cancels it, so a client that trickles a request one byte at a
time, or announces a body it never sends, holds its connection (and a file descriptor) forever.
ASGI middleware cannot help: the application is only called once the headers are complete.
This subclass watches h11's own parser state after every read:

- request head incomplete (``IDLE`` with bytes buffered, or a new connection): the head must be
  complete within ``header_timeout_s`` of the connection or of its first byte, else the client
  gets ``408 Request Timeout`` and the connection is closed;
- body incomplete (``SEND_BODY``): it must be complete within ``body_timeout_s`` of the headers,
  else the connection is closed (the application sees a disconnect);
- otherwise (request in, response going out, idle keep-alive): no deadline of ours.

The deadline is fixed when the phase starts: sending one more byte does not extend it. While
the server itself has paused reading (an application slow to read a large body), the deadline
waits for it rather than blaming the client.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

from worker.settings import SERVER_BODY_TIMEOUT_S, SERVER_HEADER_TIMEOUT_S


if TYPE_CHECKING:
    from worker.settings import ServerSettings

log = structlog.get_logger()

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 24\r\n\r\nRequest took too long.\r\n"
)
"""Written raw: h11 cannot answer a request whose head it has not parsed."""


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head or body is too slow."""

    header_timeout_s: ClassVar[float] = SERVER_HEADER_TIMEOUT_S
    body_timeout_s: ClassVar[float] = SERVER_BODY_TIMEOUT_S
    _deadline: asyncio.TimerHandle | None = None
    _phase: str = ""
    _responses: int = 0
    """Responses completed on this connection: past the first, idle time is keep-alive's."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers", self.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        self._responses += 1
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Arm, keep or drop the deadline for the phase h11's parser is now in."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self.conn.trailing_data[0]:
                if self._phase != "headers":
                    self._arm("headers", self.header_timeout_s)
            elif self._responses:
                # Idle between requests: uvicorn's keep-alive timeout applies.
                self._disarm()
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.body_timeout_s)
        else:
            self._disarm()

    def _arm(self, phase: str, timeout_s: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = ""

    def _expired(self) -> None:
        phase, self._deadline = self._phase, None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            # We stopped reading, not the client: give it the time again once reading resumes.
            self._arm(phase, self.body_timeout_s if phase == "body" else self.header_timeout_s)
            return
        self._phase = ""
        log.warning(
            "http.read_timeout",
            phase=phase,
            client=self.client[0] if self.client else "unknown",
            timeout_s=self.body_timeout_s if phase == "body" else self.header_timeout_s,
        )
        if phase == "headers":
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()


def deadline_protocol(server: ServerSettings) -> type[DeadlineH11Protocol]:
    """A :class:`DeadlineH11Protocol` with ``server``'s deadlines (uvicorn takes a class)."""
    return type(
        "DeadlineH11Protocol",
        (DeadlineH11Protocol,),
        {"header_timeout_s": server.header_timeout_s, "body_timeout_s": server.body_timeout_s},
    )
