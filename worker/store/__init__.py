"""What smsq keeps in Redis, and the scripts that change it atomically.

The message ledger and its state machine (:mod:`~worker.store.ledger`), dead letters
(:mod:`~worker.store.deadletters`) and the builders of those that never were messages
(:mod:`~worker.store.refused`), pause and resume (:mod:`~worker.store.control`), delivery
receipts and replies (:mod:`~worker.store.receipts`), the erasure of one person's data
(:mod:`~worker.store.purge`), counters (:mod:`~worker.store.stats`), and every Lua script as a
``.lua`` file with its loader (:mod:`~worker.store.lua`).
"""
