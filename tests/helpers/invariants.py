"""The crash suite's invariant checker: nothing lost, nothing sent twice, one terminal state."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from producers.records import MessageRecord
from producers.states import TERMINAL_STATES, State
from producers.store import MessageStore
from worker.sandbox import SandboxProvider


@dataclass
class Verdict:
    states: dict[str, State] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    records: dict[str, MessageRecord] = field(default_factory=dict)

    def count(self, state: State) -> int:
        return sum(1 for s in self.states.values() if s is state)


def check(
    store: MessageStore, sandbox: SandboxProvider | list[dict[str, Any]], keys: list[str]
) -> Verdict:
    """Every accepted key: exactly one terminal state, at most one provider request, none missing.

    Messages carry their key as CAMPAIGN_NAME so the sandbox's log maps requests to keys.
    """
    verdict = Verdict()
    requests = sandbox if isinstance(sandbox, list) else sandbox.requests()
    for request in requests:
        if request.get("endpoint", "sendSms") != "sendSms":
            continue  # getBlacklist, simulateCampaign...: nothing sent
        data = request.get("data") or {}
        verdict.requests[data.get("CAMPAIGN_NAME", "?")] += 1
    for key in keys:
        record = store.get(key)
        if record is None:
            verdict.problems.append(f"{key}: missing")
            continue
        verdict.states[key] = record.state
        verdict.records[key] = record
        terminal = [h["state"] for h in record.history if h["state"] in TERMINAL_STATES]
        if record.state not in TERMINAL_STATES:
            verdict.problems.append(f"{key}: not terminal ({record.state.value})")
        elif terminal != [record.state.value] and not _settled(record.history):
            verdict.problems.append(f"{key}: terminal history {terminal}")
        sent = verdict.requests[key]
        if sent > 1:
            verdict.problems.append(f"{key}: {sent} provider requests")
        if (
            record.state in (State.SENT, State.SCHEDULED, State.PARTIAL, State.REJECTED)
            and sent != 1
        ):
            verdict.problems.append(f"{key}: {record.state.value} with {sent} requests")
        if record.state in (State.EXPIRED, State.FAILED) and sent != 0:
            verdict.problems.append(f"{key}: {record.state.value} with {sent} requests")
    unknown_keys = set(verdict.requests) - set(keys)
    if unknown_keys:
        verdict.problems.append(f"requests for keys never enqueued: {sorted(unknown_keys)}")
    return verdict


def _settled(history: list[dict[str, Any]]) -> bool:
    """An ``unknown`` settled from evidence: ``unknown`` then ``sent``, whose reason says so."""
    terminal = [h for h in history if h["state"] in TERMINAL_STATES]
    return [h["state"] for h in terminal] == ["unknown", "sent"] and str(
        terminal[-1].get("reason", "")
    ).startswith("settled by ")
