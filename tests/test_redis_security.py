"""Redis as a user would deploy it: an ACL user with a password, and TLS (``rediss://``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from producers.config import ProducerSettings
from producers.enqueue import Producer
from producers.states import State
from producers.store import MessageStore
from tests.helpers.processes import ROOT, Workers
from worker.dev.redis_server import RedisServer, free_port
from worker.sandbox import SandboxProvider


def deploy_acl_rule() -> list[str]:
    """The ACL user line documented in deploy/redis.conf, with a test password."""
    conf = (ROOT / "deploy" / "redis.conf").read_text().splitlines()
    [line] = [line for line in conf if line.startswith("# user smsq ")]
    words = line.removeprefix("# user ").split()
    return [">s3cret-pw" if word == ">CHANGE-ME" else word for word in words]


@pytest.fixture
def acl_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    admin = Redis(port=server.port)
    admin.execute_command("ACL", "SETUSER", *deploy_acl_rule())  # type: ignore[no-untyped-call]
    admin.config_set("requirepass", "admin-pw")
    yield server
    server.stop()


def test_worker_and_producer_run_as_a_restricted_acl_user(
    acl_server: RedisServer, sandbox: SandboxProvider, workers: Workers
) -> None:
    """The ACL rule of deploy/redis.conf is enough for producers and workers; FLUSHALL is not."""
    url = f"redis://smsq:s3cret-pw@127.0.0.1:{acl_server.port}/0"
    client = Redis.from_url(url)
    Producer(client, ProducerSettings(redis_url=url)).enqueue(
        {"key": "acl", "text": "Hi", "to": ["0612345678"]}
    )
    workers.redis_url = url

    run = workers.run_burst()

    assert run.returncode == 0, run.log
    record = MessageStore(client).get("acl")
    assert record is not None
    assert record.state is State.SENT
    with pytest.raises(Exception, match="no permissions to run the 'flushall' command"):
        client.flushall()
    assert "s3cret-pw" not in run.log


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=smsq-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "redis.key",
        "-out",
        "redis.csr",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "redis.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "redis.crt",
    )
    return d


def test_rediss_url_with_a_private_ca(
    tls_files: Path, sandbox: SandboxProvider, workers: Workers
) -> None:
    """REDIS_URL=rediss://…?ssl_ca_certs=… works end to end, hostname and chain verified."""
    port = free_port()
    server = RedisServer(
        port=free_port(),
        extra_args=[
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(tls_files / "redis.crt"),
            "--tls-key-file",
            str(tls_files / "redis.key"),
            "--tls-ca-cert-file",
            str(tls_files / "ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    ).start()
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tls_files / 'ca.crt'}"
        client = Redis.from_url(url)
        Producer(client).enqueue({"key": "tls", "text": "Hi", "to": ["0612345678"]})
        workers.redis_url = url
        run = workers.run_burst()
        record = MessageStore(client).get("tls")
    finally:
        server.stop()
    assert run.returncode == 0, run.log
    assert record is not None
    assert record.state is State.SENT
    assert len(sandbox.requests()) == 1
