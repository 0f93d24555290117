"""Sending hours for marketing messages, in each recipient's own time zone.

The operators' charter (af2m, binding since 2024-09-01) lets commercial SMS leave only on
working days (Monday to Saturday, not public holidays) between 08:00 and 22:00; many providers
keep to 08:00-20:00, smsq's default. A marketing message a worker reaches outside the window is
held (``queued``, off its lane) until the next opening for all of its recipients, then sent; it
is never refused for the hour and never sent early. Transactional messages ignore the window.

Time zones come from the number (libphonenumber's data: Europe/Paris for +33, Indian/Reunion
for +262 692, Pacific/Noumea for +687 ...). A number in several zones must be inside the window
in each. Public holidays are the recipient's country's (the ``holidays`` package: French law's
11 days for +33, plus the overseas regions' own days for their numbers); the number does not
tell a département, so Alsace-Moselle's two days apply to +33 numbers by setting only
(``SMSQ_MARKETING_HOLIDAY_SUBDIVISION=57``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays
import phonenumbers
from phonenumbers import timezone as phone_timezones

from producers.config import read_bool
from producers.errors import ConfigError


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

HELD_FOR_HOURS = "sending_hours"
"""``held_for`` of a message a worker holds until its window opens."""
FALLBACK_ZONE = "Europe/Paris"
"""The zone of a number libphonenumber places in none (``Etc/Unknown``)."""
OPENS = time(8, 0)
CLOSES = time(20, 0)
DAYS = frozenset(range(6))
"""Monday (0) to Saturday (5)."""
SEARCH_DAYS = 31
"""How far ahead an opening common to every recipient is looked for."""
FRANCE_SUBDIVISIONS: tuple[str, ...] = tuple(holidays.list_supported_countries()["FR"])
"""What ``SMSQ_MARKETING_HOLIDAY_SUBDIVISION`` accepts ("57" Moselle, "6AE" Alsace ...)."""
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_PATTERN = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])-([01]?[0-9]|2[0-4]):([0-5][0-9])")


class NoCommonWindowError(Exception):
    """The recipients' windows share no opening within :data:`SEARCH_DAYS`."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a recipient is, as far as the window cares."""

    zone: str
    region: str
    """ISO 3166 code of the number's region (FR, RE, GP ...): whose holidays count."""


@dataclass(frozen=True, slots=True)
class SendingHours:
    """``SMSQ_MARKETING_HOURS``, ``_DAYS``, ``_HOLIDAYS`` and ``_HOLIDAY_SUBDIVISION``."""

    opens: time = OPENS
    closes: time = CLOSES
    """Exclusive; ``time.max`` stands for 24:00."""
    days: frozenset[int] = DAYS
    public_holidays: bool = True
    subdivision: str | None = None
    """A ``holidays.France`` subdivision applied to +33 numbers ("57", "6AE" ...)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SendingHours:
        """Read the four settings.

        Raises:
            ConfigError: names the variable and the reason.
        """
        opens, closes = _read_hours(env.get("SMSQ_MARKETING_HOURS", "").strip())
        subdivision = env.get("SMSQ_MARKETING_HOLIDAY_SUBDIVISION", "").strip() or None
        if subdivision is not None and subdivision not in FRANCE_SUBDIVISIONS:
            raise ConfigError(
                "SMSQ_MARKETING_HOLIDAY_SUBDIVISION",
                "must be one of " + ", ".join(FRANCE_SUBDIVISIONS),
            )
        return cls(
            opens=opens,
            closes=closes,
            days=_read_days(env.get("SMSQ_MARKETING_DAYS", "").strip()),
            public_holidays=read_bool(env, "SMSQ_MARKETING_HOLIDAYS", default=True),
            subdivision=subdivision,
        )

    def describe(self) -> str:
        """``Mon-Sat 08:00-20:00, not on public holidays`` for messages and the docs."""
        runs: list[list[int]] = []
        for day in sorted(self.days):
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        names = [
            "-".join(_DAY_NAMES[d].capitalize() for d in sorted({run[0], run[-1]})) for run in runs
        ]
        closes = "24:00" if self.closes == time.max else self.closes.strftime("%H:%M")
        text = f"{','.join(names)} {self.opens.strftime('%H:%M')}-{closes}"
        return text + (", not on public holidays" if self.public_holidays else "")

    def is_open(self, place: Place, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(place.zone))
        return self._day_ok(place, local.date()) and self.opens <= local.time() < self.closes

    def next_opening(self, phones: Iterable[str], now: datetime) -> datetime | None:
        """None when every recipient's window is open at ``now``, else the first moment (UTC)
        at which all of them are.

        Raises:
            NoCommonWindowError: no such moment within :data:`SEARCH_DAYS`.
        """
        places = {place for phone in phones for place in places_of(phone)}
        moment = now.astimezone(UTC)
        limit = moment + timedelta(days=SEARCH_DAYS)
        while moment <= limit:
            later = max(self._opening(place, moment) for place in places)
            if later == moment:
                return None if moment == now.astimezone(UTC) else moment
            moment = later
        raise NoCommonWindowError(
            f"the recipients' time zones share no sending hours ({self.describe()}) within "
            f"{SEARCH_DAYS} days; send them as separate requests"
        )

    def _opening(self, place: Place, moment: datetime) -> datetime:
        """``moment`` if ``place``'s window is open then, else its next opening (UTC)."""
        zone = ZoneInfo(place.zone)
        local = moment.astimezone(zone)
        day = local.date()
        if self._day_ok(place, day) and local.time() < self.closes:
            if local.time() >= self.opens:
                return moment
            return _at(day, self.opens, zone)
        for offset in range(1, SEARCH_DAYS + 8):
            candidate = day + timedelta(days=offset)
            if self._day_ok(place, candidate):
                return _at(candidate, self.opens, zone)
        return moment + timedelta(days=SEARCH_DAYS + 8)  # pragma: no cover - no working day

    def _day_ok(self, place: Place, day: date) -> bool:
        if day.weekday() not in self.days:
            return False
        if not self.public_holidays:
            return True
        return day not in _holidays(place.region, self.subdivision, day.year)


def places_of(phone: str) -> tuple[Place, ...]:
    """The zones (and region) of an international number without ``+``."""
    try:
        number = phonenumbers.parse(f"+{phone}")
    except phonenumbers.NumberParseException:
        return (Place(FALLBACK_ZONE, "FR"),)
    region = phonenumbers.region_code_for_number(number) or (
        phonenumbers.region_code_for_country_code(number.country_code or 0)
    )
    zones = [z for z in phone_timezones.time_zones_for_number(number) if z != "Etc/Unknown"] or [
        FALLBACK_ZONE
    ]
    return tuple(Place(zone, region or "FR") for zone in zones)


@functools.lru_cache(maxsize=256)
def _holidays(region: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    if region == "FR":
        return holidays.country_holidays("FR", years=year, subdiv=subdivision)
    try:
        return holidays.country_holidays(region, years=year)
    except NotImplementedError:
        return holidays.HolidayBase()


def _at(day: date, moment: time, zone: ZoneInfo) -> datetime:
    """``moment`` on ``day`` in ``zone``, as UTC (a time skipped by a DST change moves on)."""
    local = datetime.combine(day, moment, tzinfo=zone)
    return local.astimezone(UTC)


def _read_hours(raw: str) -> tuple[time, time]:
    if not raw:
        return OPENS, CLOSES
    match = _HOURS_PATTERN.fullmatch(raw.replace(" ", ""))
    if match is None:
        raise ConfigError("SMSQ_MARKETING_HOURS", "must be HH:MM-HH:MM, e.g. 08:00-20:00")
    oh, om, ch, cm = (int(g) for g in match.groups())
    if ch == 24 and cm:
        raise ConfigError("SMSQ_MARKETING_HOURS", "must end at 24:00 at the latest")
    opens = time(oh, om)
    closes = time.max if ch == 24 else time(ch, cm)
    if closes <= opens:
        raise ConfigError("SMSQ_MARKETING_HOURS", "must close after it opens (same day)")
    return opens, closes


def _read_days(raw: str) -> frozenset[int]:
    """``mon-sat`` (the default), ``mon-fri``, ``mon,wed,fri`` ..."""
    if not raw:
        return DAYS
    days: set[int] = set()
    for part in raw.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        try:
            start = _DAY_NAMES.index(first)
            end = _DAY_NAMES.index(last) if last else start
        except ValueError:
            raise ConfigError(
                "SMSQ_MARKETING_DAYS", "must be days like mon-sat or mon,tue,fri"
            ) from None
        if end < start:
            raise ConfigError("SMSQ_MARKETING_DAYS", f"{part}: a range runs from mon to sun")
        days.update(range(start, end + 1))
    return frozenset(days)
