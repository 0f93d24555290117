"""The state of a split message, derived from its parts."""

from __future__ import annotations

import pytest

from producers.parts import combined_state
from producers.states import State


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([State.QUEUED, State.QUEUED], State.QUEUED),
        ([State.QUEUED, State.SENT], State.SENDING),
        ([State.SENDING, State.QUEUED], State.SENDING),
        ([State.SENT, State.SENT], State.SENT),
        ([State.SENT, State.SCHEDULED], State.SENT),
        ([State.SCHEDULED, State.SCHEDULED], State.SCHEDULED),
        ([State.SENT, State.REJECTED], State.PARTIAL),
        ([State.PARTIAL, State.SENT], State.PARTIAL),
        ([State.REJECTED, State.FAILED], State.FAILED),
        ([State.EXPIRED, State.UNKNOWN, State.REJECTED], State.UNKNOWN),
        ([State.EXPIRED, State.REJECTED], State.REJECTED),
        ([State.FAILED, State.FAILED], State.FAILED),
    ],
)
def test_combined_state(states: list[State], expected: State) -> None:
    assert combined_state(states) is expected
