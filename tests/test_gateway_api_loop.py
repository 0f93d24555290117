"""The whole loop an existing AllMySMS client sees with its URL on smsq: sendSms through the
gateway, a real worker sends to the sandbox, the sandbox's receipts and reply reach the
gateway's own webhook, and the client reads them back with getAcks, getAckBySmsId, getPull
and getPulls; getInfo and getBlacklist go to the sandbox with smsq's credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from producers.store import MessageStore
from tests.helpers.gateway import BLOG
from tests.helpers.gateway_api import WEBHOOK_SECRET, api_settings, ask, enqueue
from tests.helpers.processes import Workers, wait_for
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.sandbox import SandboxProvider
from worker.store.credits import CreditsStore


DELIVERED, REJECTED, REPLYING = "33612345678", "33611777777", "33611555555"


@pytest.fixture
def base(redis_server: RedisServer, redis: Redis, sandbox: SandboxProvider) -> Iterator[str]:
    with running(create_app(api_settings(redis_server.url, sandbox), redis)) as base_url:
        yield base_url


def test_an_allmysms_client_reads_its_receipts_and_replies_from_smsq(
    base: str, redis: Redis, sandbox: SandboxProvider, workers: Workers, store: MessageStore
) -> None:
    """Receipts and a reply a real worker's send brought back are read through the gateway."""
    hooks = f"{base}/webhooks/allmysms/{WEBHOOK_SECRET}"
    sandbox.set_receipts_url(f"{hooks}/receipts", f"{hooks}/replies", delay_ms=100)
    campaign = enqueue(
        base,
        CLIMSGID="loop-1",
        SMS=[{"MOBILEPHONE": p} for p in ("0612345678", "0611777777", "0611555555")],
    )

    run = workers.run_burst()
    assert run.returncode == 0, run.log
    wait_for(lambda: len(sandbox.receipts.log()) == 7, what="6 receipts and 1 reply")
    record = store.get_by_id(campaign)
    assert record is not None
    assert record.state.value == "sent"

    acks = ask(base, "getAcks", campId=campaign)
    rejected = ask(base, "getAckBySmsId", smsId=f"{campaign}-2")
    pull = ask(base, "getPull", campId=campaign)
    pulls = ask(base, "getPulls")
    again = ask(base, "getPulls")
    other = ask(base, "getPulls", BLOG)

    assert [(a["phoneNumber"], a["statut"]) for a in acks["acks"]] == [
        (DELIVERED, "1"),
        (REJECTED, "5"),
        (REPLYING, "1"),
    ]
    assert acks["cliMsgId"] == "loop-1"
    assert (rejected["phoneNumber"], rejected["statut"]) == (REJECTED, "5")
    assert [(m["phoneNumber"], m["message"], m["campaignId"]) for m in pull["mos"]] == [
        (REPLYING, "OUI", campaign)
    ]
    assert pulls["mos"] == pull["mos"]
    assert again == {"mos": []}
    assert other == {"mos": []}
    # The worker stored the balance sendSms answered: getInfo needs not ask AllMySMS.
    balance = CreditsStore(redis).get()
    assert balance is not None
    assert balance.source == "sendSms"
    assert ask(base, "getInfo") == {"status": "Active Account", "credits": str(balance.credits)}
    assert "getInfo" not in [r.get("endpoint") for r in sandbox.requests()]
    assert ask(base, "getBlacklist") == {"blacklist": []}
