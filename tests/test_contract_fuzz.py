"""Property-based tests of the wire contract's parser: whatever a producer sends, the answer is
a normalised request that can be stored, or an InvalidRequestError naming a field, never any
other exception; the three inputs that once killed workers are refused by name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.contract import FIELDS, parse_request
from producers.errors import InvalidRequestError


ANY_TEXT = st.text(
    alphabet=st.characters(categories=["Cs", "L", "N", "P", "S", "Zs", "Cc"]), max_size=24
)
"""Text that includes lone surrogates (what JSON's ``\\ud800`` escape decodes to)."""
PHONES = st.sampled_from(["0612345678", "+33698765432", "06 12 34 56 78", "+1 202 555 0143"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
DATES = (
    st.datetimes(timezones=st.timezones()).map(datetime.isoformat)
    | st.builds(
        lambda year, offset: (
            f"{year:04d}-{'01-01T00:00:00' if year < 5000 else '12-31T23:59:59'}{offset}"
        ),
        st.integers(1, 9999),
        st.sampled_from(["+23:59", "-23:00", "Z", "+00:00"]),
    )
    | ANY_TEXT
)
RECIPIENTS = st.lists(
    PHONES
    | ANY_TEXT
    | st.fixed_dictionaries(
        {"phone": PHONES | ANY_TEXT}, optional={"params": st.lists(ANY_TEXT, max_size=2)}
    ),
    min_size=1,
    max_size=3,
)
NEAR_VALID = st.fixed_dictionaries(
    {"key": ANY_TEXT, "text": ANY_TEXT | st.just("Hi #param_1#"), "to": RECIPIENTS},
    optional={
        "send_at": DATES,
        "sender": ANY_TEXT,
        "campaign": ANY_TEXT,
        "lane": st.sampled_from(["urgent", "default", "bulk"]) | ANY_TEXT,
        "valid_for_s": st.floats() | st.integers(),
        "callback_url": st.sampled_from(["https://a.example/cb", "http://[::1", "http://h:99999/"])
        | ANY_TEXT.map(lambda t: "https://" + t),
        "producer": ANY_TEXT,
    },
)
ANYTHING = JSON_VALUES | st.dictionaries(st.sampled_from(sorted(FIELDS)) | ANY_TEXT, JSON_VALUES)


def outcome(obj: Any) -> str:
    """Parse ``obj``; the accepted request or the error must be writable as UTF-8."""
    try:
        request = parse_request(obj)
    except InvalidRequestError as error:
        str(error).encode("utf-8")
        error.field.encode("utf-8")
        return "refused"
    json.dumps(request.to_stored(), ensure_ascii=False).encode("utf-8")
    return "accepted"


@given(NEAR_VALID)
def test_a_near_valid_request_is_accepted_or_refused_by_field(obj: dict[str, Any]) -> None:
    assert outcome(obj) in {"accepted", "refused"}


@given(ANYTHING)
def test_any_json_value_is_accepted_or_refused_by_field(obj: Any) -> None:
    assert outcome(obj) in {"accepted", "refused"}


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        (
            {"key": "k\ud800"},
            "key: holds a lone surrogate (U+D800 at character 2); send valid Unicode",
        ),
        (
            {"text": "Hi\udfff"},
            "text: holds a lone surrogate (U+DFFF at character 3); send valid Unicode",
        ),
        (
            {"to": ["06\ud800"]},
            "to[0]: holds a lone surrogate (U+D800 at character 3); send valid Unicode",
        ),
        (
            {"to": [{"phone": "0612345678", "params": ["\ud800"]}], "text": "#param_1#"},
            "to[0].params[0]: holds a lone surrogate (U+D800 at character 1); send valid Unicode",
        ),
        (
            {"campaign": "\udc00"},
            "campaign: holds a lone surrogate (U+DC00 at character 1); send valid Unicode",
        ),
        (
            {"send_at": "9999-12-31T23:59:59-23:00"},
            "send_at: is outside the dates that can be written in UTC (years 1 to 9999)",
        ),
        (
            {"send_at": "0001-01-01T00:00:00+01:00"},
            "send_at: is outside the dates that can be written in UTC (years 1 to 9999)",
        ),
        ({"callback_url": "http://[::1"}, "callback_url: is not a URL (Invalid IPv6 URL)"),
        ({"\ud800": 1}, "\\ud800: unknown field"),
        ({"x" * 500: 1}, "x" * 100 + "...: unknown field"),
    ],
)
def test_inputs_that_broke_the_parser_are_refused_by_name(
    request_fields: dict[str, Any], message: str
) -> None:
    obj = {"key": "k", "text": "Hi", "to": ["0612345678"], **request_fields}

    with pytest.raises(InvalidRequestError) as raised:
        parse_request(obj)

    assert str(raised.value) == message


def test_the_edges_of_the_calendar_that_fit_in_utc_are_accepted() -> None:
    request = parse_request(
        {"key": "k", "text": "Hi", "to": ["0612345678"], "send_at": "9999-12-31T23:59:59+01:00"}
    )

    assert request.send_at == datetime(9999, 12, 31, 22, 59, 59, tzinfo=UTC)
