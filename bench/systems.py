"""The three systems under test, behind one small interface: how to start their workers, tell
when they are ready, enqueue one message or a batch, and see their queue drain."""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from redis import Redis

PHONE_NATIONAL = "0612345678"
"""What a producer gives smsq; smsq sends it as PHONE_INTERNATIONAL, as the baselines do."""
PHONE_INTERNATIONAL = "33612345678"
RQ_WORKERS_KEY = "rq:workers"


@dataclass(frozen=True)
class Message:
    key: str
    text: str


class System(ABC):
    name = ""
    worker_depth = 0
    """Depth, in the process tree we start, of the processes that run jobs."""
    replicas = 0
    """Replicas run.py attaches to the bench's Redis while this system is measured."""
    extra_env: dict[str, str] = {}  # noqa: RUF012 - read-only, overridden per class
    """Settings added to its workers' environment."""
    cwd: Path | None = None
    """Its workers' working directory (None: this checkout)."""

    def __init__(self, redis: Redis, processes: int) -> None:
        self.redis = redis
        self.processes = processes

    @abstractmethod
    def commands(self) -> list[list[str]]:
        """The command lines that start this system's workers."""

    @abstractmethod
    def ready(self, log_text: str) -> bool:
        """Whether the workers are up, judged from their log so far."""

    @abstractmethod
    def pending(self) -> int:
        """Messages still waiting in the system's queue."""

    @abstractmethod
    def enqueue_batch(self, messages: list[Message]) -> list[float]:
        """Enqueue with the system's bulk API; return when each message's enqueue call began."""

    def enqueue_one(self, message: Message) -> None:
        self.enqueue_batch([message])


class Smsq(System):
    name = "smsq"

    def __init__(self, redis: Redis, processes: int) -> None:
        super().__init__(redis, processes)
        from producers.config import ProducerSettings
        from producers.enqueue import Producer

        self._producer = Producer(redis, ProducerSettings(wait_replicas=self.replicas))
        self.worker_depth = 1 if processes > 1 else 0  # a supervisor above N > 1 workers

    def commands(self) -> list[list[str]]:
        return [[sys.executable, "-m", "worker", "worker", "--processes", str(self.processes)]]

    def ready(self, log_text: str) -> bool:
        return int(self.redis.scard(RQ_WORKERS_KEY)) >= self.processes

    def pending(self) -> int:
        return int(self.redis.llen("rq:queue:smsq-default"))

    def enqueue_batch(self, messages: list[Message]) -> list[float]:
        stamp = time.time()
        results = self._producer.enqueue_many(
            [
                {"key": m.key, "campaign": m.key, "text": m.text, "to": [PHONE_NATIONAL]}
                for m in messages
            ]
        )
        bad = [r for r in results if getattr(r, "duplicate", True)]
        if bad:
            raise RuntimeError(f"smsq refused or deduplicated {len(bad)} message(s): {bad[0]}")
        return [stamp] * len(messages)


class SmsqWait1(Smsq):
    """smsq with the durability barrier on (``SMSQ_REDIS_WAIT_REPLICAS=1``): the producer and the
    workers wait for one replica after every write that backs an acknowledgment."""

    name = "smsq-wait1"
    replicas = 1
    extra_env = {"SMSQ_REDIS_WAIT_REPLICAS": "1"}  # noqa: RUF012


class SmsqBaseline(Smsq):
    """smsq's workers from another checkout (``run.py --baseline PATH``, e.g. a ``git worktree``
    of an earlier commit), fed by this checkout's producer: a regression check in one run."""

    name = "smsq-base"
    tree: Path | None = None
    """Set by run.py from --baseline."""

    @property
    def extra_env(self) -> dict[str, str]:  # type: ignore[override]
        return {"PYTHONPATH": str(self._tree())}

    @property
    def cwd(self) -> Path | None:  # type: ignore[override]
        # ``python -m worker`` puts its working directory first on sys.path.
        return self._tree()

    def _tree(self) -> Path:
        if self.tree is None:
            raise RuntimeError("smsq-base needs run.py --baseline PATH (a checkout to compare)")
        return self.tree


class Rq(System):
    name = "rq"
    FUNC = "bench.peers.rq_peer.send"

    def __init__(self, redis: Redis, processes: int) -> None:
        super().__init__(redis, processes)
        from rq import Queue

        self._queue = Queue("default", connection=redis)

    def commands(self) -> list[list[str]]:
        url = self.redis.connection_pool.connection_kwargs
        return [
            [
                sys.executable,
                "-m",
                "rq.cli",
                "worker",
                "-c",
                "bench.peers.rq_peer",
                "-u",
                f"redis://{url['host']}:{url['port']}/0",
                "--logging_level",
                "WARNING",
                "default",
            ]
            for _ in range(self.processes)
        ]

    def ready(self, log_text: str) -> bool:
        return int(self.redis.scard(RQ_WORKERS_KEY)) >= self.processes

    def pending(self) -> int:
        return int(self.redis.llen("rq:queue:default"))

    def enqueue_batch(self, messages: list[Message]) -> list[float]:
        stamp = time.time()
        self._queue.enqueue_many(
            [
                self._queue.prepare_data(self.FUNC, args=(m.key, PHONE_INTERNATIONAL, m.text))
                for m in messages
            ]
        )
        return [stamp] * len(messages)

    def enqueue_one(self, message: Message) -> None:
        self._queue.enqueue(self.FUNC, message.key, PHONE_INTERNATIONAL, message.text)


class Dramatiq(System):
    name = "dramatiq"
    worker_depth = 1  # the dramatiq main process forks its worker process(es)
    THREADS = 8

    def __init__(self, redis: Redis, processes: int) -> None:
        super().__init__(redis, processes)
        # The peer module builds its broker from REDIS_URL at import (set by run.py).
        from bench.peers import dramatiq_peer

        self._actor: Any = dramatiq_peer.send

    def commands(self) -> list[list[str]]:
        # Two cores: one worker process with dramatiq's default 8 threads, as peers configure.
        return [
            [
                str(Path(sys.executable).parent / "dramatiq"),
                "bench.peers.dramatiq_peer",
                "--processes",
                "1",
                "--threads",
                str(self.THREADS),
            ]
        ]

    def ready(self, log_text: str) -> bool:
        return log_text.count("Worker process is ready for action") >= 1

    def pending(self) -> int:
        return int(self.redis.llen("dramatiq:default"))

    def enqueue_batch(self, messages: list[Message]) -> list[float]:
        stamps = []
        for m in messages:  # dramatiq has no batch enqueue: one Lua call per message
            stamps.append(time.time())
            self._actor.send(m.key, PHONE_INTERNATIONAL, m.text)
        return stamps


SYSTEMS: dict[str, type[System]] = {
    "smsq": Smsq,
    "smsq-wait1": SmsqWait1,
    "smsq-base": SmsqBaseline,
    "rq": Rq,
    "dramatiq": Dramatiq,
}
