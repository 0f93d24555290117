"""``smsq admin``: the operators' page under uvicorn (see :mod:`worker.asgi`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from producers import connect
from worker.admin.app import create_app
from worker.asgi import AppServer, config, running


if TYPE_CHECKING:
    from worker.settings import Settings

__all__ = ["running", "serve"]


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Serve the admin page until SIGINT or SIGTERM, then stop cleanly.

    Prints ``admin listening on http://HOST:PORT/`` once the socket listens.
    """
    connection = connect(settings.producer)
    try:
        AppServer(
            config(create_app(settings, connection), host=host, port=port, server=settings.server),
            announce="admin listening on {url}/",
        ).run()
    finally:
        connection.close()
