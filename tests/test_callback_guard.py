"""The callback policy against server-side request forgery: the address and host tables, the
settings, the connect-time guard (DNS rebinding, TLS host name) with an injected resolver, the
dispatcher over real sockets, and the gateway's request-time check."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import httpcore
import httpx
import pytest
import structlog
from redis import Redis

from producers import keys
from producers.enqueue import Producer
from producers.errors import CallbackRefusedError
from tests.helpers.callbacks import Receiver, deliver_all, finish_sent, metric, settings
from tests.helpers.gateway import PATH, answer, gateway_settings, json_flux, post, self_signed
from worker.callbacks.dispatcher import Dispatcher
from worker.callbacks.outbox import dead_callbacks
from worker.callbacks.policy import (
    CallbackPolicy,
    GuardedBackend,
    GuardedTransport,
    callback_client,
    non_public_kind,
    resolve,
)
from worker.dev.redis_server import RedisServer
from worker.gateway import create_app
from worker.gateway.server import running
from worker.settings import Settings


NETWORKS_HINT = "; allow it with SMSQ_CALLBACK_ALLOWED_NETWORKS"
PUBLIC_V4 = "93.184.216.34"
LOOPBACK_ONLY = (ip_network("127.0.0.0/8"),)


def refused(host: str, detail: str) -> str:
    """The dead reason of a destination refused for its address."""
    return f'callback_url host "{host}" {detail}{NETWORKS_HINT}'


class FakeResolver:
    """Plays DNS: answers each lookup with the next list, and counts the lookups."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append((host, port))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class ScriptedStream(httpcore.NetworkStream):
    """A connection that records TLS starts and answers one canned HTTP/1.1 response."""

    def __init__(self) -> None:
        self.tls: list[tuple[ssl.SSLContext, str | None]] = []
        self.sent = b""
        self.reply = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        chunk, self.reply = self.reply[:max_bytes], self.reply[max_bytes:]
        return chunk

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.sent += buffer

    def close(self) -> None:
        pass

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self.tls.append((ssl_context, server_hostname))
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


class SpyBackend(GuardedBackend):
    """The guarded backend with its TCP connect recorded (and faked unless ``real``)."""

    def __init__(
        self, policy: CallbackPolicy, resolver: FakeResolver, *, refuse: Sequence[str] = ()
    ) -> None:
        super().__init__(policy, resolver=resolver)
        self.connects: list[tuple[str, int]] = []
        self.streams: list[ScriptedStream] = []
        self.refuse = set(refuse)

    def connect_address(
        self,
        address: IPv4Address | IPv6Address,
        port: int,
        *,
        timeout: float | None,
        local_address: str | None,
        socket_options: Any,
    ) -> httpcore.NetworkStream:
        self.connects.append((str(address), port))
        if str(address) in self.refuse:
            raise httpcore.ConnectError("[Errno 111] Connection refused")
        stream = ScriptedStream()
        self.streams.append(stream)
        return stream


# --- the policy, without any network ---


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("0.0.0.0", "an unspecified address"),  # noqa: S104 - an address under test, not a bind
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("192.0.2.10", "a documentation address"),
        ("198.51.100.7", "a documentation address"),
        ("198.18.0.1", "a non-public address"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fc00::1", "a unique-local address"),
        ("fd12:3456::1", "a unique-local address"),
        ("fe80::1", "a link-local address"),
        ("fec0::1", "a site-local address"),
        ("ff02::1", "a multicast address"),
        ("2001:db8::1", "a documentation address"),
        ("::ffff:127.0.0.1", "a loopback address (IPv4-mapped)"),
        ("::ffff:10.0.0.1", "a private address (IPv4-mapped)"),
        ("::ffff:169.254.169.254", "a link-local address (IPv4-mapped)"),
        ("64:ff9b::10.0.0.1", "a private address (NAT64)"),
        ("2002:a00:1::", "a private address (6to4)"),
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str, kind: str) -> None:
    """Each non-public address gets its kind, and the default policy refuses it."""
    assert non_public_kind(ip_address(address)) == kind
    assert CallbackPolicy().address_refusal(ip_address(address)) == kind


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        PUBLIC_V4,
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    """Globally routable addresses, also carried in IPv6, pass the default policy."""
    assert non_public_kind(ip_address(address)) is None
    assert CallbackPolicy().address_refusal(ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", True),
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("::ffff:127.0.0.1", True),
        ("fd00::5", True),
        ("192.168.0.1", False),
        ("::1", False),
        ("8.8.8.8", True),
    ],
)
def test_allowed_networks_let_exactly_their_addresses_through(address: str, allowed: bool) -> None:
    """SMSQ_CALLBACK_ALLOWED_NETWORKS allows its networks (IPv4-mapped included), nothing more."""
    policy = CallbackPolicy(
        allowed_networks=(
            ip_network("10.0.0.0/8"),
            ip_network("127.0.0.1/32"),
            ip_network("fd00::/8"),
        )
    )
    assert (policy.address_refusal(ip_address(address)) is None) is allowed


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("shop.example.com", True),
        ("SHOP.Example.COM", True),
        ("shop.example.com.", True),
        ("api.shop.example.com", False),
        ("example.com", False),
        ("a.hooks.example.net", True),
        ("A.B.Hooks.Example.Net.", True),
        ("hooks.example.net", False),
        ("xhooks.example.net", False),
        ("hooks.example.net.evil.com", False),
        ("10.0.0.5", True),
        ("10.0.0.6", False),
        ("2001:db8::1", True),
        ("[2001:db8::1]", True),
    ],
)
def test_allowed_hosts_match_exactly_or_by_wildcard(host: str, allowed: bool) -> None:
    """Exact names, ``*.`` for subdomains only, any case, trailing dot, IP literals."""
    policy = CallbackPolicy(
        allowed_hosts=("shop.example.com", "*.hooks.example.net", "10.0.0.5", "2001:db8::1")
    )
    assert policy.host_allowed(host) is allowed


def test_empty_allowed_hosts_allow_any_host() -> None:
    """Without SMSQ_CALLBACK_ALLOWED_HOSTS every host name passes the host check."""
    assert CallbackPolicy().host_allowed("anything.example")


def test_settings_read_and_normalise_both_variables() -> None:
    """Hosts are lower-cased without trailing dots or brackets; networks are parsed; blanks
    and duplicates are skipped."""
    parsed = Settings.from_env(
        {
            "SMSQ_CALLBACK_ALLOWED_HOSTS": " Shop.Example.com., *.Hooks.example.NET ,,[::1], "
            "shop.example.com",
            "SMSQ_CALLBACK_ALLOWED_NETWORKS": "10.0.0.0/8, 127.0.0.1/32,::1,fd00::/8,",
        }
    )
    assert parsed.callback_allowed_hosts == ("shop.example.com", "*.hooks.example.net", "::1")
    assert parsed.callback_allowed_networks == (
        ip_network("10.0.0.0/8"),
        ip_network("127.0.0.1/32"),
        ip_network("::1/128"),
        ip_network("fd00::/8"),
    )
    assert Settings.from_env({}).callback_allowed_hosts == ()
    assert Settings.from_env({}).callback_allowed_networks == ()


# --- the connect-time guard, with a fake resolver and a recorded connect ---


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("169.254.169.254", "a link-local address"),
        ("::ffff:127.0.0.1", "a loopback address (IPv4-mapped)"),
        ("10.0.0.1", "a private address"),
        ("127.1", "a loopback address"),
        ("2130706433", "a loopback address"),
    ],
)
def test_refused_literal_is_never_connected_or_resolved(host: str, kind: str) -> None:
    """An IP-literal host in a refused range raises before any lookup or connection."""
    resolver = FakeResolver([PUBLIC_V4])
    backend = SpyBackend(CallbackPolicy(), resolver)
    with pytest.raises(CallbackRefusedError) as info:
        backend.connect_tcp(host, 80, timeout=1.0)
    assert str(info.value) == refused(host, f"is {kind}")
    assert (backend.connects, resolver.lookups) == ([], [])


def test_dns_rebinding_connects_only_to_the_vetted_address() -> None:
    """Each connection resolves once and connects to what it vetted: a public first answer is
    used as an IP literal; a private second answer refuses the next connection outright."""
    resolver = FakeResolver([PUBLIC_V4], ["10.0.0.1"])
    backend = SpyBackend(CallbackPolicy(), resolver)

    backend.connect_tcp("rebind.example", 443, timeout=1.0)
    assert backend.connects == [(PUBLIC_V4, 443)]
    assert resolver.lookups == [("rebind.example", 443)]

    with pytest.raises(CallbackRefusedError) as info:
        backend.connect_tcp("rebind.example", 443, timeout=1.0)
    assert str(info.value) == refused("rebind.example", "resolves to 10.0.0.1, a private address")
    assert (info.value.host, info.value.address, info.value.variable) == (
        "rebind.example",
        "10.0.0.1",
        "SMSQ_CALLBACK_ALLOWED_NETWORKS",
    )
    assert backend.connects == [(PUBLIC_V4, 443)]
    assert len(resolver.lookups) == 2


def test_one_refused_address_among_public_ones_refuses_the_host() -> None:
    """Every resolved address is checked: a public answer does not excuse a private one."""
    backend = SpyBackend(CallbackPolicy(), FakeResolver([PUBLIC_V4, "169.254.169.254"]))
    with pytest.raises(CallbackRefusedError) as info:
        backend.connect_tcp("mixed.example", 80, timeout=1.0)
    assert str(info.value) == refused(
        "mixed.example", "resolves to 169.254.169.254, a link-local address"
    )
    assert backend.connects == []


def test_next_vetted_address_is_tried_when_one_refuses_the_connection() -> None:
    """Like socket.create_connection, a refused connect moves on to the next vetted address."""
    backend = SpyBackend(
        CallbackPolicy(),
        FakeResolver(["2606:4700:4700::1111", PUBLIC_V4]),
        refuse=["2606:4700:4700::1111"],
    )
    backend.connect_tcp("dual.example", 80, timeout=1.0)
    assert backend.connects == [("2606:4700:4700::1111", 80), (PUBLIC_V4, 80)]


def test_unresolvable_host_is_a_connect_error() -> None:
    """A failed lookup is an ordinary connect error (retried), not a refusal."""

    def no_such_host(host: str, port: int) -> Sequence[str]:
        raise OSError(-2, "Name or service not known")

    backend = GuardedBackend(CallbackPolicy(), resolver=no_such_host)
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("nowhere.example", 80, timeout=1.0)


def test_host_outside_allowed_hosts_is_refused_before_any_lookup() -> None:
    """With SMSQ_CALLBACK_ALLOWED_HOSTS set, another host fails before DNS or connect."""
    resolver = FakeResolver([PUBLIC_V4])
    backend = SpyBackend(CallbackPolicy(allowed_hosts=("hooks.example.com",)), resolver)
    with pytest.raises(CallbackRefusedError) as info:
        backend.connect_tcp("other.example.com", 443, timeout=1.0)
    assert str(info.value) == (
        'callback_url host "other.example.com" is not in SMSQ_CALLBACK_ALLOWED_HOSTS'
    )
    assert (backend.connects, resolver.lookups) == ([], [])


def test_tls_is_started_with_the_original_host_name_on_the_vetted_address() -> None:
    """httpcore starts TLS on the guarded stream with the URL's host as SNI and for the
    certificate check, while the TCP connection went to the vetted IP."""
    backend = SpyBackend(CallbackPolicy(), FakeResolver([PUBLIC_V4]))
    context = httpx.create_ssl_context()
    with httpx.Client(
        transport=GuardedTransport(backend, ssl_context=context, limits=httpx.Limits())
    ) as client:
        response = client.post("https://callbacks.example/hook", content=b"{}")
    assert response.status_code == 204
    assert backend.connects == [(PUBLIC_V4, 443)]
    [(tls_context, server_hostname)] = backend.streams[0].tls
    assert server_hostname == "callbacks.example"
    assert tls_context is context
    assert (context.check_hostname, context.verify_mode) == (True, ssl.CERT_REQUIRED)
    assert backend.streams[0].sent.startswith(b"POST /hook HTTP/1.1\r\nHost: callbacks.example")


@pytest.fixture(scope="module")
def tls_names(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for the name callbacks.test only (no IP in it)."""
    return self_signed(
        tmp_path_factory.mktemp("callback-tls"), "callbacks.test", "DNS:callbacks.test"
    )


@pytest.fixture
def tls_receiver(tls_names: tuple[str, str]) -> Iterator[tuple[int, list[str | None]]]:
    """An HTTPS receiver on 127.0.0.1 serving that certificate; yields its port and the SNI
    names clients sent."""
    cert, key = tls_names
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.server_address[1], names
    finally:
        server.shutdown()
        server.server_close()


def test_https_to_a_vetted_ip_verifies_the_certificate_of_the_host_name(
    tls_names: tuple[str, str], tls_receiver: tuple[int, list[str | None]]
) -> None:
    """Over real TLS: callbacks.test resolved (by the fake resolver) to 127.0.0.1 is reached
    with SNI callbacks.test and its certificate verifies; the same server by IP does not."""
    port, names = tls_receiver
    trust = ssl.create_default_context(cafile=tls_names[0])
    resolver = FakeResolver(["127.0.0.1"])
    policy = CallbackPolicy(allowed_networks=LOOPBACK_ONLY)
    with callback_client(policy, timeout_s=5, resolver=resolver, ssl_context=trust) as client:
        assert client.post(f"https://callbacks.test:{port}/hook", content=b"{}").status_code == 204
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.post(f"https://127.0.0.1:{port}/hook", content=b"{}")
    assert names[0] == "callbacks.test"
    assert resolver.lookups == [("callbacks.test", port)]


def test_client_ignores_proxies_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    """HTTP_PROXY/ALL_PROXY never reroute callbacks (a dead proxy changes nothing), and a 3xx
    answer comes back as it is."""
    with socket.socket() as probe:  # a port nobody listens on: the "proxy"
        probe.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    receiver.statuses = [302]
    url = receiver.start()
    with callback_client(CallbackPolicy(allowed_networks=LOOPBACK_ONLY), timeout_s=1) as client:
        assert client.trust_env is False
        assert client.post(url, content=b"{}").status_code == 302
    assert len(receiver.received) == 1


# --- the dispatcher over real sockets ---


def test_loopback_callback_is_dead_at_once_by_default(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """http://127.0.0.1:<port>/ with default settings: dead on the first attempt, nothing
    received, and the reason names the host, the kind of address and the setting."""
    url = receiver.start()
    finish_sent(redis, producer, "guard-loop", callback_url=url)
    dispatcher = Dispatcher(settings(callback_allowed_networks=()), redis)
    with structlog.testing.capture_logs() as logs:
        assert deliver_all(dispatcher) == ["dead"]
    assert receiver.received == []
    [dead] = dead_callbacks(redis)
    reason = refused("127.0.0.1", "is a loopback address")
    assert (dead.reason, dead.attempts, dead.http_status, dead.url) == (reason, 1, None, url)
    assert (metric(redis, "callbacks_dead"), metric(redis, "callbacks_retried")) == (1, 0)
    assert redis.zcard(keys.CALLBACK_DUE) == 0
    assert logs == [
        {
            "event": "sms.callback.dead",
            "log_level": "error",
            "reason": reason,
            "http_status": None,
            "event_id": dead.event_id,
            "kind": "message.final",
            "attempt": 1,
            "host": "127.0.0.1",
        }
    ]


def test_loopback_callback_is_delivered_when_its_network_is_allowed(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """The same callback with 127.0.0.0/8 in SMSQ_CALLBACK_ALLOWED_NETWORKS is delivered."""
    finish_sent(redis, producer, "guard-allowed", callback_url=receiver.start())
    dispatcher = Dispatcher(settings(callback_allowed_networks=LOOPBACK_ONLY), redis)
    assert deliver_all(dispatcher) == ["delivered"]
    assert [e["key"] for e in receiver.events()] == ["guard-allowed"]


def test_name_resolving_to_loopback_is_refused(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """http://localhost:<port>/ is refused for the loopback address the name resolves to."""
    url = receiver.start().replace("127.0.0.1", "localhost")
    port = int(url.split(":")[2].split("/")[0])
    finish_sent(redis, producer, "guard-localhost", callback_url=url)
    assert deliver_all(Dispatcher(settings(callback_allowed_networks=()), redis)) == ["dead"]
    assert receiver.received == []
    first = resolve("localhost", port)[0]
    [dead] = dead_callbacks(redis)
    assert dead.reason == refused("localhost", f"resolves to {first}, a loopback address")


def test_host_outside_allowed_hosts_is_dead_at_once(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """With SMSQ_CALLBACK_ALLOWED_HOSTS set, an unlisted host is dead, even on an allowed
    network, and the reason names the variable."""
    finish_sent(redis, producer, "guard-host", callback_url=receiver.start())
    dispatcher = Dispatcher(settings(callback_allowed_hosts=("hooks.example.com",)), redis)
    assert deliver_all(dispatcher) == ["dead"]
    assert receiver.received == []
    [dead] = dead_callbacks(redis)
    assert dead.reason == 'callback_url host "127.0.0.1" is not in SMSQ_CALLBACK_ALLOWED_HOSTS'


def test_rebinding_name_is_delivered_once_then_refused(
    redis: Redis, producer: Producer, receiver: Receiver
) -> None:
    """A name answering 127.0.0.1 (allowed) then 10.0.0.1 (not): the first event reaches the
    receiver over a real socket, the next connection is refused and its event is dead."""
    port = int(receiver.start().split(":")[2].split("/")[0])
    url = f"http://rebind.test:{port}/hook"
    finish_sent(redis, producer, "guard-rebind-1", callback_url=url)
    finish_sent(redis, producer, "guard-rebind-2", callback_url=url)
    resolver = FakeResolver(["127.0.0.1"], ["10.0.0.1"])
    policy = CallbackPolicy(allowed_networks=LOOPBACK_ONLY)
    dispatcher = Dispatcher(
        settings(), redis, client=callback_client(policy, timeout_s=1, resolver=resolver)
    )
    try:
        assert deliver_all(dispatcher) == ["delivered", "dead"]
    finally:
        dispatcher.close()
    assert len(receiver.received) == 1
    assert resolver.lookups == [("rebind.test", port)] * 2
    [dead] = dead_callbacks(redis)
    assert dead.reason == refused("rebind.test", "resolves to 10.0.0.1, a private address")


# --- the gateway, at request time (no DNS) ---


@pytest.fixture
def guarded_gateway(
    redis_server: RedisServer, redis: Redis, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The gateway with the callback settings given by indirect parametrisation."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    app_settings = dataclasses.replace(gateway_settings(redis_server.url), **overrides)
    with running(create_app(app_settings, redis)) as base_url:
        yield base_url + PATH


@pytest.mark.parametrize(
    ("callback_url", "status_text"),
    [
        ("http://10.0.0.1/x", 'callbackUrl: host "10.0.0.1" is a private address' + NETWORKS_HINT),
        (
            "http://169.254.169.254/latest/meta-data/",
            'callbackUrl: host "169.254.169.254" is a link-local address' + NETWORKS_HINT,
        ),
        (
            "http://[::ffff:127.0.0.1]:8080/x",
            'callbackUrl: host "::ffff:127.0.0.1" is a loopback address (IPv4-mapped)'
            + NETWORKS_HINT,
        ),
        (
            "http://2130706433/x",
            'callbackUrl: host "2130706433" is a loopback address' + NETWORKS_HINT,
        ),
    ],
)
def test_gateway_refuses_a_non_public_literal_with_106(
    guarded_gateway: str, redis: Redis, callback_url: str, status_text: str
) -> None:
    """A callbackUrl with a refused IP literal answers 106 naming callbackUrl; nothing queued."""
    reply = answer(post(guarded_gateway, json_flux(), callbackUrl=callback_url))
    assert reply == {"status": 106, "statusText": status_text}
    assert redis.keys("smsq:msg:*") == []


def test_gateway_does_not_resolve_names_at_request_time(guarded_gateway: str) -> None:
    """A host name is accepted without DNS (the dispatcher checks its addresses later)."""
    reply = answer(
        post(guarded_gateway, json_flux(), headers={"X-Smsq-Callback-Url": "http://localhost:9/x"})
    )
    assert reply["status"] == 100


@pytest.mark.parametrize(
    "guarded_gateway", [{"callback_allowed_hosts": ("*.shop.example",)}], indirect=True
)
def test_gateway_refuses_a_host_outside_allowed_hosts(guarded_gateway: str) -> None:
    """With SMSQ_CALLBACK_ALLOWED_HOSTS set, an unlisted host answers 106; a listed one passes."""
    refused_reply = answer(post(guarded_gateway, json_flux(), callbackUrl="https://evil.example/x"))
    assert refused_reply == {
        "status": 106,
        "statusText": 'callbackUrl: host "evil.example" is not in SMSQ_CALLBACK_ALLOWED_HOSTS',
    }
    header = answer(
        post(
            guarded_gateway, json_flux(), headers={"X-Smsq-Callback-Url": "https://shop.example/x"}
        )
    )
    assert header["statusText"] == (
        'callbackUrl: host "shop.example" is not in SMSQ_CALLBACK_ALLOWED_HOSTS'
    )
    accepted = answer(
        post(guarded_gateway, json_flux(), callbackUrl="https://Hooks.Shop.Example/x")
    )
    assert accepted["status"] == 100


@pytest.mark.parametrize(
    "guarded_gateway", [{"callback_allowed_networks": (ip_network("10.0.0.0/8"),)}], indirect=True
)
def test_gateway_accepts_a_literal_in_an_allowed_network(guarded_gateway: str) -> None:
    """SMSQ_CALLBACK_ALLOWED_NETWORKS lets the gateway accept an address in it."""
    assert (
        answer(post(guarded_gateway, json_flux(), callbackUrl="http://10.0.0.1/x"))["status"] == 100
    )
