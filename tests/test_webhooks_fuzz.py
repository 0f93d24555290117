"""The AllMySMS webhooks as a boundary: whatever bytes arrive, the answer is OK, a 400 naming
the parameter, or a 413, never a 500, and the parsers raise nothing but WebhookParamError."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from starlette.applications import Starlette

from producers.errors import WebhookParamError
from tests.helpers.callbacks import settings as smsq_settings
from worker.admin.server import running
from worker.dev.redis_server import RedisServer
from worker.gateway.webhooks import webhook_routes
from worker.settings import Secret
from worker.store.receipts import RECEIPT_PARAMS, REPLY_PARAMS, parse_receipt, parse_reply


SECRET = "wh-" + "5c1d" * 10
NAMES = st.sampled_from(sorted({*RECEIPT_PARAMS, *REPLY_PARAMS})) | st.text(max_size=8)
PARAMS = st.dictionaries(NAMES, st.text(max_size=40) | st.sampled_from(["1", "5", "33612345678"]))


@given(PARAMS)
def test_the_parsers_accept_or_name_the_parameter(params: dict[str, str]) -> None:
    fields = set()
    for parse in (parse_receipt, parse_reply):
        try:
            parse(params)
        except WebhookParamError as error:
            fields.add(error.field)
    assert fields <= {*RECEIPT_PARAMS, *REPLY_PARAMS}


@pytest.fixture(scope="module")
def client(redis_server: RedisServer) -> Iterator[httpx.Client]:
    """One keep-alive client for every example (a client per request spends most of the time
    loading CA certificates)."""
    connection = Redis.from_url(redis_server.url)
    app = Starlette(routes=webhook_routes(smsq_settings(webhook_secret=Secret(SECRET)), connection))
    with running(app) as url, httpx.Client(base_url=f"{url}/webhooks/allmysms/{SECRET}") as http:
        yield http
    connection.close()


BODIES = st.binary(max_size=300) | st.lists(
    st.tuples(NAMES, st.binary(max_size=30)), max_size=6
).map(lambda pairs: b"&".join(n.encode("utf-8", "surrogatepass") + b"=" + v for n, v in pairs))
CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "text/plain",
        "application/x-www-form-urlencoded; charset=latin-1",
    ]
)


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    # Half the profile's count: each example is a real HTTP request.
    max_examples=max(settings().max_examples // 2, 1),
)
@given(body=BODIES, content_type=CONTENT_TYPES, path=st.sampled_from(["receipts", "replies"]))
def test_any_body_gets_ok_or_a_named_refusal(
    client: httpx.Client, body: bytes, content_type: str, path: str
) -> None:
    answer = client.post(f"/{path}", content=body, headers={"content-type": content_type})

    assert answer.status_code in {200, 400, 413}, answer.text
    if answer.status_code == 400:
        assert answer.text.split(":")[0] in {
            *RECEIPT_PARAMS,
            *REPLY_PARAMS,
            "unreadable form body\n",
        }
