"""Property-based fuzzing of the two smsData parsers (JSON and XML) and of the gateway's whole
reading of a flux: any text at all ends as a parsed flux (or a contract request) or as the
project's flux error, never another exception. Hypothesis draws arbitrary bytes, JSON-ish and
XML-ish structures, and mutations of valid fluxes (200 examples a test; the ``long`` profile
runs 20,000)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from producers.contract import SendRequest
from producers.errors import FluxError, InvalidRequestError
from worker.allmysms.flux import (
    FLUX_MAX_DEPTH,
    FLUX_MAX_NODES,
    Flux,
    check_flux,
    parse_flux,
)
from worker.gateway.translate import build_request, check_horizon


NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
VALID_JSON = json.dumps(
    {
        "DATA": {
            "MESSAGE": "Bonjour #param_1#",
            "TPOA": "Shop",
            "DATE": "2027-01-05 10:00:00",
            "CLIMSGID": "order-42",
            "SMS": [{"MOBILEPHONE": "33612345678", "PARAM_1": "Ana"}],
        }
    }
)
VALID_XML = (
    "<DATA><MESSAGE><![CDATA[Bonjour #param_1#]]></MESSAGE><TPOA>Shop</TPOA>"
    "<DATE>2027-01-05 10:00:00</DATE><CLIMSGID>order-42</CLIMSGID>"
    "<SMS><MOBILEPHONE>33612345678</MOBILEPHONE><PARAM_1>Ana</PARAM_1></SMS></DATA>"
)
FIELDS = ["DATA", "SMS", "MESSAGE", "MOBILEPHONE", "PARAM_1", "TPOA", "DATE", "CLIMSGID", "x"]
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ANY_CHAR = st.one_of(st.characters(), SURROGATES, st.sampled_from("<>&;#[]{}\"'\\\n\x00"))
TEXT = st.text(ANY_CHAR, max_size=30) | st.sampled_from(
    [
        "33612345678",
        "+33 6 12 34 56 78",
        "2027-01-05 10:00:00",
        "9999-12-31 23:59:59",
        "0001-01-01 00:00:00",
        "#param_0#",
        "#param_99999#",
        "",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | TEXT, inner, max_size=5)
    ),
    max_leaves=30,
)


def xml_elements() -> st.SearchStrategy[str]:
    """XML-ish text: known and odd tags, text with markup characters, CDATA, references."""
    tag = st.sampled_from(FIELDS) | st.sampled_from(["a", "1x", "x:y", ""])
    piece = st.one_of(
        st.text(ANY_CHAR, max_size=10),
        st.sampled_from(["&amp;", "&lt;", "&#xD800;", "&#0;", "&bogus;", "<![CDATA[x]]>", "<!--"]),
    )
    return st.recursive(
        piece,
        lambda inner: st.builds(
            lambda name, children, closed: (
                f"<{name}>{''.join(children)}</{name}>"
                if closed
                else f"<{name}>{''.join(children)}"
            ),
            tag,
            st.lists(inner, max_size=4),
            st.booleans(),
        ),
        max_leaves=25,
    )


def nested(depth: int, fmt: str) -> str:
    """A valid flux with an extra field ``x`` nested ``depth`` levels deep."""
    if fmt == "json":
        return VALID_JSON[:-2] + ', "x": ' + "[" * depth + "]" * depth + "}}"
    return VALID_XML[:-7] + "<x>" * depth + "</x>" * depth + "</DATA>"


@st.composite
def mutations(draw: st.DrawFn, valid: str) -> str:
    """A valid flux with a few characters inserted, deleted or replaced."""
    text = valid
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        char = draw(ANY_CHAR)
        if kind == "insert":
            text = text[:at] + char + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + 1 :]
        elif kind == "replace":
            text = text[:at] + char + text[at + 1 :]
        else:
            text = text[:at] + text[at : at + 8] * draw(st.integers(1, 50)) + text[at:]
    return text


def parses_or_refuses(sms_data: str) -> Flux | None:
    """The property: ``parse_flux`` returns a Flux or raises FluxError, nothing else."""
    try:
        flux = parse_flux(sms_data)
    except FluxError as exc:
        status = exc.status
    else:
        assert isinstance(flux, Flux)
        assert flux.format in ("json", "xml")
        return flux
    assert 105 <= status <= 115
    return None


def reads_or_refuses(sms_data: str) -> SendRequest | None:
    """The property over the gateway's whole reading: parse, check, translate to the contract.

    Anything else than a request, a FluxError or an InvalidRequestError fails the test, and so
    does a request that cannot be stored (not JSON-encodable as UTF-8).
    """
    flux = parses_or_refuses(sms_data)
    if flux is None:
        return None
    try:
        scheduled = check_flux(flux, NOW)
        check_horizon(flux, NOW)
        request = build_request(flux, login="shop", scheduled=scheduled)
    except (FluxError, InvalidRequestError):
        return None
    json.dumps(request.to_stored()).encode("utf-8")
    return request


@given(st.binary(max_size=300))
@example(b'{"DATA":' + b"[" * 100_000 + b"}")
@example(b"<DATA>" + b"<a>" * 100_000)
@example(b"\xef\xbb\xbf<DATA/>")
def test_arbitrary_bytes_parse_or_get_a_flux_error(raw: bytes) -> None:
    for text in (raw.decode("utf-8", "replace"), raw.decode("latin-1")):
        reads_or_refuses(text)
        reads_or_refuses("{" + text)
        reads_or_refuses("<DATA>" + text)


@given(JSON_VALUES, st.booleans())
@example({"MESSAGE": "\ud800", "SMS": [{"MOBILEPHONE": "33612345678"}]}, True)
@example({"MESSAGE": "hi", "CLIMSGID": "\udfff", "SMS": [{"MOBILEPHONE": "33612345678"}]}, True)
@example({"MESSAGE": "hi", "DATE": "9999-12-31 23:59:59", "SMS": [{"MOBILEPHONE": "1"}]}, True)
def test_json_structures_parse_or_get_a_flux_error(data: Any, ascii_only: bool) -> None:
    reads_or_refuses(json.dumps({"DATA": data}, ensure_ascii=ascii_only))
    reads_or_refuses(json.dumps(data, ensure_ascii=ascii_only))


@given(JSON_VALUES)
def test_json_fields_of_a_valid_flux_parse_or_get_a_flux_error(value: Any) -> None:
    for name in ("MESSAGE", "TPOA", "DATE", "CLIMSGID", "CAMPAIGN_NAME"):
        data = json.loads(VALID_JSON)
        data["DATA"][name] = value
        reads_or_refuses(json.dumps(data))
    data = json.loads(VALID_JSON)
    data["DATA"]["SMS"][0]["MOBILEPHONE"] = value
    reads_or_refuses(json.dumps(data))


@given(xml_elements())
def test_xml_structures_parse_or_get_a_flux_error(body: str) -> None:
    reads_or_refuses(f"<DATA>{body}</DATA>")
    reads_or_refuses(body)


@given(mutations(VALID_JSON) | mutations(VALID_XML))
def test_mutated_valid_fluxes_parse_or_get_a_flux_error(sms_data: str) -> None:
    reads_or_refuses(sms_data)


def test_the_unmutated_fluxes_are_read() -> None:
    for sms_data in (VALID_JSON, VALID_XML):
        request = reads_or_refuses(sms_data)
        assert request is not None
        assert [r.phone for r in request.recipients] == ["33612345678"]
        assert request.send_at == datetime(2027, 1, 5, 9, 0, tzinfo=UTC)


@given(st.integers(min_value=FLUX_MAX_DEPTH, max_value=5000), st.sampled_from(["json", "xml"]))
def test_nesting_past_the_cap_is_refused_naming_the_depth(depth: int, fmt: str) -> None:
    with pytest.raises(FluxError) as refused:
        parse_flux(nested(depth, fmt))
    assert (refused.value.status, refused.value.detail) == (
        106,
        "smsData: nested deeper than 32 levels",
    )


def test_nesting_within_the_cap_is_read() -> None:
    for fmt in ("json", "xml"):
        flux = parse_flux(nested(FLUX_MAX_DEPTH - 3, fmt))
        assert flux.format == fmt


@pytest.mark.parametrize(
    ("sms_data", "detail"),
    [
        (
            "<DATA>" + "<a/>" * (FLUX_MAX_NODES + 1) + "</DATA>",
            "smsData: more than 120100 elements or values",
        ),
        (
            '{"DATA":{"x":[' + ",".join(["0"] * FLUX_MAX_NODES) + "]}}",
            "smsData: more than 120100 elements or values",
        ),
        (
            "<DATA>" + "<SMS><MOBILEPHONE>1</MOBILEPHONE></SMS>" * 10_001 + "</DATA>",
            "SMS: must hold 1 to 10000 recipients",
        ),
        (
            json.dumps({"DATA": {"SMS": [{"MOBILEPHONE": "1"}] * 10_001}}),
            "SMS: must hold 1 to 10000 recipients",
        ),
    ],
    ids=["xml-elements", "json-values", "xml-entries", "json-entries"],
)
def test_breadth_past_the_caps_is_refused_naming_the_limit(sms_data: str, detail: str) -> None:
    with pytest.raises(FluxError) as refused:
        parse_flux(sms_data)
    assert (refused.value.status, refused.value.detail) == (106, detail)


def test_the_largest_request_the_contract_takes_is_read() -> None:
    """10,000 recipients with a MOBILEPHONE and ten PARAM_n each fit the caps, in both forms."""
    params = {f"PARAM_{n}": "x" for n in range(1, 11)}
    entry = "".join(f"<{k}>{v}</{k}>" for k, v in {"MOBILEPHONE": "1", **params}.items())
    xml = "<DATA><MESSAGE>hi</MESSAGE>" + f"<SMS>{entry}</SMS>" * 10_000 + "</DATA>"
    document = {"DATA": {"MESSAGE": "hi", "SMS": [{"MOBILEPHONE": "1", **params}] * 10_000}}
    for sms_data in (xml, json.dumps(document)):
        assert len(parse_flux(sms_data).entries) == 10_000
