"""The project's one guarded client for outbound HTTP (ARCHITECTURE.md rule 5: HTTP has one door).

Everything Workspace fetches or posts on a user's behalf (URL imports, webhooks, ML backends) goes
through :class:`GuardedClient`, so the defences against server-side request forgery live in one place:

* **URL rules.** Only ``http`` and ``https``; no user name or password in the URL (credentials belong
  in headers); optionally only the ports in ``OutboundPolicy.allowed_ports``. A caller-supplied
  ``Host`` header is dropped, so the Host sent is always the host that was checked.
* **Address rules, every hop.** The host is resolved once per hop with ``socket.getaddrinfo`` and the
  request is refused if *any* address is loopback, private (RFC 1918, ULA ``fc00::/7``, site-local),
  shared address space (``100.64.0.0/10``), link-local (``169.254.0.0/16``, ``fe80::/10``: where
  cloud metadata services live), multicast, unspecified (``0.0.0.0``, ``::``), reserved or otherwise
  not globally routable. IPv6 forms that embed an IPv4 address (``::ffff:a.b.c.d``, NAT64
  ``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``) are judged by the IPv4 address inside.
  Cloud metadata hostnames (``metadata.google.internal`` ...) and addresses (``169.254.169.254``,
  ``fd00:ec2::254``, ``100.100.100.200`` ...) are refused whatever the policy allows. Numeric
  spellings such as ``http://2130706433/`` or ``http://0x7f.1/`` are judged by what
  ``getaddrinfo`` turns them into, which is also what a connection would reach.
* **Pinning (no DNS rebinding).** The checked addresses are *pinned*: the connection goes to one of
  them, and no second DNS lookup ever happens. See "How pinning and TLS work" below.
* **Redirects are followed by hand** (never by httpx), at most ``max_redirects`` times, and every
  hop goes through the same URL and address rules before anything connects to it. A redirect to
  another origin drops ``Authorization``, ``Proxy-Authorization`` and ``Cookie``; 303 (and 301/302
  after a POST) turn into a body-less GET, 307/308 repeat the method and body.
* **Caps.** A connect timeout, a per-read timeout and a *total* deadline for the whole exchange
  (every hop, and the body), enforced on every socket operation; a response-size cap checked against
  ``Content-Length`` up front and against the bytes actually received while streaming (both on the
  wire and after decoding), so an oversized body is abandoned as soon as the cap is passed.
* **No ambient configuration.** ``trust_env`` is off: proxy variables (which would bypass pinning)
  and ``~/.netrc`` (which would leak credentials) are ignored.

How pinning and TLS work
------------------------
httpx sends the request; httpcore (httpx's connection layer) owns connections and TLS. httpcore asks
its *network backend* for a TCP stream with ``connect_tcp(host, port)``; the stock backend resolves
``host`` itself. :class:`GuardedClient` builds its own httpcore ``ConnectionPool`` whose backend
(``_PinnedBackend``) never resolves anything: it looks ``(host, port)`` up in the table of addresses
that the check of this hop just produced and opens a socket to that IP literal (``socket.connect``
on an ``(ip, port)`` pair, no ``getaddrinfo``). A host that was not checked is refused.

Because only the *dialling* is redirected, everything above it still sees the original URL: httpx
writes ``Host: original-host``, and for ``https`` httpcore calls
``stream.start_tls(ssl_context, server_hostname=original-host)``, so the TLS layer sends SNI for the
original hostname and verifies the certificate chain and hostname against it (``check_hostname`` on,
CA bundle from certifi unless ``OutboundPolicy.ssl_context`` says otherwise). A certificate that is
valid only for the IP, or for another name hosted on the same IP, is refused.

This was preferred over rewriting the URL to the IP and passing ``extensions={"sni_hostname": ...}``:
that also verifies against the right name, but httpcore would key its connection pool by the IP, so
a TLS connection verified for one hostname could be reused for another hostname on the same IP, and
relative redirects and error messages would see the IP instead of the name.

Each call (``get``, ``post``, ``stream`` ...) gets a fresh pool and the table of pins for that call
only, so nothing is shared between calls or threads; one :class:`GuardedClient` can be used from many
threads at once. Connections are not kept alive between calls.

This module imports nothing from ``workspace``.
"""

from __future__ import annotations

import codecs
import ipaddress
import json as jsonlib
import re
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import unquote

import httpcore
import httpx

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "METADATA_ADDRESSES",
    "METADATA_HOSTNAMES",
    "BadScheme",
    "BadStatus",
    "BadURL",
    "BlockedAddress",
    "GuardedClient",
    "OutboundConnectError",
    "OutboundError",
    "OutboundPolicy",
    "OutboundResponse",
    "OutboundStream",
    "OutboundTimeout",
    "PinnedTarget",
    "TooLarge",
    "TooManyRedirects",
    "address_problem",
    "check_url",
    "connect_socket",
    "system_resolver",
]

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 50 * MiB
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_REDIRECTS = 5

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

#: Hostnames of cloud metadata services; refused before any lookup, whatever the policy allows.
METADATA_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "metadata.packet.net",
    }
)

#: Addresses of cloud metadata services; refused whatever the policy allows.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")
)
_NAT64_NETWORKS = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

#: Strips these request headers when a redirect leaves the original origin.
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
_BODY_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""``resolver(host, port) -> addresses``: IP address strings for a hostname (never called for IP literals)."""
Connector = Callable[[str, int, "float | None"], socket.socket]
"""``connect(ip, port, timeout) -> connected socket``; the pinned IP is the only address it gets."""


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class OutboundError(Exception):
    """An outbound request was refused or failed. ``str(exc)`` is a message a user can act on."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url

    def __str__(self) -> str:
        return self.message


class BadURL(OutboundError):
    """The URL is malformed, carries a user name or password, or uses a port that is not allowed."""


class BadScheme(BadURL):
    """The URL's scheme is not ``http`` or ``https``."""

    def __init__(self, url: str, scheme: str, *, subject: str | None = None) -> None:
        self.scheme = scheme
        what = f"uses the scheme {scheme!r}" if scheme else "has no scheme (start it with https:// or http://)"
        super().__init__(
            f"{subject or url} {what}; Workspace only fetches http:// and https:// URLs",
            url=url,
        )


class BlockedAddress(OutboundError):
    """The URL's host is (or resolves to) an address Workspace must not reach."""

    def __init__(self, url: str, address: str, reason: str, *, subject: str | None = None) -> None:
        self.address = address
        self.reason = reason
        verb = "resolves to" if _is_ip(address) else "names"
        super().__init__(
            f"{subject or url} {verb} {address}, {reason}; Workspace only fetches public addresses",
            url=url,
        )


class TooLarge(OutboundError):
    """The response body is larger than ``OutboundPolicy.max_bytes``."""

    def __init__(self, url: str, limit: int, *, declared: int | None = None) -> None:
        self.limit = limit
        self.declared = declared
        size = f"announced {_size(declared)}" if declared is not None else f"sent more than {_size(limit)}"
        super().__init__(
            f"{url} {size}; Workspace reads at most {_size(limit)} from one URL "
            "(split the file, or ask an operator to raise the limit)",
            url=url,
        )


class TooManyRedirects(OutboundError):
    """The redirect chain is longer than ``OutboundPolicy.max_redirects``."""

    def __init__(self, url: str, limit: int, last: str) -> None:
        self.limit = limit
        self.last = last
        super().__init__(
            f"{url} redirected more than {limit} time{'s' if limit != 1 else ''} (last to {last}); "
            f"Workspace follows at most {limit}: use the final URL directly",
            url=url,
        )


class OutboundTimeout(OutboundError):
    """Connecting, a single read or write, or the whole exchange took too long."""

    def __init__(self, url: str, phase: str, seconds: float) -> None:
        self.phase = phase
        self.seconds = seconds
        what = {
            "connect": "did not accept a connection within",
            "read": "stopped sending data for",
            "write": "stopped accepting data for",
            "total": "did not finish within the total limit of",
        }.get(phase, "timed out after")
        super().__init__(
            f"{url} {what} {seconds:g} s; check that the server is up and answers quickly",
            url=url,
        )


class OutboundConnectError(OutboundError):
    """The host could not be resolved or reached, TLS failed, or the connection broke."""


class BadStatus(OutboundError):
    """Raised by :meth:`OutboundResponse.raise_for_status` for 4xx and 5xx answers."""

    def __init__(self, url: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(f"{url} answered HTTP {status_code}", url=url)


# --------------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundPolicy:
    """What the guarded client may reach, and how much it may spend doing so.

    ``allow_loopback`` / ``allow_private`` exist for tests against a local server and for an
    explicit operator setting (an ML backend on the private network); the default blocks both.
    ``allowed_hosts`` is the narrower operator setting: hostnames (exact, case-insensitive) that may
    resolve to loopback or private addresses. Neither ever opens link-local, multicast, unspecified,
    reserved or cloud metadata addresses.
    """

    allow_loopback: bool = False
    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_ports: frozenset[int] | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    user_agent: str = "Workspace-outbound/1"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "allowed_hosts",
            frozenset(_normalize_host(h) for h in self.allowed_hosts),
        )
        if self.allowed_ports is not None:
            ports = frozenset(int(p) for p in self.allowed_ports)
            if any(not 0 < p < 65536 for p in ports):
                raise ValueError(f"allowed_ports must be between 1 and 65535, got {sorted(ports)}")
            object.__setattr__(self, "allowed_ports", ports)
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        for name in ("timeout", "connect_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be 0 or more")
        if self.ssl_context is not None and (
            not self.ssl_context.check_hostname or self.ssl_context.verify_mode != ssl.CERT_REQUIRED
        ):
            raise ValueError("ssl_context must verify certificates and hostnames")


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def _normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _size(n: int) -> str:
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    if n >= MiB:
        return f"{n / MiB:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:g} KiB"
    return f"{n} bytes"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def address_problem(
    address: str | IPAddress,
    *,
    allow_loopback: bool = False,
    allow_private: bool = False,
) -> str | None:
    """Why ``address`` must not be reached (a phrase such as ``"a private address"``), or ``None``."""
    ip = (
        address if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address) else ipaddress.ip_address(address)
    )
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner, allow_loopback=allow_loopback, allow_private=allow_private)
            return f"an IPv6 form of {inner}, {problem}" if problem else None
        if ip in _IPV4_COMPATIBLE and int(ip) > 1:
            return "a deprecated IPv4-compatible IPv6 address"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata service address"
    if ip.is_unspecified:
        return "the unspecified address (it reaches this machine)"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address (this machine)"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services such as 169.254.169.254 live)"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE:
        return None if allow_private else "a shared (carrier-grade NAT) address"
    if any(ip in net for net in _PRIVATE_NETWORKS):
        return None if allow_private else "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address that is not publicly routable"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver (``getaddrinfo``); addresses in the order given."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: dict[str, None] = {}
    for *_, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


def connect_socket(ip: str, port: int, timeout: float | None) -> socket.socket:
    """Open a TCP connection to an IP literal, without any name lookup."""
    version = ipaddress.ip_address(ip).version
    sock = socket.socket(socket.AF_INET6 if version == 6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port, 0, 0) if version == 6 else (ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class PinnedTarget:
    """One checked hop: the URL, the host and port httpcore will ask for, and the addresses to dial."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[str, ...]


def _display(url: httpx.URL | str) -> str:
    """The URL for messages: no user info, and the query hidden (it often carries tokens)."""
    if isinstance(url, str):
        try:
            url = httpx.URL(url)
        except httpx.InvalidURL:
            return url[:200]
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    path = url.raw_path.split(b"?", 1)[0].decode("ascii", "replace") or "/"
    query = "?…" if url.query else ""
    scheme = f"{url.scheme}://" if url.scheme else ""
    if url.scheme not in ALLOWED_SCHEMES:
        prefix = f"{url.scheme}:" if url.scheme else ""
        if host or path.startswith("/"):
            prefix += f"//{host}{port}"
        return f"{prefix}{path}{query}"[:200]
    return f"{scheme}{host}{port}{path}{query}"


def _parse_url(url: str | httpx.URL) -> httpx.URL:
    if isinstance(url, httpx.URL):
        return url
    if not isinstance(url, str):
        raise TypeError(f"url must be a str or httpx.URL, not {type(url).__name__}")
    try:
        return httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise BadURL(f"{url[:200]!r} is not a valid URL ({exc})", url=url[:200]) from None


def check_url(
    url: str | httpx.URL,
    policy: OutboundPolicy,
    resolver: Resolver = system_resolver,
    *,
    redirected_from: str | None = None,
) -> PinnedTarget:
    """Apply the URL and address rules to one hop; resolve its host once; return what to dial.

    Raises :class:`BadScheme`, :class:`BadURL`, :class:`BlockedAddress` or
    :class:`OutboundConnectError` (the host does not resolve). Nothing connects anywhere.
    """
    parsed = _parse_url(url)
    shown = _display(parsed)
    subject = f"{redirected_from} redirected to {shown}, which" if redirected_from else shown
    scheme = parsed.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BadScheme(shown, scheme, subject=subject)
    if parsed.userinfo:
        raise BadURL(
            f"{subject} contains a user name or password; put credentials in a header, not in the URL",
            url=shown,
        )
    if not parsed.raw_host:
        raise BadURL(f"{subject} has no host name", url=shown)
    port = parsed.port or DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise BadURL(f"{subject} has an invalid port {port}", url=shown)
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.allowed_ports))
        raise BadURL(
            f"{subject} uses port {port}; Workspace only connects to port {allowed}",
            url=shown,
        )

    host = parsed.raw_host.decode("ascii").lower()
    literal = unquote(host)  # an IPv6 zone arrives as "%25eth0"
    if _is_ip(literal):
        addresses: list[str] = [literal]
        name = None
    else:
        name = _normalize_host(host)
        if name in METADATA_HOSTNAMES:
            raise BlockedAddress(shown, name, "a cloud metadata service", subject=subject)
        try:
            addresses = [str(a) for a in resolver(host, port)]
        except (OSError, UnicodeError) as exc:
            raise OutboundConnectError(
                f"{subject} could not be resolved ({exc}); check the host name",
                url=shown,
            ) from None
        if not addresses:
            raise OutboundConnectError(
                f"{subject} could not be resolved (no addresses); check the host name",
                url=shown,
            )

    trusted = name is not None and name in policy.allowed_hosts
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise OutboundConnectError(
                f"{subject} resolved to {address!r}, which is not an IP address",
                url=shown,
            ) from None
        problem = address_problem(
            ip,
            allow_loopback=policy.allow_loopback or trusted,
            allow_private=policy.allow_private or trusted,
        )
        if problem:
            raise BlockedAddress(shown, address, problem, subject=subject)
    return PinnedTarget(url=parsed, host=host, port=port, addresses=tuple(addresses))


# --------------------------------------------------------------------------------------------------
# The pinned network layer (httpcore backend + httpx transport)
# --------------------------------------------------------------------------------------------------


def _bounded(timeout: float | None, deadline: float, exc_type: type[Exception]) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise exc_type("the total time limit was reached")
    return remaining if timeout is None else min(timeout, remaining)


class _SocketStream(httpcore.NetworkStream):
    """A blocking socket stream whose every operation also respects the call's total deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout = _bounded(timeout, self._deadline, httpcore.ReadTimeout)
        try:
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        while buffer:
            bounded = _bounded(timeout, self._deadline, httpcore.WriteTimeout)
            try:
                self._sock.settimeout(bounded)
                sent = self._sock.send(buffer)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from exc
            buffer = buffer[sent:]

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # server_hostname is the ORIGINAL host of the URL (httpcore passes its origin host): SNI and
        # certificate verification are for that name, although the socket went to the pinned IP.
        timeout = _bounded(timeout, self._deadline, httpcore.ConnectTimeout)
        try:
            self._sock.settimeout(timeout)
            tls = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._sock.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except OSError as exc:  # ssl.SSLError, including certificate failures, is an OSError
            self._sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return _SocketStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            try:
                return bool(select.select([self._sock], [], [], 0)[0])
            except (OSError, ValueError):
                return True
        return None


class _PinnedBackend(httpcore.NetworkBackend):
    """Dials only addresses that ``check_url`` produced for this call; never resolves a name."""

    def __init__(
        self,
        pins: Mapping[tuple[str, int], tuple[str, ...]],
        connect: Connector,
        deadline: float,
    ) -> None:
        self._pins = pins
        self._connect = connect
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._pins.get((host.lower(), port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not checked; refusing to connect")
        last: OSError | None = None
        for ip in addresses:
            bounded = _bounded(timeout, self._deadline, httpcore.ConnectTimeout)
            try:
                sock = self._connect(ip, port, bounded)
            except OSError as exc:
                last = exc
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for option in socket_options or ():
                    sock.setsockopt(*option)
            except OSError:
                pass
            return _SocketStream(sock, self._deadline)
        if isinstance(last, TimeoutError):
            raise httpcore.ConnectTimeout(str(last) or "connect timed out") from last
        raise httpcore.ConnectError(str(last)) from last

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:  # retries are disabled; kept for the interface
        time.sleep(seconds)


_HTTPCORE_TO_HTTPX: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpcore_errors_as_httpx() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _HTTPCORE_TO_HTTPX:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpcore_errors_as_httpx():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _httpcore_errors_as_httpx():
                close()


class _PinnedTransport(httpx.BaseTransport):
    """httpx transport over an httpcore pool that uses :class:`_PinnedBackend` (HTTP/1.1, no retries)."""

    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=4,
            max_keepalive_connections=4,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
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
            # only the timeouts: never "sni_hostname" or anything else that changes where TLS goes
            extensions={"timeout": request.extensions.get("timeout", {})},
        )
        with _httpcore_errors_as_httpx():
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        with _httpcore_errors_as_httpx():
            self._pool.close()


# --------------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------------

_CHARSET = re.compile(r"charset\s*=\s*\"?([\w.:-]+)", re.IGNORECASE)


def _charset(headers: httpx.Headers) -> str:
    match = _CHARSET.search(headers.get("content-type", ""))
    if match:
        try:
            return codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return "utf-8"


@dataclass(frozen=True)
class OutboundResponse:
    """A complete (size-capped) answer. ``history`` lists the URLs that redirected, in order."""

    url: str
    status_code: int
    headers: httpx.Headers
    content: bytes
    history: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers), errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def raise_for_status(self) -> OutboundResponse:
        if self.status_code >= 400:
            raise BadStatus(_display(self.url), self.status_code)
        return self


class OutboundStream:
    """The answer of :meth:`GuardedClient.stream`; iterate it (or ``iter_bytes()``) for body chunks.

    The size cap and the total deadline apply while iterating; :class:`TooLarge` is raised as soon
    as the cap is passed and the connection is dropped.
    """

    def __init__(
        self,
        client: GuardedClient,
        response: httpx.Response,
        url: str,
        history: tuple[str, ...],
        deadline: float,
    ) -> None:
        self._client = client
        self._response = response
        self._deadline = deadline
        self.url = url
        self.history = history
        self.status_code = response.status_code
        self.headers = response.headers
        self.received = 0

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def raise_for_status(self) -> OutboundStream:
        if self.status_code >= 400:
            raise BadStatus(_display(self.url), self.status_code)
        return self

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        limit = self._client.policy.max_bytes
        shown = _display(self.url)
        with self._client._translate(shown, self._deadline):
            for chunk in self._response.iter_bytes(chunk_size):
                self.received += len(chunk)
                if self.received > limit or self._response.num_bytes_downloaded > limit:
                    self._response.close()
                    raise TooLarge(shown, limit)
                yield chunk

    __iter__ = iter_bytes

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())


# --------------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------------

_UNSET: Any = object()


class GuardedClient:
    """The one door for outbound HTTP. Thread-safe; holds no connection between calls.

    ``resolver`` and ``connect`` are seams for tests (a fake DNS, a socket spy); production code
    passes neither. ``headers`` are sent on every request (before per-call headers).
    """

    def __init__(
        self,
        policy: OutboundPolicy | None = None,
        *,
        resolver: Resolver | None = None,
        connect: Connector | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.policy = policy or OutboundPolicy()
        self._resolver = resolver or system_resolver
        self._connect = connect or connect_socket
        self._ssl_context = self.policy.ssl_context or httpx.create_ssl_context()
        self._headers = httpx.Headers(
            {
                "User-Agent": self.policy.user_agent,
                "Accept-Encoding": "identity",
                "Accept": "*/*",
            }
        )
        self._headers.update(_without_host(headers))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (each call has its own connections); kept for ``with`` blocks."""

    # -- public API -------------------------------------------------------------------------------

    def get(
        self,
        url: str | httpx.URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> OutboundResponse:
        return self.request("GET", url, params=params, headers=headers)

    def post(
        self,
        url: str | httpx.URL,
        *,
        json: Any = _UNSET,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> OutboundResponse:
        return self.request(
            "POST",
            url,
            json=json,
            content=content,
            data=data,
            params=params,
            headers=headers,
        )

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        json: Any = _UNSET,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> OutboundResponse:
        with self.stream(
            method,
            url,
            json=json,
            content=content,
            data=data,
            params=params,
            headers=headers,
        ) as answer:
            body = answer.read()
        return OutboundResponse(
            url=answer.url,
            status_code=answer.status_code,
            headers=answer.headers,
            content=body,
            history=answer.history,
        )

    @contextmanager
    def stream(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        json: Any = _UNSET,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[OutboundStream]:
        """Send the request (following redirects by hand) and yield the final answer to stream."""
        if content is not None and not isinstance(content, bytes | str):
            raise TypeError("content must be bytes or str (it may have to be sent again after a redirect)")
        policy = self.policy
        deadline = time.monotonic() + policy.timeout
        pins: dict[tuple[str, int], tuple[str, ...]] = {}
        transport = _PinnedTransport(_PinnedBackend(pins, self._connect, deadline), self._ssl_context)
        client = httpx.Client(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            headers=self._headers,
            timeout=httpx.Timeout(
                connect=policy.connect_timeout,
                read=policy.read_timeout,
                write=policy.read_timeout,
                pool=policy.connect_timeout,
            ),
        )
        try:
            response, final, history = self._send(
                client,
                pins,
                deadline,
                method.upper(),
                url,
                json,
                content,
                data,
                params,
                headers,
            )
            try:
                shown = _display(final)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > policy.max_bytes:
                    raise TooLarge(shown, policy.max_bytes, declared=int(declared))
                yield OutboundStream(self, response, str(final), history, deadline)
            finally:
                response.close()
        finally:
            client.close()

    # -- internals --------------------------------------------------------------------------------

    def _send(
        self,
        client: httpx.Client,
        pins: dict[tuple[str, int], tuple[str, ...]],
        deadline: float,
        method: str,
        url: str | httpx.URL,
        json: Any,
        content: bytes | str | None,
        data: Mapping[str, Any] | None,
        params: Any,
        headers: Mapping[str, str] | None,
    ) -> tuple[httpx.Response, httpx.URL, tuple[str, ...]]:
        policy = self.policy
        current = _parse_url(url)
        if params is not None:
            current = current.copy_merge_params(params)
        first = _display(current)
        hop_headers = httpx.Headers(_without_host(headers))
        body: dict[str, Any] = {"content": content, "data": data}
        if json is not _UNSET:
            body["json"] = json
        history: list[str] = []
        for hop in range(policy.max_redirects + 1):
            target = check_url(current, policy, self._resolver, redirected_from=first if hop else None)
            if time.monotonic() >= deadline:
                raise OutboundTimeout(_display(current), "total", policy.timeout)
            pins[(target.host, target.port)] = target.addresses
            shown = _display(current)
            with self._translate(shown, deadline):
                request = client.build_request(method, current, headers=hop_headers, **body)
                response = client.send(request, stream=True)
            if not response.is_redirect:
                return response, current, tuple(history)
            location = response.headers["location"]
            response.close()
            try:
                following = current.join(location)
            except httpx.InvalidURL as exc:
                raise BadURL(
                    f"{shown} redirected to an invalid URL {location[:200]!r} ({exc})",
                    url=shown,
                ) from None
            history.append(str(current))
            method = _redirect_method(method, response.status_code)
            if method == "GET" and response.status_code not in (307, 308):
                body = {}
                for name in _BODY_HEADERS:
                    hop_headers.pop(name, None)
            if _origin(following) != _origin(current):
                for name in _CREDENTIAL_HEADERS:
                    hop_headers.pop(name, None)
            current = following
        raise TooManyRedirects(first, policy.max_redirects, _display(current))

    @contextmanager
    def _translate(self, shown: str, deadline: float) -> Iterator[None]:
        """Turn httpx's errors into this module's, with messages about ``shown``."""
        try:
            yield
        except httpx.TimeoutException as exc:
            policy = self.policy
            if time.monotonic() >= deadline - 0.01:
                raise OutboundTimeout(shown, "total", policy.timeout) from exc
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise OutboundTimeout(shown, "connect", policy.connect_timeout) from exc
            if isinstance(exc, httpx.WriteTimeout):
                raise OutboundTimeout(shown, "write", policy.read_timeout) from exc
            raise OutboundTimeout(shown, "read", policy.read_timeout) from exc
        except httpx.ConnectError as exc:
            detail = str(exc) or type(exc).__name__
            if "CERTIFICATE" in detail.upper() or "SSL" in detail.upper():
                message = (
                    f"{shown} failed the TLS check ({detail}); the server's certificate must be valid for its host name"
                )
            else:
                message = f"{shown} could not be reached ({detail})"
            raise OutboundConnectError(message, url=shown) from exc
        except httpx.DecodingError as exc:
            raise OutboundError(f"{shown} sent a body that could not be decoded ({exc})", url=shown) from exc
        except httpx.TransportError as exc:
            raise OutboundConnectError(
                f"{shown}: the connection failed ({str(exc) or type(exc).__name__})",
                url=shown,
            ) from exc
        except httpx.InvalidURL as exc:
            raise BadURL(f"{shown} is not a valid URL ({exc})", url=shown) from exc
        except httpx.HTTPError as exc:
            raise OutboundError(f"{shown}: {exc}", url=shown) from exc


def _without_host(headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
    if not headers:
        return []
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else list(headers.items())
    return [(k, v) for k, v in items if k.lower() != "host"]


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme, 0)


def _redirect_method(method: str, status: int) -> str:
    """The method after a redirect, as browsers and httpx do it."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method
