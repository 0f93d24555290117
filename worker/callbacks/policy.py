"""Where callbacks may go: the outbound policy of ``smsq callbacks`` and the HTTP client that
enforces it when it connects.

A producer chooses ``callback_url``, so without this smsq could be made to POST to 127.0.0.1,
10.x or 169.254.169.254 (server-side request forgery). :class:`GuardedBackend` resolves the
host once per connection, vets every address, and connects to a vetted address itself, so an
answer that changes between the check and the connect (DNS rebinding) cannot slip through.
httpcore still starts TLS with the URL's host name (SNI and certificate check), never the IP.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from producers.errors import CallbackRefusedError
from worker.settings import ALLOWED_HOSTS_VARIABLE, ALLOWED_NETWORKS_VARIABLE, normalize_host


if TYPE_CHECKING:
    from worker.settings import Settings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses``: one lookup; the seam tests use to play DNS."""

_SHARED = ip_network("100.64.0.0/10")
_PRIVATE = (ip_network("10.0.0.0/8"), ip_network("172.16.0.0/12"), ip_network("192.168.0.0/16"))
_UNIQUE_LOCAL = ip_network("fc00::/7")
_SITE_LOCAL = ip_network("fec0::/10")
_DOCUMENTATION = (
    ip_network("192.0.2.0/24"),
    ip_network("198.51.100.0/24"),
    ip_network("203.0.113.0/24"),
    ip_network("2001:db8::/32"),
    ip_network("3fff::/20"),
)
_NAT64 = ip_network("64:ff9b::/96")
"""The well-known NAT64 prefix (RFC 6052): the IPv4 address is in the last 32 bits. A network's
own NAT64 prefix cannot be known here; such addresses are judged as the IPv6 they are."""
_NUMERIC_IPV4 = re.compile(r"[0-9a-fx.]{1,64}")
"""Characters of an IPv4 address in inet_aton's forms (inet_aton ignores what follows a space)."""
_TRANSPORT_ERRORS: Mapping[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}
"""httpcore's exceptions as httpx raises them (what ``httpx.HTTPTransport`` does)."""
_HTTPCORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    httpcore.ProtocolError,
)


def non_public_kind(address: IPAddress) -> str | None:
    """What kind of non-public address this is (``"a private address"``…), None when it is
    globally routable. IPv4 inside IPv6 (IPv4-mapped, well-known NAT64, 6to4) is judged by the
    IPv4 address it carries."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            ipv4, how = embedded
            kind = non_public_kind(ipv4)
            return None if kind is None else f"{kind} ({how})"
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _SHARED, "a shared (carrier-grade NAT) address"),
        (any(address in net for net in _PRIVATE), "a private address"),
        (address in _UNIQUE_LOCAL, "a unique-local address"),
        (isinstance(address, IPv6Address) and address in _SITE_LOCAL, "a site-local address"),
        (any(address in net for net in _DOCUMENTATION), "a documentation address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "a non-public address"),
    )
    return next((kind for refused, kind in checks if refused), None)


def _embedded_ipv4(address: IPv6Address) -> tuple[IPv4Address, str] | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    return None


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one, else None: IPv6 with or without brackets, and
    IPv4 also in the short forms the system resolver reads as numbers (127.1, 2130706433,
    0x7f.0.0.1), so that the gateway sees them as what they are without DNS."""
    host = normalize_host(host)
    try:
        return ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_IPV4.fullmatch(host) is None:
        return None
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackPolicy:
    """Which hosts and addresses a callback may reach; the default refuses every address that
    is not globally routable and allows any host name."""

    allowed_hosts: tuple[str, ...] = ()
    """Normalised host names or addresses, ``*.example.com`` for any subdomain; empty: any."""
    allowed_networks: tuple[IPNetwork, ...] = ()
    """Non-public networks allowed all the same; empty: globally routable addresses only."""

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackPolicy:
        return cls(
            allowed_hosts=settings.callback_allowed_hosts,
            allowed_networks=settings.callback_allowed_networks,
        )

    def host_allowed(self, host: str) -> bool:
        """Whether ``SMSQ_CALLBACK_ALLOWED_HOSTS`` lets callbacks go to ``host`` (any case,
        trailing dot ignored); always true when it is empty."""
        if not self.allowed_hosts:
            return True
        host = normalize_host(host)
        literal = literal_address(host)
        if literal is not None:
            return any(literal_address(entry) == literal for entry in self.allowed_hosts)
        return any(
            host == entry or (entry.startswith("*.") and host.endswith(entry[1:]))
            for entry in self.allowed_hosts
        )

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why a callback may not connect to ``address`` (its kind), None when it may."""
        kind = non_public_kind(address)
        if kind is None:
            return None
        candidates: list[IPAddress] = [address]
        if isinstance(address, IPv6Address) and (embedded := _embedded_ipv4(address)):
            candidates.append(embedded[0])
        if any(ip in net for ip in candidates for net in self.allowed_networks):
            return None
        return kind

    def check_host(self, host: str) -> None:
        """Refuse a host outside ``SMSQ_CALLBACK_ALLOWED_HOSTS``.

        Raises:
            CallbackRefusedError: ``host`` is not in the list.
        """
        if not self.host_allowed(host):
            raise CallbackRefusedError(
                host, f"is not in {ALLOWED_HOSTS_VARIABLE}", variable=ALLOWED_HOSTS_VARIABLE
            )

    def check_address(self, host: str, address: IPAddress) -> None:
        """Refuse a non-public address outside ``SMSQ_CALLBACK_ALLOWED_NETWORKS``.

        Raises:
            CallbackRefusedError: ``address`` (one of ``host``'s, or ``host`` itself) is
                refused; the reason names both and the setting that would allow it.
        """
        kind = self.address_refusal(address)
        if kind is None:
            return
        is_literal = literal_address(host) == address
        detail = f"is {kind}" if is_literal else f"resolves to {address}, {kind}"
        raise CallbackRefusedError(
            host,
            f"{detail}; allow it with {ALLOWED_NETWORKS_VARIABLE}",
            variable=ALLOWED_NETWORKS_VARIABLE,
            address=str(address),
        )

    def check_url(self, url: str) -> None:
        """What can be checked without DNS (the gateway, at request time): the host against
        ``SMSQ_CALLBACK_ALLOWED_HOSTS``, and an IP-literal host against the networks.

        Raises:
            CallbackRefusedError: the destination is refused.
            ValueError: ``url`` is not an http(s) URL httpx could send to.
        """
        host = url_host(url)
        self.check_host(host)
        literal = literal_address(host)
        if literal is not None:
            self.check_address(host, literal)


def url_host(url: str) -> str:
    """The host httpx will connect to for ``url``: ASCII (an international name in its xn--
    form), lower-case, IPv6 without brackets.

    Raises:
        ValueError: not an http(s) URL httpx accepts.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(str(exc)) from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise ValueError("not an absolute http(s) URL")
    return parsed.raw_host.decode("ascii")


def resolve(host: str, port: int) -> list[str]:
    """Every IPv4 and IPv6 address of ``host``, in the system resolver's order (one lookup)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(
        dict.fromkeys(
            str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)
        )
    )


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's blocking network backend, connecting only to addresses the policy allows.

    Each new connection: the host is checked against ``SMSQ_CALLBACK_ALLOWED_HOSTS``, resolved
    once, every address it resolves to is vetted (one refused address refuses the host), then
    the connection is made to the vetted addresses in order, as IP literals, so nothing
    resolves the name again. The stream returned is httpcore's own; httpcore then starts TLS
    on it with the origin's host name.
    """

    def __init__(self, policy: CallbackPolicy, *, resolver: Resolver = resolve) -> None:
        self._policy = policy
        self._resolver = resolver

    def vetted_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses a connection to ``host`` may use.

        Raises:
            CallbackRefusedError: the host, or one of its addresses, is refused.
            httpcore.ConnectError: the name does not resolve (retried like any connect error).
        """
        self._policy.check_host(host)
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [ip_address(answer) for answer in self._resolver(host, port)]
            except (OSError, UnicodeError, ValueError) as exc:
                raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
            if not addresses:
                raise httpcore.ConnectError(f"could not resolve {host}: no address")
        for address in addresses:
            self._policy.check_address(host, address)
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect to ``host`` through a vetted address, trying each in turn.

        Raises:
            CallbackRefusedError: see :meth:`vetted_addresses`; nothing was connected.
            httpcore.ConnectError: the name does not resolve, or no vetted address accepted.
            httpcore.ConnectTimeout: the last vetted address did not answer in time.
        """
        *first, last = self.vetted_addresses(host, port)
        for address in first:  # like socket.create_connection: the next one on failure
            try:
                return self.connect_address(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return self.connect_address(
            last, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    def connect_address(
        self,
        address: IPAddress,
        port: int,
        *,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.NetworkStream:
        """One TCP connection to a vetted address (httpcore's own connect, given a literal)."""
        return super().connect_tcp(
            str(address),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport over an ``httpcore.ConnectionPool`` whose connections are made by a
    :class:`GuardedBackend`: ``httpx.HTTPTransport``'s no-proxy HTTP/1.1 path, with the one
    change httpx offers no public parameter for (the network backend)."""

    def __init__(
        self, backend: httpcore.NetworkBackend, *, ssl_context: ssl.SSLContext, limits: httpx.Limits
    ) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request through the pool, as ``httpx.HTTPTransport.handle_request``.

        Raises:
            CallbackRefusedError: the policy refused the destination (before any connection).
            httpx.TransportError: as ``httpx.HTTPTransport`` raises them.
        """
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("GuardedTransport needs a synchronous request body")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = self._pool.handle_request(core_request)
        if not isinstance(response.stream, Iterable):
            raise TypeError("httpcore answered with an asynchronous body")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _ResponseStream(httpx.SyncByteStream):
    """A response body whose read errors surface as httpx's, as ``httpx.HTTPTransport``'s."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """Re-raise httpcore's exceptions as the matching httpx ones; anything else unchanged."""
    try:
        yield
    except _HTTPCORE_ERRORS as exc:
        mapped = next(
            _TRANSPORT_ERRORS[cls] for cls in type(exc).__mro__ if cls in _TRANSPORT_ERRORS
        )
        raise mapped(str(exc)) from exc


def callback_client(
    policy: CallbackPolicy,
    *,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    resolver: Resolver = resolve,
    ssl_context: ssl.SSLContext | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.Client:
    """The HTTP client of ``smsq callbacks``: every connection vetted by ``policy``, no
    redirects followed, and no proxy or ``.netrc`` taken from the environment (a proxy would
    make the policy judge the proxy's address instead of the receiver's).

    ``ssl_context`` defaults to httpx's (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``).
    """
    transport = GuardedTransport(
        GuardedBackend(policy, resolver=resolver),
        ssl_context=ssl_context if ssl_context is not None else httpx.create_ssl_context(),
        limits=limits if limits is not None else httpx.Limits(),
    )
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )
