"""``send_sms``: the job callable every smsq job names, and a guard against running it elsewhere.

Every job smsq writes names ``worker.jobs.send_sms`` (its path is part of the wire contract, see
:data:`producers.contract.SEND_SMS_JOB`), but no smsq process calls it: ``smsq worker``
(:class:`worker.send.runner.SmsWorker`) checks each job and calls the sender itself, inside the
claim, heartbeat and intermediate-list bookkeeping that make a send at most once. A plain
``rq worker`` on smsq's queues would call this function instead, without that bookkeeping: its
sends would carry no heartbeat, so the reconciler of a real smsq worker could judge a send in
flight abandoned and settle it as unknown. So the function refuses, and RQ records the job as
failed with the reason.
"""

from __future__ import annotations

from producers.errors import RefusedJobError


FOREIGN_EXECUTOR_REASON = (
    "send_sms runs only inside `smsq worker`, which calls the sender itself; "
    "a plain rq worker cannot send at most once, so nothing was sent"
)


def send_sms(message_id: str) -> str:
    """Refuse: smsq jobs are run by ``smsq worker``, never by this function.

    Raises:
        RefusedJobError: always, with :data:`FOREIGN_EXECUTOR_REASON`.
    """
    raise RefusedJobError(FOREIGN_EXECUTOR_REASON)
