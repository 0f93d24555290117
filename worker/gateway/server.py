"""``smsq gateway``: the AllMySMS-compatible endpoint under uvicorn (see :mod:`worker.asgi`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from producers import connect
from producers.durability import Barrier
from producers.errors import ConfigError
from worker.asgi import AppServer, config, running
from worker.gateway.app import create_app


if TYPE_CHECKING:
    from worker.settings import Settings

__all__ = ["BASE_PATH", "running", "serve"]

BASE_PATH = "/http/9.0"
"""What clients put in place of ``https://api.allmysms.com/http/9.0``."""


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Serve the gateway until SIGINT or SIGTERM, then stop cleanly.

    Prints ``gateway listening on http://HOST:PORT/http/9.0/sendSms/`` once the socket listens.

    Raises:
        ConfigError: no producer account is configured, or the server lacks the barrier's
            WAITAOF (``SMSQ_REDIS_WAIT_AOF``).
    """
    connection = connect(settings.producer)
    try:
        Barrier.from_settings(settings.producer).check_server(connection)
    except (RedisError, OSError):
        pass  # Redis is not up yet: every send answers 503 until it is
    except ConfigError:
        connection.close()
        raise
    try:
        AppServer(
            config(create_app(settings, connection), host=host, port=port, server=settings.server),
            announce="gateway listening on {url}" + BASE_PATH + "/sendSms/",
        ).run()
    finally:
        connection.close()
