"""Cheap encoding: typographic characters and (by choice) accents swapped for GSM-7 look-alikes,
counted with the GSM 03.38 table, per request, per gateway account and by setting."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis

from producers.config import ProducerSettings
from producers.contract import parse_request
from producers.enqueue import Producer
from producers.errors import ConfigError, InvalidRequestError
from producers.segments import GSM7_BASIC, GSM7_EXTENSION, count_segments
from producers.store import MessageStore
from producers.transliterate import TYPOGRAPHY, Transliteration, transliterate
from tests.helpers.gateway import SHOP, answer, json_flux, post
from tests.helpers.processes import Workers
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider
from worker.settings import ProducerAccount, Secret, Settings, read_producers


TYPO = Transliteration.TYPOGRAPHY
ACCENTS = Transliteration.ACCENTS
FRENCH = "Bonjour\u202f! L’offre « Noël » : −20\u00a0% sur l’œuvre… à très bientôt — ça ira"


def test_typography_keeps_the_words_and_accents_swap_the_letters() -> None:
    typo = transliterate(FRENCH, TYPO)
    accents = transliterate(FRENCH, ACCENTS)

    assert typo == "Bonjour ! L'offre \" Noël \" : -20 % sur l'oeuvre... à très bientôt - ça ira"
    assert accents == "Bonjour ! L'offre \" Noel \" : -20 % sur l'oeuvre... à très bientot - ca ira"
    assert count_segments(FRENCH).encoding == "ucs2"
    assert count_segments(typo).encoding == "ucs2"  # ë, ô and ç are not GSM-7
    assert count_segments(accents).encoding == "gsm7"
    assert transliterate(FRENCH, Transliteration.NONE) == FRENCH


def test_what_has_no_look_alike_stays() -> None:
    text = "Merci 🎉 Привет"

    assert transliterate(text, ACCENTS) == text
    assert count_segments(transliterate(text, ACCENTS)).encoding == "ucs2"


def test_every_replacement_is_gsm7() -> None:
    gsm7 = GSM7_BASIC | GSM7_EXTENSION
    assert all(all(c in gsm7 for c in out) for out in TYPOGRAPHY.values())


@given(st.text(max_size=300))
def test_accents_never_add_ucs2_and_are_stable(text: str) -> None:
    once = transliterate(text, ACCENTS)

    assert transliterate(once, ACCENTS) == once
    if count_segments(text).encoding == "gsm7":
        assert once == text
    assert not set(once) & set(TYPOGRAPHY)


def test_a_request_is_counted_after_transliteration_text_and_params() -> None:
    text = "Bonjour #param_1#, l’offre de la fête est là : " + "x" * 60  # 106 characters

    plain = parse_request(
        {"key": "k", "to": [{"phone": "0612345678", "params": ["Zoé"]}], "text": text}
    )
    cheap = parse_request(
        {
            "key": "k",
            "to": [{"phone": "0612345678", "params": ["Maëlle"]}],
            "text": text,
            "transliterate": "accents",
        }
    )

    assert (plain.encoding, plain.segments, plain.segments_as_written) == ("ucs2", 2, None)
    assert (cheap.encoding, cheap.segments, cheap.segments_as_written) == ("gsm7", 1, 2)
    assert cheap.text.startswith("Bonjour #param_1#, l'offre de la fete est là : ")
    assert cheap.recipients[0].params == ("Maelle",)


def test_the_field_and_the_setting_are_checked() -> None:
    with pytest.raises(InvalidRequestError) as bad:
        parse_request({"key": "k", "to": ["0612345678"], "text": "x", "transliterate": "yes"})
    with pytest.raises(ConfigError) as setting:
        ProducerSettings.from_env({"SMSQ_TRANSLITERATE": "all"})
    with pytest.raises(ConfigError) as account:
        read_producers(
            {
                "SMSQ_PRODUCERS": '[{"login": "a", "api_key": "a-key-0123456789abcd", '
                '"transliterate": "max"}]'
            }
        )

    assert bad.value.as_dict() == {
        "field": "transliterate",
        "reason": "must be one of none | typography | accents",
    }
    assert str(setting.value) == "SMSQ_TRANSLITERATE: must be one of none | typography | accents"
    assert str(account.value) == (
        "SMSQ_PRODUCERS: entry 0 (a): transliterate must be one of none | typography | accents"
    )


def test_the_setting_applies_to_requests_that_do_not_say(redis: Redis, store: MessageStore) -> None:
    producer = Producer(redis, ProducerSettings(transliteration=TYPO))

    producer.enqueue({"key": "a", "to": ["0612345678"], "text": "L’été"})
    producer.enqueue({"key": "b", "to": ["0612345678"], "text": "L’été", "transliterate": "none"})

    a, b = store.get("a"), store.get("b")
    assert a is not None
    assert b is not None
    assert (a.request["text"], a.encoding) == ("L'été", "gsm7")
    assert (b.request["text"], b.encoding) == ("L’été", "ucs2")


def test_the_dry_run_shows_parts_before_and_after_and_what_would_be_cheaper(
    sandbox: SandboxProvider, workers: Workers
) -> None:
    text = "L’offre de Noël est là… " + "x" * 60  # 84 characters: UCS-2 2 parts, GSM-7 1
    lines = [
        {"key": "asked", "to": ["0612345678"], "text": text, "transliterate": "accents"},
        {"key": "plain", "to": ["0612345678"], "text": text},
    ]

    as_json = workers.smsq(
        "enqueue", "--dry-run", "--json", stdin="\n".join(json.dumps(x) for x in lines) + "\n"
    )
    as_text = workers.smsq(
        "enqueue", "--dry-run", stdin="\n".join(json.dumps(x) for x in lines) + "\n"
    )

    assert as_json.returncode == 0, as_json.stderr
    asked, plain = json.loads(as_json.stdout)["requests"]
    assert (asked["segments"], asked["encoding"], asked["segments_as_written"]) == (1, "gsm7", 2)
    assert (asked["nb_sms"], plain["nb_sms"]) == (1, 2)
    assert plain["cheaper"] == {"transliterate": "accents", "segments": 1}
    assert "  transliterated: 1 SMS part(s) per recipient (gsm7) instead of 2" in as_text.stdout
    assert '  ucs2: 2 part(s) per recipient; with "transliterate": "accents" it would be 1' in (
        as_text.stdout
    )


CHEAP = ("cheap", "cheap-key-4e5f6a7b8c9d")


@pytest.fixture
def gateway(redis_server: RedisServer, redis: Redis) -> Iterator[str]:
    settings = Settings(
        producer=ProducerSettings(redis_url=redis_server.url),
        producers=(
            ProducerAccount(SHOP[0], Secret(SHOP[1])),
            ProducerAccount(CHEAP[0], Secret(CHEAP[1]), transliterate=TYPO),
        ),
    )
    with running(create_app(settings, redis)) as base_url:
        yield base_url + "/http/9.0/sendSms/"


def test_the_gateway_takes_the_account_level_or_the_parameter(
    gateway: str, store: MessageStore
) -> None:
    flux = json_flux(MESSAGE="L’été", CLIMSGID="t1")
    by_account = answer(post(gateway, flux, account=CHEAP))
    by_param = answer(
        post(gateway, json_flux(MESSAGE="L’été", CLIMSGID="t2"), transliterate="accents")
    )
    as_written = answer(post(gateway, json_flux(MESSAGE="L’été", CLIMSGID="t3")))

    texts = [store.get_by_id(str(a["campaignId"])) for a in (by_account, by_param, as_written)]
    assert [r.request["text"] if r else None for r in texts] == ["L'été", "L'été", "L’été"]
