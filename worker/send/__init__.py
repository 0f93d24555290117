"""The path of one send, in reading order.

:mod:`~worker.send.runtime` builds a worker's parts from the settings;
:mod:`~worker.send.runner` is the RQ worker loop; :mod:`~worker.send.intake` turns raw Redis
entries into jobs; :mod:`~worker.send.lanes` takes jobs from the lanes in priority order
(urgent first); :mod:`~worker.send.slots` bounds the sends in flight;
:mod:`~worker.send.sender` claims a message, waits for a rate-limit turn
(:mod:`~worker.send.ratelimit`), posts it and settles the outcome, retrying transport failures
only (:mod:`~worker.send.retries`). Crash safety: :mod:`~worker.send.heartbeat`,
:mod:`~worker.send.reconciler`, :mod:`~worker.send.supervisor`, and the fault-injection points
of :mod:`~worker.send.crashpoints`.
"""
