"""Segment counting: GSM-7 160/153 with two-unit extension characters, UCS-2 70/67."""

from __future__ import annotations

import pytest

from producers.contract import parse_request
from producers.segments import count_segments


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "gsm7", 0, 1),
        ("a" * 160, "gsm7", 160, 1),
        ("a" * 161, "gsm7", 161, 2),
        ("a" * 306, "gsm7", 306, 2),
        ("a" * 307, "gsm7", 307, 3),
        ("€" * 80, "gsm7", 160, 1),
        ("€" * 81, "gsm7", 162, 2),
        ("a" * 159 + "[", "gsm7", 161, 2),
        ("é" * 160, "gsm7", 160, 1),
        ("ç" * 70, "ucs2", 70, 1),
        ("ç" * 71, "ucs2", 71, 2),
        ("ç" * 134, "ucs2", 134, 2),
        ("ç" * 135, "ucs2", 135, 3),
        ("😀" * 35, "ucs2", 70, 1),
        ("😀" * 36, "ucs2", 72, 2),
    ],
)
def test_segments(text: str, encoding: str, units: int, segments: int) -> None:
    """The encoding, unit count and part count follow GSM 03.38 and UCS-2 rules."""
    count = count_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)


def test_request_segments_count_the_longest_personalised_text() -> None:
    """Segments are counted after #param_n# substitution, for the longest recipient."""
    request = parse_request(
        {
            "key": "k",
            "text": "a" * 150 + "#param_1#",
            "to": [
                {"phone": "0612345678", "params": ["short"]},
                {"phone": "0698765432", "params": ["a longer name"]},
            ],
        }
    )
    assert (request.segments, request.encoding) == (2, "gsm7")
