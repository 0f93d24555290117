"""What smsq keeps in Redis, and the scripts that change it atomically.

The message ledger and its state machine (:mod:`~worker.store.ledger`), dead letters
(:mod:`~worker.store.deadletters`), operator controls such as pause and cancel
(:mod:`~worker.store.control`), delivery receipts and replies (:mod:`~worker.store.receipts`),
retention (:mod:`~worker.store.purge`) and counters (:mod:`~worker.store.stats`).
"""
