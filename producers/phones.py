"""Phone number normalisation: any reasonable input to international digits without ``+``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import phonenumbers

from producers.errors import PhoneError


SMS_CAPABLE_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }
)
"""Number types that can receive an SMS; landlines, premium and toll-free numbers cannot."""

_TYPE_NAMES = {
    value: name.lower()
    for name, value in vars(phonenumbers.PhoneNumberType).items()
    if isinstance(value, int)
}


_IMPOSSIBLE_REASONS = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "invalid length for its country",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}


def normalise_phone(raw: str, default_region: str) -> str:
    """Return ``raw`` as international digits without ``+`` (``0612345678`` → ``33612345678``).

    Args:
        raw: the number as a producer wrote it: national, ``+`` or ``00`` international, with
            spaces, dots, dashes or parentheses.
        default_region: ISO 3166 alpha-2 country for national numbers (``FR``).

    Raises:
        PhoneError: the number is malformed, not a valid number, or cannot receive SMS.
    """
    text = raw.strip()
    if not text:
        raise PhoneError("empty phone number")
    fast = _fast_mobile(text, default_region)
    if fast is not None:
        return fast
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(f"not a phone number ({_parse_reason(exc)})") from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _IMPOSSIBLE_REASONS:
        raise PhoneError(_IMPOSSIBLE_REASONS[possible])
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("not a valid phone number for its country")
    number_type = phonenumbers.number_type(number)
    if number_type not in SMS_CAPABLE_TYPES:
        raise PhoneError(f"cannot receive SMS ({_TYPE_NAMES.get(number_type, 'unknown')} number)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


@dataclass(frozen=True, slots=True)
class _MobilePlan:
    """What libphonenumber's metadata says a mobile number of one region looks like."""

    country_code: str
    national_prefix: str
    mobile: re.Pattern[str]
    not_sms: tuple[re.Pattern[str], ...]
    """Patterns of types that win over mobile in ``number_type`` (premium, toll-free...)."""


_SEPARATORS = str.maketrans("", "", " .-()")
_NOT_SMS_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


@cache
def _mobile_plan(region: str) -> _MobilePlan | None:
    """The region's plan, or None when its country code is shared (+1) or has no mobiles."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.mobile is None or not metadata.country_code:
        return None
    if tuple(phonenumbers.region_codes_for_country_code(metadata.country_code)) != (region,):
        return None
    pattern = metadata.mobile.national_number_pattern
    if not pattern:
        return None
    others = (getattr(metadata, name) for name in _NOT_SMS_DESCS)
    return _MobilePlan(
        country_code=str(metadata.country_code),
        national_prefix=metadata.national_prefix or "",
        mobile=re.compile(pattern),
        not_sms=tuple(
            re.compile(d.national_number_pattern)
            for d in others
            if d is not None and d.national_number_pattern
        ),
    )


def _fast_mobile(text: str, region: str) -> str | None:
    """Recognise the common case, a mobile number of ``region`` in a plain form, with
    libphonenumber's own patterns but without its parser (about 20 times faster); None means
    "ask libphonenumber". It only ever accepts what :func:`normalise_phone` would accept."""
    plan = _mobile_plan(region)
    if plan is None:
        return None
    digits = text.translate(_SEPARATORS)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    elif plan.national_prefix and digits.startswith(plan.national_prefix):
        digits = plan.country_code + digits[len(plan.national_prefix) :]
    else:
        return None
    if not digits.startswith(plan.country_code) or not (digits.isascii() and digits.isdigit()):
        return None
    national = digits[len(plan.country_code) :]
    if not plan.mobile.fullmatch(national) or any(p.fullmatch(national) for p in plan.not_sms):
        return None
    return digits


def mask_phone(phone: str) -> str:
    """Mask a phone number for logs: keep the first four and last two digits (``3361******78``)."""
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:4] + "*" * (len(phone) - 6) + phone[-2:]


def _parse_reason(exc: phonenumbers.NumberParseException) -> str:
    reasons = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, "unparseable")
