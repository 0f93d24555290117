"""SMS segment counting: GSM 03.38 (7-bit) versus UCS-2, single versus concatenated."""

from __future__ import annotations

from dataclasses import dataclass


GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""Characters of the GSM 03.38 default alphabet: one septet each."""

GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
"""Characters of the GSM 03.38 extension table: an escape plus a septet, so two units each."""

GSM7_SINGLE_UNITS = 160
GSM7_PART_UNITS = 153
UCS2_SINGLE_UNITS = 70
UCS2_PART_UNITS = 67


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How a text is encoded and how many SMS parts it takes."""

    encoding: str
    """``"gsm7"`` or ``"ucs2"``."""
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2) the text needs."""
    segments: int


def count_segments(text: str) -> SegmentCount:
    """Count the SMS parts ``text`` needs.

    GSM-7 when every character is in the default alphabet or its extension table (extension
    characters count two), otherwise UCS-2, where a character outside the Basic Multilingual
    Plane (an emoji) takes two code units. One part holds 160 / 70 units; a concatenated
    message holds 153 / 67 per part. An empty text is one part.
    """
    units = 0
    gsm7 = True
    for char in text:
        if char in GSM7_BASIC:
            units += 1
        elif char in GSM7_EXTENSION:
            units += 2
        else:
            gsm7 = False
            break
    if gsm7:
        return SegmentCount("gsm7", units, _parts(units, GSM7_SINGLE_UNITS, GSM7_PART_UNITS))
    units = len(text.encode("utf-16-le")) // 2
    return SegmentCount("ucs2", units, _parts(units, UCS2_SINGLE_UNITS, UCS2_PART_UNITS))


def _parts(units: int, single: int, part: int) -> int:
    if units <= single:
        return 1
    return -(-units // part)
