"""Wire contract v1: validation names the field and the reason; numbers are normalised."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producers.contract import Lane, RefusedNumber, parse_request
from producers.errors import InvalidRequestError, PhoneError
from producers.phones import mask_phone, normalise_phone


def base(**fields: object) -> dict[str, object]:
    return {"key": "k", "to": ["0612345678"], "text": "Hello", **fields}


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        ([], "request", "must be a JSON object"),
        ({"to": ["0612345678"], "text": "x"}, "key", "is required"),
        (base(key=""), "key", "must be 1 to 200 characters"),
        (base(key="k" * 201), "key", "must be 1 to 200 characters"),
        (base(key=12), "key", "must be a string"),
        (base(text=""), "text", "must not be empty"),
        (base(text="   "), "text", "must not be empty"),
        (base(text="a" * 641), "text", "is 641 characters; AllMySMS accepts at most 640"),
        (base(text=None), "text", "is required"),
        (base(sender="AB"), "sender", "must be 3 to 11 letters and digits, starting with a letter"),
        (
            base(sender="ABCDEFGHIJKL"),
            "sender",
            "must be 3 to 11 letters and digits, starting with a letter",
        ),
        (
            base(sender="1Shop"),
            "sender",
            "must be 3 to 11 letters and digits, starting with a letter",
        ),
        (
            base(sender="Shop-42"),
            "sender",
            "must be 3 to 11 letters and digits, starting with a letter",
        ),
        (base(send_at="2026-12-01 10:00"), "send_at", "must carry a UTC offset (e.g. +01:00 or Z)"),
        (base(send_at="tomorrow"), "send_at", "is not an ISO-8601 date-time"),
        (base(lane="fast"), "lane", "must be one of urgent | default | bulk"),
        (base(valid_for_s=0), "valid_for_s", "must be between 0 and 2592000"),
        (base(valid_for_s="60"), "valid_for_s", "must be a number of seconds"),
        (base(valid_for_s=True), "valid_for_s", "must be a number of seconds"),
        (base(campaign=""), "campaign", "must be a string of 1 to 100 characters"),
        (base(sendat="x"), "sendat", "unknown field"),
        (base(to=[]), "to", "must hold 1 to 10000 recipients"),
        (base(to=["0612345678"] * 10_001), "to", "must hold 1 to 10000 recipients"),
        (base(to=[12]), "to[0]", 'must be a phone string or {"phone", "params"}'),
        (base(to=[{"params": []}]), "to[0].phone", "is required and must be a string"),
        (
            base(to=[{"phone": "0612345678", "params": [1]}]),
            "to[0].params",
            "must be a list of strings",
        ),
        (base(to=["0612"]), "to", "no valid recipient (to[0]: too short)"),
        (
            base(text="Hi #param_2#", to=[{"phone": "0612345678", "params": ["a"]}]),
            "to[0].params",
            "text uses #param_2# but only 1 given",
        ),
        (base(text="Hi #param_0#"), "text", "placeholders are numbered from #param_1#"),
    ],
)
def test_bad_requests_name_the_field_and_reason(request_: object, field: str, reason: str) -> None:
    """Each contract violation raises InvalidRequestError with the exact field and reason."""
    with pytest.raises(InvalidRequestError) as info:
        parse_request(request_)
    assert (info.value.field, info.value.reason) == (field, reason)


def test_a_full_request_is_normalised() -> None:
    """Phones become international digits, duplicates collapse, send_at becomes UTC."""
    request = parse_request(
        {
            "key": "order-77",
            "text": "Bonjour #param_1#",
            "sender": "Shop42",
            "send_at": "2026-12-01T10:00:00+01:00",
            "campaign": "c1",
            "lane": "urgent",
            "valid_for_s": 120,
            "to": [
                {"phone": "06 12 34 56 78", "params": ["Ann"]},
                {"phone": "+33612345678", "params": ["Dup"]},
                {"phone": "0033698765432", "params": ["Bo"]},
                {"phone": "0145678912", "params": ["Land"]},
            ],
        }
    )
    assert [(r.phone, r.params) for r in request.recipients] == [
        ("33612345678", ("Ann",)),
        ("33698765432", ("Bo",)),
    ]
    assert request.refused_numbers == (
        RefusedNumber("to[3]", "0145678912", "cannot receive SMS (fixed_line number)"),
    )
    assert request.send_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert (request.lane, request.dynamic, request.valid_for_s) == (Lane.URGENT, 1, 120.0)


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("0612345678", "33612345678"),
        ("06.12.34.56.78", "33612345678"),
        ("+33 6 12 34 56 78", "33612345678"),
        ("0033 612345678", "33612345678"),
        ("+1 415 555 2671", "14155552671"),
        ("+44 7911 123456", "447911123456"),
    ],
)
def test_phones_are_normalised_to_international_digits(raw: str, phone: str) -> None:
    """National, + and 00 forms all become E.164 digits without the plus."""
    assert normalise_phone(raw, "FR") == phone


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty phone number"),
        ("hello", "not a phone number (not a number)"),
        ("0612", "too short"),
        ("+3361234567890123", "too long"),
        ("0145678912", "cannot receive SMS (fixed_line number)"),
        ("0800123456", "cannot receive SMS (toll_free number)"),
    ],
)
def test_invalid_phones_have_a_reason(raw: str, reason: str) -> None:
    """Each refused number says why."""
    with pytest.raises(PhoneError) as info:
        normalise_phone(raw, "FR")
    assert info.value.reason == reason


def test_default_country_reads_national_numbers() -> None:
    """A national number is read in the configured default country."""
    assert normalise_phone("07911 123456", "GB") == "447911123456"


def test_phone_masking_keeps_country_and_last_digits() -> None:
    """Logs show 3361******78 for 33612345678."""
    assert mask_phone("33612345678") == "3361*****78"
