"""Callback signatures that detect replay: Standard Webhooks headers over a real POST, checked by
``producers.callbacks.verify_callback`` and by the README's plain-Python receiver."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import re
import runpy
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis

from producers.callbacks import (
    signature_v1,
    signed_headers,
    standard_webhooks_secret,
    verify_callback,
)
from producers.enqueue import Producer
from producers.errors import (
    CallbackHeaderError,
    CallbackSignatureError,
    CallbackTimestampError,
    CallbackVerificationError,
    InvalidInputError,
    SmsqError,
)
from tests.helpers.callbacks import (
    SHOP_SECRET,
    Received,
    Receiver,
    deliver_all,
    finish_sent,
    settings,
)
from tests.helpers.processes import ROOT
from worker.callbacks.dispatcher import Dispatcher


EXAMPLE = ROOT / "tests" / "clients" / "verify_callback.py"
OLD_SECRET = "shop-callback-secret-old-0a9e"  # noqa: S105 - a test value


def one_post(redis: Redis, producer: Producer, receiver: Receiver, key: str) -> Received:
    """A real ``message.final`` POST from the dispatcher, signed with the shop's secret."""
    finish_sent(redis, producer, key, callback_url=receiver.start(), producer_login="shop")
    assert deliver_all(Dispatcher(settings(), redis)) == ["delivered"]
    [got] = receiver.received
    return got


def example_verifier() -> Callable[..., dict[str, Any]]:
    function: Callable[..., dict[str, Any]] = runpy.run_path(str(EXAMPLE))["verify_smsq_callback"]
    return function


def readme_verifier() -> Callable[..., dict[str, Any]]:
    """The receiver printed in the README's callbacks section, run as printed."""
    readme = (ROOT / "README.md").read_text()
    [block] = re.findall(
        r"```python\n(import base64.*?def verify_smsq_callback.*?)```", readme, re.S
    )
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    function: Callable[..., dict[str, Any]] = namespace["verify_smsq_callback"]
    return function


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    """The spec's reference libraries' own vector: same content, key and encoding."""
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signed = signature_v1(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_standard_webhooks_secret_is_the_base64_of_the_key() -> None:
    whsec = standard_webhooks_secret(SHOP_SECRET)
    assert whsec == "whsec_" + base64.b64encode(SHOP_SECRET.encode()).decode()
    assert base64.b64decode(whsec.removeprefix("whsec_")) == SHOP_SECRET.encode()


def test_dispatcher_post_verifies_and_covers_id_timestamp_and_body(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    before = int(time.time())
    got = one_post(redis, producer, receiver, "sig-real")
    after = int(time.time())
    event = verify_callback(got.headers, got.body, SHOP_SECRET)
    assert event["key"] == "sig-real"
    stamp = int(got.headers["webhook-timestamp"])
    assert before <= stamp <= after
    content = f"{event['event_id']}.{stamp}.".encode() + got.body
    digest = hmac.new(SHOP_SECRET.encode(), content, hashlib.sha256).digest()
    assert got.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert got.headers["webhook-id"] == event["event_id"]


def test_a_replay_with_the_old_timestamp_is_refused(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    got = one_post(redis, producer, receiver, "sig-replay")
    stamp = int(got.headers["webhook-timestamp"])
    assert verify_callback(got.headers, got.body, SHOP_SECRET, now=stamp + 300)["key"]
    with pytest.raises(CallbackTimestampError) as caught:
        verify_callback(got.headers, got.body, SHOP_SECRET, now=stamp + 301)
    assert str(caught.value) == "webhook-timestamp: signed 301 s old, more than the 300 s tolerated"
    with pytest.raises(CallbackTimestampError) as caught:
        verify_callback(got.headers, got.body, SHOP_SECRET, now=stamp - 400)
    assert str(caught.value) == (
        "webhook-timestamp: signed 400 s ahead of this clock, more than the 300 s tolerated"
    )
    # Refreshing the timestamp without the secret breaks the signature.
    fresh = {**got.headers, "webhook-timestamp": str(stamp + 3600)}
    with pytest.raises(CallbackSignatureError) as refused:
        verify_callback(fresh, got.body, SHOP_SECRET, now=stamp + 3600)
    assert str(refused.value) == (
        "webhook-signature: no signature matches this body, id and timestamp"
    )


def test_a_changed_body_or_event_id_is_refused(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    got = one_post(redis, producer, receiver, "sig-tamper")
    tampered = got.body.replace(b'"state":"sent"', b'"state":"failed"')
    assert tampered != got.body
    with pytest.raises(CallbackSignatureError):
        verify_callback(got.headers, tampered, SHOP_SECRET)
    other_id = {**got.headers, "webhook-id": "0" * 32}
    with pytest.raises(CallbackSignatureError):
        verify_callback(other_id, got.body, SHOP_SECRET)


def test_a_signature_computed_the_old_way_is_refused(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """``sha256=<hex HMAC of the body>`` (the old ``X-Smsq-Signature``) proves nothing now, in
    either header or encoding."""
    got = one_post(redis, producer, receiver, "sig-old")
    body_only = hmac.new(SHOP_SECRET.encode(), got.body, hashlib.sha256)
    old_headers = {k: v for k, v in got.headers.items() if k != "webhook-signature"}
    with pytest.raises(CallbackHeaderError) as caught:
        verify_callback(
            {**old_headers, "X-Smsq-Signature": "sha256=" + body_only.hexdigest()},
            got.body,
            SHOP_SECRET,
        )
    assert str(caught.value) == "webhook-signature: missing"
    for forged in (
        "sha256=" + body_only.hexdigest(),
        "v1," + base64.b64encode(body_only.digest()).decode(),
    ):
        with pytest.raises(CallbackVerificationError):
            verify_callback({**old_headers, "webhook-signature": forged}, got.body, SHOP_SECRET)


def test_every_retry_keeps_the_event_id_and_is_signed_at_its_own_time(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    receiver.statuses = [503]
    finish_sent(redis, producer, "sig-retry", callback_url=receiver.start(), producer_login="shop")
    dispatcher = Dispatcher(settings(), redis)
    assert deliver_all(dispatcher) == ["retry"]
    time.sleep(1.0 - time.time() % 1.0 + 0.05)  # the next second: a different timestamp
    deadline = time.monotonic() + 5
    outcomes: list[str] = []
    while not outcomes and time.monotonic() < deadline:
        outcomes = deliver_all(dispatcher)
    assert outcomes == ["delivered"]
    first, second = receiver.received
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    assert first.verified(SHOP_SECRET) == second.verified(SHOP_SECRET)


def test_a_receiver_rotating_its_secret_accepts_either() -> None:
    body = b'{"event":"message.final","event_id":"e1"}'
    now = 1_800_000_000
    old = signed_headers(OLD_SECRET, "e1", body, timestamp=now)
    new = signed_headers(SHOP_SECRET, "e1", body, timestamp=now)
    for headers in (old, new):
        assert (
            verify_callback(headers, body, [SHOP_SECRET, OLD_SECRET], now=now)["event_id"] == "e1"
        )
    with pytest.raises(CallbackSignatureError):
        verify_callback(old, body, SHOP_SECRET, now=now)
    # A sender signing with both during a rotation: space-separated, one match is enough.
    both = {**new, "webhook-signature": f"{old['webhook-signature']} {new['webhook-signature']}"}
    assert verify_callback(both, body, SHOP_SECRET, now=now)["event_id"] == "e1"
    with pytest.raises(InvalidInputError) as caught:
        verify_callback(new, body, [], now=now)
    assert str(caught.value) == "secret: must be one or more non-empty callback secrets"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-id": None}, "webhook-id: missing"),
        ({"webhook-timestamp": None}, "webhook-timestamp: missing"),
        ({"webhook-signature": None}, "webhook-signature: missing"),
        ({"webhook-id": "a.b"}, "webhook-id: must be 1 to 200 letters, digits, '_' or '-'"),
        ({"webhook-timestamp": "1.8e9"}, "webhook-timestamp: must be whole Unix seconds"),
        ({"webhook-timestamp": "-5"}, "webhook-timestamp: must be whole Unix seconds"),
        ({"webhook-signature": "v2,AAAA"}, "webhook-signature: holds no v1,<base64> signature"),
    ],
)
def test_malformed_headers_are_named(change: dict[str, str | None], message: str) -> None:
    body = b'{"event_id":"e1"}'
    headers = signed_headers(SHOP_SECRET, "e1", body, timestamp=1_800_000_000)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(CallbackHeaderError) as caught:
        verify_callback(headers, body, SHOP_SECRET, now=1_800_000_000)
    assert str(caught.value) == message


def test_a_signed_body_that_is_not_the_named_event_is_refused() -> None:
    body = b'{"event_id":"other"}'
    headers = signed_headers(SHOP_SECRET, "e1", body, timestamp=1_800_000_000)
    with pytest.raises(CallbackVerificationError) as caught:
        verify_callback(headers, body, SHOP_SECRET, now=1_800_000_000)
    assert str(caught.value) == "body: is not the JSON event webhook-id names"


@given(
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "x"]),
        st.text(max_size=60),
    ),
    body=st.binary(max_size=100),
)
def test_any_input_gets_a_verification_error_never_a_crash(
    headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(CallbackVerificationError) as caught:
        verify_callback(headers, body, SHOP_SECRET)
    assert isinstance(caught.value, SmsqError)
    assert SHOP_SECRET not in str(caught.value)


def test_the_plain_python_example_uses_only_the_standard_library() -> None:
    tree = ast.parse(EXAMPLE.read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert imported == {"base64", "hashlib", "hmac", "json", "time", "typing"}
    assert imported <= sys.stdlib_module_names


@pytest.mark.parametrize("verifier", [example_verifier, readme_verifier], ids=["file", "readme"])
def test_the_plain_python_example_verifies_a_real_post_and_refuses_forgeries(
    redis: Redis,
    producer: Producer,
    receiver: Receiver,
    verifier: Callable[[], Callable[..., dict[str, Any]]],
) -> None:
    verify = verifier()
    got = one_post(redis, producer, receiver, "sig-example")
    assert verify(got.headers, got.body, SHOP_SECRET) == got.verified(SHOP_SECRET)
    assert verify(got.headers, got.body, [OLD_SECRET, SHOP_SECRET])["key"] == "sig-example"
    stale = signed_headers(SHOP_SECRET, got.headers["webhook-id"], got.body, timestamp=1)
    refusals = [
        (got.headers, got.body + b" ", SHOP_SECRET, "bad webhook-signature"),
        (got.headers, got.body, OLD_SECRET, "bad webhook-signature"),
        ({**got.headers, "webhook-id": "x"}, got.body, SHOP_SECRET, "bad webhook-signature"),
        (stale, got.body, SHOP_SECRET, "stale webhook-timestamp: replayed or clock off"),
        ({}, got.body, SHOP_SECRET, "missing or malformed webhook-* headers"),
    ]
    for headers, body, secret, message in refusals:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            verify(headers, body, secret)
