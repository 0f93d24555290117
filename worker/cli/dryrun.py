"""``smsq enqueue --dry-run`` and ``--show-cost``: what a batch would cost, asked of AllMySMS's
simulateCampaign. Requests are checked as a real enqueue checks them; nothing is written to
Redis and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from producers.contract import SendRequest, check_source, parse_request
from producers.enqueue import Refused
from producers.errors import InvalidRequestError
from producers.marketing import DEFAULT_STOP_RULE, StopRule
from producers.simulation import combine
from producers.transliterate import Transliteration
from worker.allmysms.payload import build_fluxes


if TYPE_CHECKING:
    from producers.simulation import Simulation
    from worker.allmysms.client import AllMySmsClient

SOURCE_CLI = "cli"
"""What ``smsq enqueue`` records as a message's source; the dry run checks the same rules."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """The cost of one request: a simulation per AllMySMS request a worker would send (one per
    part of ``SMSQ_CHUNK_RECIPIENTS``), or why the request is refused."""

    key: str | None
    simulations: tuple[Simulation, ...] = ()
    refused_numbers: tuple[dict[str, str], ...] = ()
    """Numbers the contract drops before any provider call (``to[3]``: not a mobile...)."""
    error: InvalidRequestError | None = None
    segments: int = 0
    """SMS parts per recipient (the longest), as it would be sent."""
    encoding: str = "gsm7"
    segments_as_written: int | None = None
    """Parts per recipient before transliteration, when it changed the count."""
    cheaper: tuple[str, int] | None = None
    """A UCS-2 text sent as written: the transliteration level that would save parts, and the
    parts per recipient with it."""

    @property
    def whole(self) -> Simulation | None:
        """The parts' simulations as one (:func:`combine`); None for a refused request."""
        return combine(list(self.simulations)) if self.simulations else None

    @property
    def nb_sms(self) -> int:
        return sum(s.nb_sms for s in self.simulations)

    @property
    def nb_credits(self) -> int:
        return sum(s.nb_credits for s in self.simulations)

    @property
    def nb_contacts(self) -> int:
        return sum(s.nb_contacts for s in self.simulations)

    @property
    def invalid_numbers(self) -> list[str]:
        """What AllMySMS would refuse, then what the contract refuses, as written."""
        refused = [n for s in self.simulations for n in s.invalid_numbers]
        return refused + [r["phone"] for r in self.refused_numbers]

    @property
    def would_send(self) -> bool:
        """Valid, and AllMySMS would send it (a part whose numbers are all invalid, 114, only
        adds to ``invalid_numbers``)."""
        whole = self.whole
        return self.error is None and whole is not None and whole.would_send

    def as_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"key": self.key, "error": self.error.as_dict()}
        whole = self.whole
        data: dict[str, Any] = {
            "key": self.key,
            "would_send": self.would_send,
            "status": whole.status if whole else None,
            "status_text": whole.status_text if whole else "",
            "nb_sms": self.nb_sms,
            "nb_credits": self.nb_credits,
            "nb_contacts": self.nb_contacts,
            "invalid_numbers": self.invalid_numbers,
            "segments": self.segments,
            "encoding": self.encoding,
        }
        if self.segments_as_written is not None:
            data["segments_as_written"] = self.segments_as_written
        if self.cheaper is not None:
            data["cheaper"] = {"transliterate": self.cheaper[0], "segments": self.cheaper[1]}
        if len(self.simulations) > 1:
            data["parts"] = len(self.simulations)
        if self.refused_numbers:
            data["refused_numbers"] = list(self.refused_numbers)
        return data


@dataclass(frozen=True, slots=True)
class Cost:
    """The estimates of a whole input, in input order, and their sums."""

    estimates: list[Estimate] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return sum(1 for e in self.estimates if not e.would_send)

    def total(self) -> dict[str, Any]:
        return {
            "requests": len(self.estimates),
            "refused": self.refused,
            "nb_sms": sum(e.nb_sms for e in self.estimates),
            "nb_credits": sum(e.nb_credits for e in self.estimates),
            "nb_contacts": sum(e.nb_contacts for e in self.estimates),
            "invalid_numbers": [n for e in self.estimates for n in e.invalid_numbers],
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "requests": [e.as_dict() for e in self.estimates],
            "total": self.total(),
        }

    def lines(self) -> list[str]:
        """One line per request (and one per refused number), then the total; not yet made
        printable (:func:`worker.cli.text.printable_lines` does)."""
        out: list[str] = []
        for estimate in self.estimates:
            if estimate.error is not None:
                out.append(f"{estimate.key or '-'}: refused: {estimate.error}")
                continue
            out.append(f"{estimate.key}: {_counts(estimate.as_dict())}{_verdict(estimate)}")
            if estimate.segments_as_written is not None:
                out.append(
                    f"  transliterated: {estimate.segments} SMS part(s) per recipient "
                    f"({estimate.encoding}) instead of {estimate.segments_as_written}"
                )
            if estimate.cheaper is not None:
                level, parts = estimate.cheaper
                out.append(
                    f"  {estimate.encoding}: {estimate.segments} part(s) per recipient; "
                    f'with "transliterate": "{level}" it would be {parts}'
                )
            out.extend(
                f"  invalid: {n} (AllMySMS)"
                for s in estimate.simulations
                for n in s.invalid_numbers
            )
            out.extend(
                f"  invalid: {r['phone']} ({r['field']}: {r['reason']})"
                for r in estimate.refused_numbers
            )
        total = self.total()
        out.append(
            f"total: {total['requests']} request(s), {total['refused']} refused; "
            f"{_counts(total)}; {len(total['invalid_numbers'])} invalid number(s)"
        )
        return out


def estimate(
    items: Iterable[object],
    client: AllMySmsClient,
    *,
    default_region: str,
    chunk_recipients: int,
    now: datetime,
    stop: StopRule = DEFAULT_STOP_RULE,
    transliteration: Transliteration = Transliteration.NONE,
) -> Cost:
    """Check each item as ``smsq enqueue`` would and ask simulateCampaign for each AllMySMS
    request a worker would send for it (the same flux, :func:`build_flux`, one per part).

    Args:
        items: decoded requests, or :class:`Refused` for input already refused (a line that is
            not JSON, a bad campaign line).
        client: the AllMySMS client (smsq's own credentials).
        default_region: ``SMSQ_DEFAULT_COUNTRY``, to read national numbers.
        chunk_recipients: ``SMSQ_CHUNK_RECIPIENTS``: recipients per AllMySMS request.
        now: the current time (aware): a ``send_at`` already passed is dropped, as a worker does.
        stop: the STOP mention a marketing text gets at enqueue (counted in its cost).
        transliteration: ``SMSQ_TRANSLITERATE``, for requests that do not say.

    Raises:
        ProviderError: simulateCampaign could not be asked or answered unreadably (its
            subclasses NotSentError, OutcomeUnknownError); nothing was sent either way.
    """
    cost = Cost()
    for item in items:
        if isinstance(item, Refused):
            cost.estimates.append(Estimate(item.key, error=item.error))
            continue
        try:
            request = parse_request(
                item, default_region=default_region, stop=stop, transliteration=transliteration
            )
            check_source(request, SOURCE_CLI)
        except InvalidRequestError as error:
            key = item.get("key") if isinstance(item, Mapping) else None
            cost.estimates.append(Estimate(key if isinstance(key, str) else None, error=error))
            continue
        simulations = tuple(
            client.simulate(flux) for flux in build_fluxes(request, now=now, chunk=chunk_recipients)
        )
        refused = tuple(
            {"field": r.field, "phone": r.phone, "reason": r.reason}
            for r in request.refused_numbers
        )
        cost.estimates.append(
            Estimate(
                request.key,
                simulations,
                refused,
                segments=request.segments,
                encoding=request.encoding,
                segments_as_written=request.segments_as_written,
                cheaper=_cheaper(item, request, default_region, stop),
            )
        )
    return cost


def _cheaper(
    item: object, request: SendRequest, default_region: str, stop: StopRule
) -> tuple[str, int] | None:
    """For a UCS-2 request that asked for no transliteration, the first level that would
    save parts and the parts per recipient with it."""
    if request.encoding != "ucs2" or request.segments_as_written is not None:
        return None
    if not isinstance(item, Mapping) or item.get("transliterate") not in (None, "none"):
        return None
    for level in (Transliteration.TYPOGRAPHY, Transliteration.ACCENTS):
        try:
            other = parse_request(
                {**item, "transliterate": level.value},
                default_region=default_region,
                stop=stop,
            )
        except InvalidRequestError:
            return None
        if other.segments < request.segments:
            return level.value, other.segments
    return None


def _counts(data: Mapping[str, Any]) -> str:
    return f"{data['nb_contacts']} recipient(s), {data['nb_sms']} SMS, {data['nb_credits']} credits"


def _verdict(estimate: Estimate) -> str:
    parts = f" ({len(estimate.simulations)} parts)" if len(estimate.simulations) > 1 else ""
    whole = estimate.whole
    if estimate.would_send or whole is None:
        return parts
    return f"{parts}; AllMySMS would refuse it: status {whole.status} {whole.status_text}"
