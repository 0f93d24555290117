"""Cheap encoding: characters that force UCS-2 replaced by their GSM-7 look-alikes.

One character outside the GSM 03.38 alphabet makes the whole SMS UCS-2: 70 characters per part
(67 when split) instead of 160 (153). French text meets that constantly through typography:
the apostrophe ’, the quotes « », the ellipsis …, the narrow no-break space before ! ? : ;,
and œ. Two opt-in levels (per message ``transliterate``, per producer account, or
``SMSQ_TRANSLITERATE``):

* ``typography``: punctuation and spaces only (’ → ', « » “ ” → ", … → ..., – — → -, no-break
  spaces → space, œ → oe, zero-width characters dropped). The words stay as written.
* ``accents``: also letters GSM-7 lacks, to the nearest one it has (â ê î ô û → a e i o u, ë ï
  → e i, ç → c, á í ó ú → a i o u...). é è à ù ì ò ä ö ü ñ are in GSM-7 and kept.

``none`` (the default) changes nothing. Characters with no look-alike (emoji, other scripts)
stay, and the message stays UCS-2.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from producers.errors import InvalidRequestError
from producers.segments import GSM7_BASIC, GSM7_EXTENSION


class Transliteration(StrEnum):
    NONE = "none"
    TYPOGRAPHY = "typography"
    ACCENTS = "accents"


TYPOGRAPHY: dict[str, str] = {
    **dict.fromkeys("’‘‚‛′`´", "'"),
    **dict.fromkeys("“”„‟«»″", '"'),
    "…": "...",
    **dict.fromkeys("‐‑‒–—―−", "-"),
    **dict.fromkeys("\u00a0\u202f\u2007\u2009\u200a\u2002\u2003\u2004\u2005\u2006\t", " "),
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad", ""),
    "œ": "oe",
    "Œ": "OE",
    "•": "-",
    "·": ".",
    "‹": "<",
    "›": ">",
}
"""Punctuation and spaces outside GSM-7 and their look-alikes (words unchanged)."""
_GSM7 = GSM7_BASIC | GSM7_EXTENSION


def transliterate(text: str, level: Transliteration) -> str:
    """``text`` with what ``level`` replaces; characters without a look-alike stay."""
    if level is Transliteration.NONE or all(c in _GSM7 for c in text):
        return text
    out: list[str] = []
    for char in text:
        if char in _GSM7:
            out.append(char)
        elif char in TYPOGRAPHY:
            out.append(TYPOGRAPHY[char])
        elif level is Transliteration.ACCENTS:
            out.append(_letter(char))
        else:
            out.append(char)
    return "".join(out)


def _letter(char: str) -> str:
    """The letter without its accent (NFKD), when that one is in GSM-7 (ç → c, ê → e)."""
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base and all(c in _GSM7 for c in base) else char


def parse_transliteration(value: object, default: Transliteration) -> Transliteration:
    """The ``transliterate`` field of a request; absent: ``default``.

    Raises:
        InvalidRequestError: names ``transliterate``.
    """
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return Transliteration(value)
        except ValueError:
            pass
    names = " | ".join(t.value for t in Transliteration)
    raise InvalidRequestError("transliterate", f"must be one of {names}")
