"""The sandbox HTTP server: sendSms, simulateCampaign, getInfo, getBlacklist and deleteCampaign
over real sockets, the /_sandbox control endpoints, serve().

It only parses requests and writes replies; state and the sendSms contract live in ``provider``.
"""

from __future__ import annotations

import contextlib
import email.policy
import json
import signal
import socket
import sys
import threading
import time
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from worker.sandbox.acks import LOOKUP_ENDPOINTS
from worker.sandbox.provider import BASE_PATH, TEXT_PLAIN, Answer, SandboxProvider
from worker.sandbox.receipt_pusher import RECEIPT_DELAY_MS


SEND_PATHS = frozenset({f"{BASE_PATH}/sendSms/", f"{BASE_PATH}/sendSms"})
INFO_PATHS = frozenset({f"{BASE_PATH}/getInfo/", f"{BASE_PATH}/getInfo"})
SIMULATE_PATHS = frozenset({f"{BASE_PATH}/simulateCampaign/", f"{BASE_PATH}/simulateCampaign"})
BLACKLIST_PATHS = frozenset({f"{BASE_PATH}/getBlacklist/", f"{BASE_PATH}/getBlacklist"})
DELETE_CAMPAIGN_PATHS = frozenset({f"{BASE_PATH}/deleteCampaign/", f"{BASE_PATH}/deleteCampaign"})
LOOKUP_PATHS = {
    path: name
    for name in LOOKUP_ENDPOINTS
    for path in (f"{BASE_PATH}/{name}/", f"{BASE_PATH}/{name}")
}
"""The polling endpoints (acks and replies) → their names."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Larger bodies get 413: ~2000 recipients per request is the provider's own guidance."""
SHUTDOWN_POLL_S = 0.02
"""How often the accept loop checks for stop(); it bounds how long stop() takes."""
IDLE_TIMEOUT_S = 60
"""An idle keep-alive connection is closed after this, so demo runs do not pile up threads."""
NOT_HTTP_BYTES = b"\x00\x15garbage that is not HTTP\r\n\r\n"
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


class SandboxServer(ThreadingHTTPServer):
    """Counts accepted connections and can cut the open ones, so stop() never hangs."""

    # Handler threads are joined in server_close(): stop() leaves nothing running behind.
    daemon_threads = False
    # socketserver's listen backlog is 5: when restarted workers open their slots' connections
    # at once, the kernel drops handshakes past it and may then reset a connection the client
    # already sent its request on (a false "unknown" in the soak). A provider's is far larger.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], provider: SandboxProvider) -> None:
        super().__init__(address, _Handler)
        self.provider = provider
        self.stopping = threading.Event()
        self.accepted = 0
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a daemon thread; the socket already listens, so connections are accepted."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_S},
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut open connections, close the socket and join every thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.stopping.set()
        self.shutdown()
        self.close_connections()
        self.server_close()
        thread.join()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._open_lock:
            self.accepted += 1
            self._open.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            for connection in self._open:
                with contextlib.suppress(OSError):  # the client may have hung up first
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read timeout, drop tests) is normal here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One connection: sendSms, the control endpoints, 404 for everything else."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse their connection
    # Headers and body leave in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK of the headers (40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    server_version = "smsq-sandbox"
    timeout = IDLE_TIMEOUT_S
    server: SandboxServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: a GET access line would print the apiKey of the query string."""

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def _route(self) -> None:
        received_at = time.time()  # the request line and headers are read: it has arrived
        body = self._read_body()
        if body is None:
            return
        url = urlsplit(self.path)
        if url.path in SEND_PATHS and self.command in ("GET", "POST"):
            self._send_sms(url.query, body, received_at)
        elif url.path in SIMULATE_PATHS and self.command in ("GET", "POST"):
            self._send_sms(url.query, body, received_at, endpoint="simulateCampaign")
        elif url.path in INFO_PATHS and self.command in ("GET", "POST"):
            self._get_info(url.query, body)
        elif url.path in LOOKUP_PATHS and self.command in ("GET", "POST"):
            self._lookup(LOOKUP_PATHS[url.path], url.query, body)
        elif url.path in BLACKLIST_PATHS and self.command in ("GET", "POST"):
            self._get_info(url.query, body, endpoint="getBlacklist")
        elif url.path in DELETE_CAMPAIGN_PATHS and self.command in ("GET", "POST"):
            self._answer(
                self.server.provider._answer_delete_campaign(self._params(url.query, body))
            )
        elif url.path.startswith("/_sandbox/"):
            self._control(url.path.rstrip("/"), body)
        else:
            self._write(404, b"not found\n")

    def _read_body(self) -> bytes | None:
        """Read the whole body, or answer 411/400/413 and close; ``None`` means answered."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._write(411, b"Content-Length required\n")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._write(400 if length < 0 else 413, b"bad or too large body\n")
            return None
        return self.rfile.read(length)

    def _send_sms(
        self, query: str, body: bytes, received_at: float, endpoint: str = "sendSms"
    ) -> None:
        params = dict(parse_qsl(query, keep_blank_values=True))
        encoding = "query"
        mime = self.headers.get_content_type()
        if self.command == "POST" and mime == _FORM:
            encoding = "form"
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif self.command == "POST" and mime == _MULTIPART:
            encoding = "multipart"
            params.update(_multipart_fields(self.headers.get("Content-Type", ""), body))
        self._answer(
            self.server.provider._answer_send(
                self.command, encoding, params, received_at=received_at, endpoint=endpoint
            )
        )

    def _get_info(self, query: str, body: bytes, endpoint: str = "getInfo") -> None:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if self.command == "POST" and self.headers.get_content_type() == _FORM:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        provider = self.server.provider
        if endpoint == "getBlacklist":
            self._answer(provider._answer_blacklist(params))
        else:
            self._answer(provider._answer_info(params))

    def _params(self, query: str, body: bytes) -> dict[str, str]:
        """The query string's parameters, then a form or multipart POST body's over them."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        mime = self.headers.get_content_type()
        if self.command == "POST" and mime == _FORM:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif self.command == "POST" and mime == _MULTIPART:
            params.update(_multipart_fields(self.headers.get("Content-Type", ""), body))
        return params

    def _lookup(self, endpoint: str, query: str, body: bytes) -> None:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if self.command == "POST" and self.headers.get_content_type() == _FORM:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        self._answer(self.server.provider._answer_lookup(endpoint, params))

    def _answer(self, answer: Answer) -> None:
        if answer.delay_s > 0:
            self.server.stopping.wait(answer.delay_s)
        if answer.action == "reply":
            self._write(answer.code, answer.body, answer.content_type, answer.headers)
            return
        self.close_connection = True
        if answer.action == "not_http":
            self.wfile.write(NOT_HTTP_BYTES)

    def _control(self, path: str, body: bytes) -> None:
        provider = self.server.provider
        route = f"{self.command} {path}"
        try:
            payload = json.loads(body) if body.strip() else {}
            if route == "GET /_sandbox/health":
                self._json(200, {"ok": True})
            elif route == "GET /_sandbox/requests":
                self._json(200, provider.requests())
            elif route == "DELETE /_sandbox/requests":
                provider.clear_requests()
                self._json(200, {"ok": True})
            elif route == "POST /_sandbox/faults":
                provider.add_fault(payload)
                self._json(201, {"ok": True})
            elif route == "DELETE /_sandbox/faults":
                provider.clear_faults()
                self._json(200, {"ok": True})
            elif route == "POST /_sandbox/credits":
                if not isinstance(payload, dict) or "credits" not in payload:
                    raise ValueError("credits: required")
                provider.set_credits(payload["credits"])
                self._json(200, {"credits": payload["credits"]})
            elif route == "GET /_sandbox/receipts/pending":
                self._json(200, {"pending": provider.receipts.pending()})
            elif path == "/_sandbox/receipts":
                self._receipts(payload)
            elif path == "/_sandbox/blacklist":
                self._blacklist(payload)
            elif route == "POST /_sandbox/reset":
                provider.reset()
                self._json(200, {"ok": True})
            else:
                self._write(404, b"not found\n")
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            self._json(400, {"error": str(exc)})

    def _receipts(self, payload: Any) -> None:
        """``GET`` the webhook calls made, ``DELETE`` forgets them, ``POST {"receipts_url",
        "replies_url", "delay_ms"}`` sets where they go.

        Raises:
            ValueError: the POSTed settings are invalid (answered 400 by the caller).
        """
        provider = self.server.provider
        if self.command == "GET":
            self._json(200, provider.receipts.log())
        elif self.command == "DELETE":
            provider.receipts.clear()
            self._json(200, {"ok": True})
        elif self.command == "POST":
            if not isinstance(payload, dict):
                raise ValueError("receipts: must be a JSON object")
            provider.set_receipts_url(
                payload.get("receipts_url"),
                payload.get("replies_url"),
                payload.get("delay_ms", RECEIPT_DELAY_MS),
                echo_cli_msg_id=payload.get("echo_cli_msg_id", True),
            )
            self._json(200, {"ok": True})
        else:
            self._write(404, b"not found\n")

    def _blacklist(self, payload: Any) -> None:
        """``GET`` lists the STOP list, ``POST {"phoneNumber", "comment", "receptionDate"}``
        adds to it, ``DELETE`` empties it.

        Raises:
            ValueError: a POSTed entry is invalid (answered 400 by the caller).
        """
        provider = self.server.provider
        if self.command == "GET":
            self._json(200, provider.blacklisted())
        elif self.command == "POST":
            self._json(201, provider.blacklist(payload))
        elif self.command == "DELETE":
            provider.clear_blacklist()
            self._json(200, {"ok": True})
        else:
            self._write(404, b"not found\n")

    def _json(self, code: int, value: Any) -> None:
        self._write(code, json.dumps(value).encode(), "application/json")

    def _write(
        self,
        code: int,
        body: bytes,
        content_type: str = TEXT_PLAIN,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    """Read the text fields of a multipart/form-data body (file parts included, as UTF-8)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name is not None and isinstance(payload, bytes):
            fields[collapse_rfc2231_value(name)] = payload.decode("utf-8", "replace")
    return fields


def serve(
    *,
    host: str,
    port: int,
    login: str,
    api_key: str,
    latency_ms: int = 0,
    receipts_url: str | None = None,
    replies_url: str | None = None,
    receipts_delay_ms: int = RECEIPT_DELAY_MS,
) -> None:
    """Run a sandbox until SIGINT or SIGTERM, then stop it cleanly.

    Prints ``sandbox listening on http://HOST:PORT/http/9.0`` once the socket listens.
    """
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    provider = SandboxProvider(
        host=host,
        port=port,
        login=login,
        api_key=api_key,
        latency_ms=latency_ms,
        receipts_url=receipts_url,
        replies_url=replies_url,
        receipts_delay_ms=receipts_delay_ms,
    )
    try:
        provider.start()
        sys.stdout.write(f"sandbox listening on http://{host}:{provider.port}{BASE_PATH}\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        provider.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
