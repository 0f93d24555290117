"""Phone number normalisation: any reasonable input to international digits without ``+``."""

from __future__ import annotations

import phonenumbers


SMS_CAPABLE_TYPES = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    }
)
"""Number types that can receive an SMS; landlines, premium and toll-free numbers cannot."""

_TYPE_NAMES = {value: name.lower() for name, value in vars(phonenumbers.PhoneNumberType).items()
               if isinstance(value, int)}


_IMPOSSIBLE_REASONS = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "invalid length for its country",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}


class PhoneError(ValueError):
    """A phone number that cannot receive an SMS; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
