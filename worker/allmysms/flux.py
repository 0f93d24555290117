"""The AllMySMS v9.0 sendSms ``smsData`` flux: parsing (JSON or XML), checks and replies.

Pure functions shared by the sandbox (which plays AllMySMS) and the gateway (which accepts
AllMySMS clients), so both read a flux exactly alike.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.parsers import expat
from zoneinfo import ZoneInfo

from producers.contract import MAX_RECIPIENTS
from producers.errors import FluxError


MESSAGE_MAX_CHARS = 640
FLUX_MAX_DEPTH = 32
"""Deepest nesting read in a flux (JSON objects and arrays, XML elements); a real one has 4
(document, DATA, SMS list, entry). Deeper is refused as soon as it is seen (106)."""
DEPTH_TEXT = f"smsData: nested deeper than {FLUX_MAX_DEPTH} levels"
FLUX_MAX_NODES = 12 * MAX_RECIPIENTS + 100
"""Most XML elements, or JSON values, read in a flux: the largest request the contract takes
(10,000 recipients) with a MOBILEPHONE and ten PARAM_n each, and 100 more. More is refused as
soon as it is counted (106), so 2 MB of ``<a/>`` costs no more than that; so are more SMS
entries than the contract's 10,000 recipients."""
NODES_TEXT = f"smsData: more than {FLUX_MAX_NODES} elements or values"
ENTRIES_TEXT = f"SMS: must hold 1 to {MAX_RECIPIENTS} recipients"
PARIS = ZoneInfo("Europe/Paris")
"""DATE carries no zone; the provider is French, so it is read as Paris local time."""

STATUS_TEXTS = {
    100: "Your messages have been sent",
    101: "Your messages have been scheduled",
    102: "Problème de connexion – Aucun compte ne correspond aux clientcode et passcode spécifiés",  # noqa: RUF001
    103: "Crédit SMS épuisé. Veuillez re-créditer votre compte sur AllMySMS.com",
    104: "Crédit insuffisant pour traiter cet envoi. Veuillez re-créditer votre compte",
    105: "Flux XML Vide",
    106: "Flux XML invalide ou incomplet après la balise",
    107: "Flux XML invalide ou incomplet après la balise",
    108: "Le code CLIENT donné dans le flux XML est incorrect",
    109: "Flux XML invalide ou incomplet après la balise",
    110: "Message non défini (vide) dans le flux XML",
    111: "Le message dépasse 640 caractères",
    112: "Flux XML invalide ou incomplet après la balise",
    113: "Certains numéros de téléphone sont invalides ou non pris en charge",
    114: "Aucun numéro de téléphone valide dans le flux. Veuillez-vous référer à la "
    "documentation en ligne pour connaitre les formats valides.",
    115: "Flux XML invalide ou date mal formatée entre les balises <DATE> et </DATE>",
    116: "Erreur 116",
    117: "Balise – Lien trop long, dépasse les 80 caractères",  # noqa: RUF001
    118: "Le compte maître spécifié n’existe pas",  # noqa: RUF001
}
"""Default statusText per status: the official table's French wording, dashes and quotes
included (hence the RUF001 exemptions); the seed page lost the tag names of 106-115."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_PLACEHOLDER = re.compile(r"#param_(\d+)#")
_JSON_MARKUP = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
"""JSON escapes for the characters that make markup: they only occur inside JSON strings, so
the body parses to the same values and never holds a tag (it goes out as ``text/html``)."""


@dataclass(frozen=True, slots=True)
class Flux:
    """A structurally valid flux; ``data`` is the DATA object as parsed, for the log."""

    format: str
    data: dict[str, Any]
    message: str | None
    date: str
    campaign: str
    entries: tuple[dict[str, str], ...]


@dataclass(slots=True)
class _Node:
    tag: str
    children: list[_Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def sniff_format(sms_data: str) -> str | None:
    """Return ``"json"`` or ``"xml"`` from the first character, ``None`` when neither."""
    head = sms_data.lstrip("\ufeff \t\r\n")[:1]
    return {"{": "json", "<": "xml"}.get(head)


def parse_flux(sms_data: str) -> Flux:
    """Parse a non-blank smsData value.

    Raises:
        FluxError: 106 when it is neither ``{"DATA": {...}}`` nor ``<DATA>...</DATA>``.
    """
    fmt = sniff_format(sms_data)
    check_text(sms_data, "smsData")
    text = sms_data.lstrip("\ufeff \t\r\n")
    if fmt == "json":
        try:
            document = json.loads(text)
        except RecursionError:  # the C scanner stops at the recursion limit (1000 levels)
            raise FluxError(106, DEPTH_TEXT) from None
        except ValueError as exc:
            raise FluxError(106) from exc
        _check_json(document)
        if not isinstance(document, dict) or not isinstance(document.get("DATA"), dict):
            raise FluxError(106)
        data: dict[str, Any] = document["DATA"]
    elif fmt == "xml":
        data = _xml_data(text)
    else:
        raise FluxError(106)
    return _flux(fmt, data)


def check_text(text: str, name: str) -> None:
    """Refuse text that is not valid Unicode: a lone surrogate (JSON ``"\\ud800"``, a UTF-7
    multipart part) cannot be encoded, so it would fail later, when the message is stored or sent.

    Raises:
        FluxError: 106 naming ``name`` and the code point.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise FluxError(
            106, f"{name}: holds a lone surrogate (\\u{code:04x}), which is not text"
        ) from None


def _check_json(document: object) -> None:
    """Walk a decoded JSON flux without recursion: at most :data:`FLUX_MAX_DEPTH` levels and
    :data:`FLUX_MAX_NODES` values, SMS at most ``MAX_RECIPIENTS`` entries, and every key and
    string valid Unicode (named like ``SMS[0].MOBILEPHONE``).

    Raises:
        FluxError: 106 naming the field and the reason.
    """
    pending: list[tuple[object, int, str]] = [(document, 1, "")]
    seen = 1
    while pending:
        value, depth, name = pending.pop()
        if isinstance(value, str):
            check_text(value, name or "smsData")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > FLUX_MAX_DEPTH:
            raise FluxError(106, DEPTH_TEXT)
        seen += len(value)  # counted before any child is queued
        if seen > FLUX_MAX_NODES:
            raise FluxError(106, NODES_TEXT)
        if isinstance(value, list):
            if name == "SMS" and len(value) > MAX_RECIPIENTS:
                raise FluxError(106, ENTRIES_TEXT)
            pending.extend((item, depth + 1, f"{name}[{n}]") for n, item in enumerate(value))
            continue
        for key, item in value.items():
            child = key if name in ("", "DATA") else f"{name}.{key}"
            check_text(key, f"{child} (a key)")
            pending.append((item, depth + 1, child))


def _flux(fmt: str, data: dict[str, Any]) -> Flux:
    raw_entries = data.get("SMS", [])
    if isinstance(raw_entries, dict):
        raw_entries = [raw_entries]
    if not isinstance(raw_entries, list) or not all(isinstance(e, dict) for e in raw_entries):
        raise FluxError(106)
    entries = tuple({k: _scalar(v) for k, v in e.items()} for e in raw_entries)
    message = data.get("MESSAGE")
    return Flux(
        format=fmt,
        data=data,
        message=None if message is None else _scalar(message),
        date=_scalar(data.get("DATE") or ""),
        campaign=_scalar(data.get("CAMPAIGN_NAME") or ""),
        entries=entries,
    )


def _scalar(value: Any) -> str:
    """Clients send numbers as JSON ints or strings, some send nulls; nesting breaks the flux."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FluxError(106)


def _xml_data(text: str) -> dict[str, Any]:
    """Parse ``<DATA>`` with expat directly: no DOCTYPE, hence no entity expansion at all."""
    roots: list[_Node] = []
    stack: list[_Node] = []
    counts = {"elements": 0, "entries": 0}

    def start(tag: str, _attrs: dict[str, str]) -> None:
        # Each check stops expat here: the rest of the document is never read.
        if len(stack) >= FLUX_MAX_DEPTH:
            raise FluxError(106, DEPTH_TEXT)
        counts["elements"] += 1
        if counts["elements"] > FLUX_MAX_NODES:
            raise FluxError(106, NODES_TEXT)
        if len(stack) == 1 and tag == "SMS":
            counts["entries"] += 1
            if counts["entries"] > MAX_RECIPIENTS:
                raise FluxError(106, ENTRIES_TEXT)
        node = _Node(tag)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def chars(data: str) -> None:
        if stack:
            stack[-1].text.append(data)

    def doctype(*_args: object) -> None:
        raise FluxError(106)

    parser = expat.ParserCreate(encoding="UTF-8")
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda _tag: stack.pop()
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(text.encode("utf-8"), True)
    except expat.ExpatError as exc:
        raise FluxError(106) from exc
    if len(roots) != 1 or roots[0].tag != "DATA":
        raise FluxError(106)
    data: dict[str, Any] = {}
    for child in roots[0].children:
        if child.tag == "SMS":
            entry = {c.tag: "".join(c.text).strip() for c in child.children}
            data.setdefault("SMS", []).append(entry)
        elif child.tag == "MESSAGE":
            data["MESSAGE"] = "".join(child.text)
        else:
            data[child.tag] = "".join(child.text).strip()
    return data


def check_flux(flux: Flux, now: datetime) -> bool:
    """The provider's checks that do not depend on the numbers, in its order.

    Args:
        flux: the parsed smsData.
        now: the current time (aware), to tell a deferred DATE from a past one.

    Returns:
        Whether the flux is scheduled (its DATE is in the future).

    Raises:
        FluxError: 107 (no SMS entry or one without MOBILEPHONE), 110, 111 or 115.
    """
    if not flux.entries or any("MOBILEPHONE" not in e for e in flux.entries):
        raise FluxError(107)
    if flux.message is None or not flux.message.strip():
        raise FluxError(110)
    if len(flux.message) > MESSAGE_MAX_CHARS:
        raise FluxError(111)
    return bool(flux.date.strip()) and parse_date(flux.date.strip()) > now


def parse_date(value: str) -> datetime:
    """Read a DATE (``YYYY-MM-DD HH:MM:SS``) as Paris local time.

    Raises:
        FluxError: 115 when it is not that format or not a real date.
    """
    if not _DATE.fullmatch(value):
        raise FluxError(115)
    try:
        naive = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 - zone set below
    except ValueError as exc:
        raise FluxError(115) from exc
    moment = naive.replace(tzinfo=PARIS)
    try:
        moment.astimezone(UTC)  # 0001-01-01 00:00:00 Paris is before the calendar's start in UTC
    except OverflowError:
        raise FluxError(115, "DATE: outside the calendar once read as Paris time") from None
    return moment


def personalise(message: str, entry: dict[str, str]) -> str:
    """Replace each ``#param_N#`` by the entry's ``PARAM_N`` (empty when the entry lacks it)."""
    return _PLACEHOLDER.sub(lambda m: entry.get(f"PARAM_{m.group(1)}", ""), message)


def error_reply(status: int, status_text: str | None = None) -> dict[str, Any]:
    """The two-key body of every refusal."""
    return {"status": status, "statusText": status_text or STATUS_TEXTS.get(status, "")}


def render(reply: dict[str, Any], fmt: str) -> tuple[bytes, str]:
    """Serialise a reply as the provider does.

    Returns:
        The body and its Content-Type; JSON goes out as ``text/html`` like the real API, with
        ``<``, ``>`` and ``&`` escaped (``\\u003c``...) so that no client-sent value forms markup.
    """
    if fmt == "xml":
        parts = ['<?xml version="1.0" encoding="UTF-8"?><response>']
        for key, value in reply.items():
            if key == "smsIds":
                sms = "".join(
                    f"<sms><phoneNumber>{_x(s['phoneNumber'])}</phoneNumber>"
                    f"<smsId>{_x(s['smsId'])}</smsId></sms>"
                    for s in value
                )
                parts.append(f"<smsIds>{sms}</smsIds>")
            else:
                parts.append(f"<{key}>{_x(str(value))}</{key}>")
        parts.append("</response>")
        return "".join(parts).encode(), "text/xml; charset=UTF-8"
    body = json.dumps(reply, ensure_ascii=False, separators=(",", ":")).translate(_JSON_MARKUP)
    return body.encode(), "text/html; charset=UTF-8"


def _x(text: str) -> str:
    return html.escape(text, quote=False)
