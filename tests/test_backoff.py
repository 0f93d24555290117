"""The one back-off every smsq wait uses (worker/send/retries.py)."""

from __future__ import annotations

import pytest
import tenacity

from worker.send.retries import Backoff, backoff_s, jittered_s


def test_backoff_doubles_from_the_first_wait_up_to_the_cap() -> None:
    waits = [backoff_s(attempt, initial_s=0.5, max_s=10.0) for attempt in range(1, 8)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_stays_at_the_cap_for_any_attempt_count() -> None:
    assert backoff_s(10**9, initial_s=2.0, max_s=1800.0) == 1800.0
    assert backoff_s(0, initial_s=2.0, max_s=1800.0) == 2.0


def test_jitter_is_half_to_all_of_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.send.retries.random.uniform", lambda low, high: low)
    assert jittered_s(8.0) == 4.0
    monkeypatch.setattr("worker.send.retries.random.uniform", lambda low, high: high)
    assert jittered_s(8.0) == 8.0


def _waits(wait: tenacity.wait.wait_base, attempts: int) -> list[float]:
    retrying = tenacity.Retrying()
    states = []
    for number in range(1, attempts + 1):
        state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
        state.attempt_number = number
        states.append(state)
    return [wait(state) for state in states]


def test_tenacity_wait_without_jitter_is_the_backoff() -> None:
    assert _waits(Backoff(initial_s=0.2, max_s=5.0), 6) == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0]


def test_tenacity_wait_adds_jitter_below_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.send.retries.random.uniform", lambda low, high: high)
    assert _waits(Backoff(initial_s=1.0, max_s=5.0, jitter_s=1.0), 4) == [2.0, 3.0, 5.0, 5.0]
