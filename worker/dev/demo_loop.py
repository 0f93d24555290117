"""The demo's second half: a non-Python backend through ``smsq gateway``, delivery receipts
from the sandbox, and signed callbacks to a receiver, all on this machine."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from producers.callbacks import verify_callback
from producers.errors import CallbackVerificationError


CLIENT_MESSAGE_ID = "order-4711-shipped"
PHP_STYLE_FLUX = (
    "<DATA><MESSAGE><![CDATA[Votre commande 4711 est expédiée.]]></MESSAGE>"
    f"<TPOA>Boutique</TPOA><CLIMSGID>{CLIENT_MESSAGE_ID}</CLIMSGID>"
    "<SMS><MOBILEPHONE>0688776655</MOBILEPHONE></SMS></DATA>"
)
"""What the provider page's PHP snippet posts, with its own values (CLIMSGID: the client's
message id, hence smsq's idempotency key)."""


@dataclass
class Receiver:
    """A producer's callback endpoint: keeps each event and whether it verifies (signature over
    id, timestamp and body; timestamp within 5 minutes)."""

    secret: str
    events: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def serving(self) -> Iterator[str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    verify_callback(dict(self.headers.items()), body, receiver.secret)
                    signed = True
                except CallbackVerificationError:
                    signed = False
                with receiver.lock:
                    receiver.events.append((json.loads(body), signed))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/smsq-events"
        finally:
            server.shutdown()
            server.server_close()


def post_like_php(gateway_url: str, login: str, api_key: str, callback_url: str) -> dict[str, Any]:
    """The provider page's PHP client, URL changed to the gateway (plus smsq's callbackUrl)."""
    answer = httpx.post(
        f"{gateway_url}/http/9.0/sendSms/",
        data={
            "login": login,
            "apiKey": api_key,
            "smsData": PHP_STYLE_FLUX,
            "returnformat": "json",
            "callbackUrl": callback_url,
        },
        timeout=10,
    )
    answer.raise_for_status()
    return dict(answer.json())
