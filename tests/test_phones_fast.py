"""The fast path for plain mobile numbers agrees with libphonenumber on every number it takes."""

from __future__ import annotations

import random

import pytest

import producers.phones as phones
from producers.errors import PhoneError
from producers.phones import normalise_phone


def libphonenumber_only(raw: str, region: str, monkeypatch: pytest.MonkeyPatch) -> str | None:
    with monkeypatch.context() as patch:
        patch.setattr(phones, "_fast_mobile", lambda _text, _region: None)
        try:
            return normalise_phone(raw, region)
        except PhoneError:
            return None


@pytest.mark.parametrize(
    ("region", "country_code", "prefix"),
    [
        ("FR", "33", "0"),
        ("BE", "32", "0"),
        ("DE", "49", "0"),
        ("ES", "34", ""),
    ],
)
def test_fast_path_accepts_only_what_libphonenumber_accepts(
    region: str, country_code: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(region)
    taken = 0
    for _ in range(6000):
        national = rng.choice("123456789") + "".join(
            rng.choice("0123456789") for _ in range(rng.choice((8, 9, 10)))
        )
        raw = rng.choice(
            [
                f"+{country_code}{national}",
                f"00{country_code}{national}",
                f"{prefix}{national}",
                f"+{country_code} {national[:1]} {national[1:]}",
            ]
        )
        fast = phones._fast_mobile(raw, region)
        if fast is None:
            continue
        taken += 1
        assert fast == libphonenumber_only(raw, region, monkeypatch), raw
    assert taken > 50, "the fast path should take a good share of mobile-looking numbers"


def test_fast_path_leaves_shared_country_codes_and_other_types_to_libphonenumber() -> None:
    assert phones._fast_mobile("+12025550123", "US") is None  # +1 is shared by 25 regions
    assert phones._fast_mobile("+447400123456", "GB") is None  # +44: GB, GG, IM, JE
    assert phones._fast_mobile("0800123456", "FR") is None  # toll-free
    assert phones._fast_mobile("0140000000", "FR") is None  # landline
    assert phones._fast_mobile("06 12 34 56 78", "FR") == "33612345678"
    assert phones._fast_mobile("+33 (0)6 12 34 56 78", "FR") is None  # odd forms: the parser
