"""Send slots: a fixed set of daemon threads that each run one send at a time.

A send spends nearly all its time waiting for AllMySMS (one slot sends at most 20 messages/s
against a 50 ms provider), so a worker process keeps several in flight. The claim in
:mod:`worker.store.ledger` still decides, per message, that it leaves ``queued`` once; slots change
how many messages wait on the network at once, not that guarantee.

Daemon threads, not a ``ThreadPoolExecutor``: a cold shutdown must be able to exit while a
request is still in flight (the worker records those sends ``unknown`` first).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import structlog

from worker.send.lanes import Taken


log = structlog.get_logger()


class SendSlots:
    """Runs ``run(taken)`` on up to ``size`` jobs at once."""

    def __init__(self, size: int, run: Callable[[Taken], None]) -> None:
        self._size = size
        self._run = run
        self._jobs: queue.SimpleQueue[Taken | None] = queue.SimpleQueue()
        self._changed = threading.Condition()
        self._busy: dict[str, Taken] = {}
        self._threads: list[threading.Thread] = []

    @property
    def size(self) -> int:
        return self._size

    def start(self) -> None:
        for number in range(self._size):
            thread = threading.Thread(target=self._loop, name=f"smsq-send-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Let every thread end after its current send (it does not wait for them)."""
        for _ in self._threads:
            self._jobs.put(None)
        self._threads.clear()

    def submit(self, taken: Taken) -> None:
        """Hand a job to a free slot; callers only submit when :meth:`free` is positive."""
        with self._changed:
            self._busy[taken.job_id] = taken
        self._jobs.put(taken)

    def free(self) -> int:
        with self._changed:
            return self._size - len(self._busy)

    def wait_free(self, timeout_s: float) -> int:
        """Wait until a slot is free (or ``timeout_s`` passes); return the free slots."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._busy) < self._size, timeout_s)
            return self._size - len(self._busy)

    def wait_idle(self, timeout_s: float | None) -> bool:
        """Wait until no send is in flight; False if ``timeout_s`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._busy, timeout_s)

    def in_flight(self) -> list[Taken]:
        with self._changed:
            return list(self._busy.values())

    def _loop(self) -> None:
        while True:
            taken = self._jobs.get()
            if taken is None:
                return
            try:
                self._run(taken)
            except Exception:  # a slot must outlive any one job
                log.exception("sms.slot.error", job_id=taken.job_id)
            finally:
                with self._changed:
                    self._busy.pop(taken.job_id, None)
                    self._changed.notify_all()
