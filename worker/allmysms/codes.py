"""The AllMySMS sendSms status table (100-118) as data: what each status means for a message."""

from __future__ import annotations

from dataclasses import dataclass

from producers.states import State


@dataclass(frozen=True, slots=True)
class StatusInfo:
    state: State
    category: str
    """``success``, ``partial``, ``credit`` (requeue after top-up), ``configuration``, ``input``."""
    meaning: str


STATUSES: dict[int, StatusInfo] = {
    100: StatusInfo(State.SENT, "success", "messages sent"),
    101: StatusInfo(State.SCHEDULED, "success", "messages scheduled for DATE"),
    102: StatusInfo(State.REJECTED, "configuration", "no account matches this login and apiKey"),
    103: StatusInfo(State.REJECTED, "credit", "credit exhausted"),
    104: StatusInfo(State.REJECTED, "credit", "not enough credit for this send"),
    105: StatusInfo(State.REJECTED, "input", "empty flux"),
    106: StatusInfo(State.REJECTED, "input", "invalid flux"),
    107: StatusInfo(State.REJECTED, "input", "incomplete flux"),
    108: StatusInfo(State.REJECTED, "configuration", "CLIENT code does not match the account"),
    109: StatusInfo(State.REJECTED, "input", "invalid flux"),
    110: StatusInfo(State.REJECTED, "input", "empty message"),
    111: StatusInfo(State.REJECTED, "input", "message longer than 640 characters"),
    112: StatusInfo(State.REJECTED, "input", "invalid flux"),
    113: StatusInfo(State.PARTIAL, "partial", "some numbers are invalid; the others were sent"),
    114: StatusInfo(State.REJECTED, "input", "no valid number"),
    115: StatusInfo(State.REJECTED, "input", "invalid flux or badly formatted DATE"),
    116: StatusInfo(State.REJECTED, "input", "undocumented status"),
    117: StatusInfo(State.REJECTED, "input", "link too long (over 80 characters)"),
    118: StatusInfo(State.REJECTED, "configuration", "master account does not exist"),
}


def classify(status: int) -> StatusInfo | None:
    """What ``status`` means, or None for a status outside 100-118 (an unexpected answer)."""
    return STATUSES.get(status)
