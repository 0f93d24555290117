"""What every request handler shares: settings, the Redis connection and the login throttles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from producers.durability import Barrier
from worker.store.control import Switch
from worker.store.deadletters import DeadLetterDesk
from worker.store.ledger import Ledger


if TYPE_CHECKING:
    from redis import Redis
    from starlette.requests import Request

    from worker.admin.throttle import FailureBudget, LoginThrottle
    from worker.settings import Settings


@dataclass(frozen=True, slots=True)
class AdminContext:
    settings: Settings
    connection: Redis
    throttle: LoginThrottle
    budget: FailureBudget

    def desk(self, user: str) -> DeadLetterDesk:
        """A dead-letter desk whose history entries name the web user."""
        ttl_s = self.settings.producer.outcome_ttl_s
        ledger = Ledger(
            self.connection, ttl_s=ttl_s, worker_name=f"web {user}", barrier=self.barrier
        )
        return DeadLetterDesk(
            self.connection, ledger, ttl_s=ttl_s, audit_ttl_s=self.settings.audit_ttl_s
        )

    def switch(self) -> Switch:
        """The kill switch, recording pauses and resumes in the audit stream."""
        return Switch(self.connection, audit_ttl_s=self.settings.audit_ttl_s, barrier=self.barrier)

    @property
    def barrier(self) -> Barrier:
        return Barrier.from_settings(self.settings.producer)


def context_of(request: Request) -> AdminContext:
    admin: AdminContext = request.app.state.admin
    return admin
