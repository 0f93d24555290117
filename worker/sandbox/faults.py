"""Scripted misbehaviour of the sandbox: validating fault specs and picking the one a request meets.

A fault is a dict such as ``{"action": "drop", "times": 2, "match": {"phone": "33612345678"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.sandbox.rules import STATUS_TEXTS, Flux, normalise_number


ACTIONS = ("status", "delay", "drop", "html502", "truncated", "not_http", "busy")
"""Every fault action, in the order the docs list them."""

DELAY_MAX_MS = 600_000
"""A longer delay is surely a typo, and it would hold a server thread for as long."""

ENDPOINTS = (
    "sendSms",
    "getInfo",
    "simulateCampaign",
    "getBlacklist",
    "deleteCampaign",
    "getAcks",
    "getAckBySmsId",
    "getPulls",
    "getPull",
    "getPullBySmsId",
)
"""What a fault's ``endpoint`` may name (default sendSms)."""
FLUX_ENDPOINTS = ("sendSms", "simulateCampaign")
"""The endpoints whose requests carry a flux, so a fault there may ``match`` it."""

_KEYS = frozenset(
    {
        "endpoint",
        "action",
        "times",
        "match",
        "status",
        "statusText",
        "delay_ms",
        "http_status",
        "retry_after",
    }
)
_KEYS_OF_ACTION = {
    "status": {"status", "statusText"},
    "delay": {"delay_ms"},
    "busy": {"http_status", "retry_after"},
}
BUSY_HTTP_STATUSES = (429, 503)
"""What a ``busy`` fault may answer: the request is refused unprocessed (nothing sent)."""
_REQUIRED_OF_ACTION = {"status": "status", "delay": "delay_ms"}
_MATCH_KEYS = ("phone", "campaign", "text_contains")


@dataclass(slots=True)
class Fault:
    """One validated fault; ``times`` counts down, -1 never does."""

    action: str
    endpoint: str = "sendSms"
    times: int = 1
    match: tuple[str, str] | None = None
    status: int | None = None
    status_text: str | None = None
    delay_ms: int = 0
    http_status: int = 503
    """``busy`` only: 429 or 503."""
    retry_after: int | None = None
    """``busy`` only: the ``Retry-After`` header, in seconds."""

    def as_dict(self) -> dict[str, Any]:
        """Return the fault in the shape ``parse_fault`` accepts."""
        spec: dict[str, Any] = {"action": self.action, "times": self.times}
        if self.endpoint != "sendSms":
            spec["endpoint"] = self.endpoint
        if self.match is not None:
            spec["match"] = {self.match[0]: self.match[1]}
        if self.action == "status":
            spec["status"] = self.status
            spec["statusText"] = self.status_text
        if self.action == "delay":
            spec["delay_ms"] = self.delay_ms
        if self.action == "busy":
            spec["http_status"] = self.http_status
            if self.retry_after is not None:
                spec["retry_after"] = self.retry_after
        return spec


@dataclass(frozen=True, slots=True)
class Target:
    """What a fault's ``match`` can look at in one sendSms or simulateCampaign request."""

    phones: frozenset[str] = frozenset()
    """International digits of every MOBILEPHONE that could be normalised."""
    campaign: str | None = None
    text: str | None = None

    @classmethod
    def of(cls, flux: Flux | None) -> Target:
        """Build the target of a parsed flux; an unparsed one only meets faults without match."""
        if flux is None:
            return cls()
        phones = (normalise_number(e.get("MOBILEPHONE", "")) for e in flux.entries)
        return cls(frozenset(p for p in phones if p), flux.campaign or None, flux.message)

    def matches(self, match: tuple[str, str] | None) -> bool:
        """Tell whether a fault with this ``match`` applies; no match applies to everything."""
        if match is None:
            return True
        key, value = match
        if key == "phone":
            return value in self.phones
        if key == "campaign":
            return self.campaign == value
        return self.text is not None and value in self.text


def parse_fault(spec: Mapping[str, Any]) -> Fault:
    """Validate a fault spec.

    Raises:
        ValueError: naming the first bad key and why.
    """
    if not isinstance(spec, Mapping):
        raise ValueError("fault: expected an object")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
    action = spec.get("action")
    if action not in ACTIONS:
        raise ValueError(f"action: must be one of {', '.join(ACTIONS)}")
    endpoint = _endpoint(spec)
    for key in sorted(set(spec) & (_KEYS - {"endpoint", "action", "times", "match"})):
        if key not in _KEYS_OF_ACTION.get(action, set()):
            raise ValueError(f"{key}: not allowed with action {action!r}")
    required = _REQUIRED_OF_ACTION.get(action)
    if required is not None and required not in spec:
        raise ValueError(f"{required}: required with action {action!r}")
    fault = Fault(
        action=action, endpoint=endpoint, times=_times(spec.get("times", 1)), match=_match(spec)
    )
    if action == "status":
        fault.status = _int(spec, "status", 100, 118)
        text = spec.get("statusText")
        if text is not None and not isinstance(text, str):
            raise ValueError("statusText: must be a string")
        fault.status_text = text or STATUS_TEXTS[fault.status]
    if action == "delay":
        fault.delay_ms = _int(spec, "delay_ms", 0, DELAY_MAX_MS)
    if action == "busy":
        fault.http_status = spec.get("http_status", 503)
        if fault.http_status not in BUSY_HTTP_STATUSES or isinstance(fault.http_status, bool):
            raise ValueError("http_status: must be 429 or 503")
        if "retry_after" in spec:
            fault.retry_after = _int(spec, "retry_after", 0, 3600)
    return fault


def _endpoint(spec: Mapping[str, Any]) -> str:
    endpoint = spec.get("endpoint", "sendSms")
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint: must be one of {', '.join(ENDPOINTS)}")
    if endpoint not in FLUX_ENDPOINTS and "match" in spec:
        raise ValueError(f"match: not allowed with endpoint {endpoint!r}")
    return str(endpoint)


def _int(spec: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key}: must be an integer from {low} to {high}")
    return value


def _times(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != -1):
        raise ValueError("times: must be a positive integer, or -1 for forever")
    return value


def _match(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    match = spec.get("match")
    if match is None:
        return None
    if not isinstance(match, Mapping) or len(match) != 1:
        raise ValueError(f"match: must hold exactly one of {', '.join(_MATCH_KEYS)}")
    ((key, value),) = match.items()
    if key not in _MATCH_KEYS:
        raise ValueError(f"match: unknown key {key!r} (allowed: {', '.join(_MATCH_KEYS)})")
    if not isinstance(value, str) or not value:
        raise ValueError(f"match: {key} must be a non-empty string")
    if key == "phone":
        number = normalise_number(value)
        if number is None:
            raise ValueError("match: phone is not a valid number")
        value = number
    return key, value


class FaultBook:
    """Pending faults, consumed first-added-first; the caller holds the lock."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        return [fault.as_dict() for fault in self._faults]

    def take(self, target: Target, endpoint: str = "sendSms") -> Fault | None:
        """Return the oldest fault this request matches, spending one of its ``times``."""
        for index, fault in enumerate(self._faults):
            if fault.endpoint == endpoint and target.matches(fault.match):
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        del self._faults[index]
                return fault
        return None
