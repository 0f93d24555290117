"""A reply that says STOP puts its number on the suppression list, whichever way it came."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import structlog

from producers.errors import PhoneError
from producers.optouts import OptOuts, Source, is_stop_reply
from producers.phones import mask_phone, normalise_phone


if TYPE_CHECKING:
    from collections.abc import Callable

    from worker.settings import Settings
    from worker.store.receipts import Applied, Reply

log = structlog.get_logger()


def record_stop(
    optouts: OptOuts,
    reply: Reply,
    applied: Applied,
    *,
    keywords: tuple[str, ...],
    default_region: str,
) -> bool:
    """Opt the replier out when the reply is a STOP (see :func:`is_stop_reply`), even for a
    message smsq does not know: a STOP is a STOP. True when the number was added now."""
    if not is_stop_reply(reply.text, keywords):
        return False
    phone = applied.phone or reply.phone
    if not phone:
        log.warning("sms.optout.unattributed", reason="a STOP reply without a phone number")
        return False
    # A number libphonenumber refuses keeps the digits AllMySMS gave.
    with contextlib.suppress(PhoneError):
        phone = normalise_phone(f"+{phone}" if phone.isdigit() else phone, default_region)
    added = optouts.add(
        phone, source=Source.REPLY, by="reply", comment=f"smsMoId {reply.sms_mo_id}"
    )
    log.info(
        "sms.optout." + ("added" if added else "known"),
        phone=mask_phone(phone),
        source=Source.REPLY.value,
        message_id=applied.message_id,
    )
    return added


def stop_recorder(optouts: OptOuts, settings: Settings) -> Callable[[Reply, Applied], bool]:
    """:func:`record_stop` with the keywords and the default country of ``settings``: what the
    webhooks and the polling fallback call with each reply."""

    def record(reply: Reply, applied: Applied) -> bool:
        return record_stop(
            optouts,
            reply,
            applied,
            keywords=settings.optout_keywords,
            default_region=settings.producer.default_country,
        )

    return record
