"""What every gateway request handler shares: settings, the producer, the store, the accounts,
the callback policy and the limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from starlette.requests import Request

    from producers.enqueue import Producer
    from producers.store import MessageStore
    from worker.callbacks.policy import CallbackPolicy
    from worker.gateway.accounts import ProducerBook
    from worker.gateway.limits import GatewayLimits
    from worker.settings import Settings
    from worker.store.quotas import Quotas


@dataclass(frozen=True, slots=True)
class GatewayContext:
    settings: Settings
    producer: Producer
    store: MessageStore
    book: ProducerBook
    callback_policy: CallbackPolicy
    """Where a ``callbackUrl`` may point (``SMSQ_CALLBACK_ALLOWED_HOSTS``/``_NETWORKS``)."""
    limits: GatewayLimits
    """The request rate per login and the failed-login throttle, counted in Redis."""
    quotas: Quotas
    """Each account's daily and monthly SMS quotas, counted in Redis."""


def context_of(request: Request) -> GatewayContext:
    gateway: GatewayContext = request.app.state.gateway
    return gateway
