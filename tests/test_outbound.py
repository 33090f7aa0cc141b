"""The guarded outbound HTTP client (ARCHITECTURE.md rule 5): real HTTP against a server on 127.0.0.1.

Nothing here may send a packet or a DNS query anywhere but loopback. Two autouse guards make that
a test failure rather than a promise: ``socket.socket.connect`` refuses non-loopback addresses, and
``socket.getaddrinfo`` only answers numeric hosts and ``localhost`` (served by /etc/hosts). "Public"
hosts come from a fake resolver (``FakeDNS``), and a dialling spy (``Dialer``) records the pinned IP
the client asked for and connects to the local test server instead, so the exchange is real HTTP
while the address under test is, say, 93.184.216.34.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from workspace.lib import outbound
from workspace.lib.outbound import (
    BadScheme,
    BadStatus,
    BadURL,
    BlockedAddress,
    GuardedClient,
    OutboundConnectError,
    OutboundPolicy,
    OutboundTimeout,
    TooLarge,
    TooManyRedirects,
    address_problem,
    check_url,
)

PUBLIC_IP = "93.184.216.34"
LOOPBACK = OutboundPolicy(allow_loopback=True)

# --------------------------------------------------------------------------------------------------
# Guards: only loopback, no real DNS
# --------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def _assert_loopback(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        assert ipaddress.ip_address(host.split("%")[0]).is_loopback, f"test tried to connect to {address!r}"

    def connect(self, address):
        _assert_loopback(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _assert_loopback(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host in (None, "localhost", b"localhost"):
            return real_getaddrinfo(host, port, family, type, proto, flags)
        try:
            return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            raise AssertionError(f"test tried a real DNS lookup for {host!r}") from None

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --------------------------------------------------------------------------------------------------
# Test doubles for DNS and dialling (the HTTP exchange itself is real)
# --------------------------------------------------------------------------------------------------


class FakeDNS:
    """``resolver(host, port)``: a table of answers; a list of lists answers call by call (rebinding)."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answer = self.table.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if answer and isinstance(answer[0], list):
            return answer[min(self.calls.count(host), len(answer)) - 1]
        return answer


class Dialer:
    """``connect(ip, port, timeout)``: records the pinned address, connects to the local server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.calls: list[tuple[str, int]] = []

    def __call__(self, ip: str, port: int, timeout: float | None) -> socket.socket:
        self.calls.append((ip, port))
        return outbound.connect_socket("127.0.0.1", self.port, timeout)


class NoDialing:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, ip: str, port: int, timeout: float | None) -> socket.socket:
        self.calls.append((ip, port))
        raise AssertionError(f"the client tried to connect to {ip}:{port}")


# --------------------------------------------------------------------------------------------------
# The test server
# --------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.server.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        try:
            self._route(url.path, query, body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _route(self, path: str, query: dict[str, str], body: bytes) -> None:
        if path == "/hello":
            self._send(200, b"hello world")
        elif path == "/json":
            self._send(200, b'{"ok": true, "n": 3}', {"Content-Type": "application/json"})
        elif path == "/echo":
            echo = {
                "method": self.command,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode(),
            }
            self._send(200, json.dumps(echo).encode(), {"Content-Type": "application/json"})
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"status")
        elif path == "/redirect":
            self._send(int(query.get("code", "302")), b"", {"Location": query["to"]})
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            if n == 0:
                self._send(200, b"end of chain")
            else:
                self._send(302, b"moved", {"Location": f"/chain/{n - 1}"})
        elif path == "/hop":
            hosts = [h for h in query.get("next", "").split(",") if h]
            if not hosts:
                self._send(200, b"arrived")
            else:
                port = self.server.server_address[1]
                self._send(
                    302,
                    b"",
                    {"Location": f"http://{hosts[0]}:{port}/hop?next={','.join(hosts[1:])}"},
                )
        elif path == "/endless":
            # no Content-Length: the body runs until the connection closes, and never ends by itself
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"x" * 65536
            for _ in range(16384):  # 1 GiB: far more than any cap; the client must hang up first
                self.wfile.write(chunk)
                self.server.sent += len(chunk)
        elif path == "/big":
            # announces 10 MiB; the client must refuse on the header without reading the body
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024 * 1024))
            self.end_headers()
            for _ in range(160):
                self.wfile.write(b"y" * 65536)
                self.server.sent += 65536
        elif path == "/gzipbomb":
            bomb = gzip.compress(b"\0" * (16 * 1024 * 1024))
            self._send(
                200,
                bomb,
                {
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/octet-stream",
                },
            )
        elif path == "/sleep":
            time.sleep(float(query.get("s", "2")))
            self._send(200, b"late")
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self._send(404, b"not found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []
        self.sent = 0
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _raises(exc_type: type[Exception], call: Callable[[], Any]) -> Any:
    with pytest.raises(exc_type) as info:
        call()
    return info.value


# --------------------------------------------------------------------------------------------------
# Happy path: real HTTP on loopback
# --------------------------------------------------------------------------------------------------


def test_get_returns_body_status_and_headers(server):
    response = GuardedClient(LOOPBACK).get(server.url("/hello"))
    assert response.status_code == 200
    assert response.content == b"hello world"
    assert response.text == "hello world"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.url == server.url("/hello")
    assert response.history == ()
    assert response.is_success


def test_json_and_raise_for_status(server):
    client = GuardedClient(LOOPBACK)
    assert client.get(server.url("/json")).json() == {"ok": True, "n": 3}
    response = client.get(server.url("/status/404"))
    assert response.status_code == 404
    error = _raises(BadStatus, response.raise_for_status)
    assert error.status_code == 404 and "404" in str(error)


def test_post_json_content_and_headers(server):
    client = GuardedClient(LOOPBACK)
    echo = client.post(server.url("/echo"), json={"a": 1}, headers={"X-Signature": "abc"}).json()
    assert echo["method"] == "POST"
    assert json.loads(echo["body"]) == {"a": 1}
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["x-signature"] == "abc"
    assert echo["headers"]["host"] == f"127.0.0.1:{server.port}"
    assert echo["headers"]["user-agent"] == OutboundPolicy().user_agent
    assert echo["headers"]["accept-encoding"] == "identity"

    echo = client.post(server.url("/echo"), content=b"raw bytes", headers={"Content-Type": "text/csv"}).json()
    assert echo["body"] == "raw bytes" and echo["headers"]["content-type"] == "text/csv"


def test_caller_cannot_override_the_host_header(server):
    echo = GuardedClient(LOOPBACK).get(server.url("/echo"), headers={"Host": "internal.example"}).json()
    assert echo["headers"]["host"] == f"127.0.0.1:{server.port}"


def test_stream_yields_chunks(server):
    client = GuardedClient(LOOPBACK)
    with client.stream("GET", server.url("/json")) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        chunks = list(answer)
    assert all(isinstance(c, bytes) for c in chunks)
    assert json.loads(b"".join(chunks)) == {"ok": True, "n": 3}


# --------------------------------------------------------------------------------------------------
# Size cap
# --------------------------------------------------------------------------------------------------


def test_size_cap_aborts_an_endless_body_while_streaming(server):
    limit = 64 * 1024
    client = GuardedClient(OutboundPolicy(allow_loopback=True, max_bytes=limit))
    started = time.monotonic()
    error = _raises(TooLarge, lambda: client.get(server.url("/endless")))
    assert time.monotonic() - started < 5
    assert error.limit == limit
    assert "more than 64 KiB" in str(error) and "at most 64 KiB" in str(error)

    received = []
    with (
        pytest.raises(TooLarge),
        client.stream("GET", server.url("/endless")) as answer,
    ):
        for chunk in answer:
            received.append(len(chunk))
    # nothing beyond the cap was handed to the caller, and the client hung up long before 1 GiB
    assert sum(received) <= limit
    time.sleep(0.2)
    assert server.sent < 256 * 1024 * 1024


def test_size_cap_refuses_on_content_length_before_reading(server):
    client = GuardedClient(OutboundPolicy(allow_loopback=True, max_bytes=1024 * 1024))
    error = _raises(TooLarge, lambda: client.stream("GET", server.url("/big")).__enter__())
    assert error.declared == 10 * 1024 * 1024
    assert "announced 10 MiB" in str(error)


def test_size_cap_counts_decoded_bytes(server):
    """A server ignoring ``Accept-Encoding: identity`` cannot slip a gzip bomb under the cap."""
    client = GuardedClient(OutboundPolicy(allow_loopback=True, max_bytes=1024 * 1024))
    _raises(TooLarge, lambda: client.get(server.url("/gzipbomb")))


# --------------------------------------------------------------------------------------------------
# Redirects
# --------------------------------------------------------------------------------------------------


def test_redirect_chain_is_followed_and_every_hop_resolved_and_checked(server):
    dns = FakeDNS({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    client = GuardedClient(LOOPBACK, resolver=dns)
    response = client.get(f"http://a.test:{server.port}/hop?next=b.test,a.test")
    assert response.text == "arrived"
    assert dns.calls == ["a.test", "b.test", "a.test"]  # once per hop, never twice
    assert len(response.history) == 2
    assert response.url == f"http://a.test:{server.port}/hop?next="
    assert [s["headers"]["host"] for s in server.seen] == [f"{h}:{server.port}" for h in ("a.test", "b.test", "a.test")]


def test_relative_redirects(server):
    response = GuardedClient(LOOPBACK).get(server.url("/chain/3"))
    assert response.text == "end of chain"
    assert response.history == tuple(server.url(f"/chain/{n}") for n in (3, 2, 1))


def test_redirect_limit(server):
    client = GuardedClient(OutboundPolicy(allow_loopback=True, max_redirects=3))
    error = _raises(TooManyRedirects, lambda: client.get(server.url("/chain/10")))
    assert error.limit == 3
    assert len(server.seen) == 4
    assert "more than 3 times" in str(error)

    server.seen.clear()
    client = GuardedClient(OutboundPolicy(allow_loopback=True, max_redirects=0))
    _raises(TooManyRedirects, lambda: client.get(server.url("/chain/1")))
    assert len(server.seen) == 1
    assert (
        GuardedClient(OutboundPolicy(allow_loopback=True, max_redirects=3)).get(server.url("/chain/3")).text
        == "end of chain"
    )


@pytest.mark.parametrize(
    ("target", "error", "address"),
    [
        ("http://169.254.169.254/latest/meta-data/", BlockedAddress, "169.254.169.254"),
        ("http://127.0.0.1:{port}/hello", BlockedAddress, "127.0.0.1"),
        ("http://localhost:{port}/hello", BlockedAddress, "127.0.0.1"),
        ("http://[::1]/", BlockedAddress, "::1"),
        ("http://10.0.0.5/data.json", BlockedAddress, "10.0.0.5"),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            BlockedAddress,
            "metadata.google.internal",
        ),
        ("http://inside.example/", BlockedAddress, "192.168.1.10"),
        ("file:///etc/passwd", BadScheme, None),
        ("gopher://public.example/", BadScheme, None),
        ("http://user:secret@public.example/", BadURL, None),
    ],
)
def test_public_url_redirecting_to_a_blocked_target_is_refused_before_connecting(server, target, error, address):
    """Default policy: public.example (93.184.216.34) answers a redirect; the next hop never connects."""
    dns = FakeDNS(
        {
            "public.example": [PUBLIC_IP],
            "localhost": ["127.0.0.1"],
            "inside.example": ["192.168.1.10"],
        }
    )
    dialer = Dialer(server.port)
    client = GuardedClient(resolver=dns, connect=dialer)
    target = target.format(port=server.port)
    url = f"http://public.example/redirect?to={target}"
    refused = _raises(error, lambda: client.get(url))
    assert dialer.calls == [(PUBLIC_IP, 80)]  # only the first hop ever connected
    assert len(server.seen) == 1
    assert "http://public.example/redirect?… redirected to" in str(refused)
    if address is not None:
        assert refused.address == address
    assert "secret" not in str(refused)


def test_redirect_to_private_refused_even_when_the_first_hop_was_loopback(server):
    dns = FakeDNS({"a.test": ["127.0.0.1"], "evil.test": ["10.0.0.5"]})
    client = GuardedClient(LOOPBACK, resolver=dns)
    refused = _raises(
        BlockedAddress,
        lambda: client.get(f"http://a.test:{server.port}/redirect?to=http://evil.test/x"),
    )
    assert refused.address == "10.0.0.5"
    assert "a private address" in str(refused)

    # the metadata service stays closed whatever the policy opens
    everything = OutboundPolicy(allow_loopback=True, allow_private=True)
    for target in (
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
    ):
        dialer = Dialer(server.port)
        client = GuardedClient(everything, resolver=dns, connect=dialer)
        url = f"http://a.test:{server.port}/redirect?to={target}"
        _raises(BlockedAddress, lambda client=client, url=url: client.get(url))
        assert dialer.calls == [("127.0.0.1", server.port)]


def test_post_redirects_follow_browser_rules(server):
    client = GuardedClient(LOOPBACK)
    echo_url = server.url("/echo")
    for code, method, body in (
        (307, "POST", '{"a":1}'),
        (308, "POST", '{"a":1}'),
        (303, "GET", ""),
        (302, "GET", ""),
        (301, "GET", ""),
    ):
        echo = client.post(server.url(f"/redirect?code={code}&to={echo_url}"), json={"a": 1}).json()
        assert (echo["method"], echo["body"]) == (method, body), code
        if method == "GET":
            assert "content-type" not in echo["headers"]


def test_cross_origin_redirect_drops_credentials(server):
    dns = FakeDNS({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    client = GuardedClient(LOOPBACK, resolver=dns)
    headers = {"Authorization": "Bearer s3cret", "Cookie": "session=1", "X-Trace": "t"}
    same = client.get(f"http://a.test:{server.port}/redirect?to=/echo", headers=headers).json()
    assert same["headers"]["authorization"] == "Bearer s3cret"
    other = client.get(
        f"http://a.test:{server.port}/redirect?to=http://b.test:{server.port}/echo",
        headers=headers,
    ).json()
    assert "authorization" not in other["headers"] and "cookie" not in other["headers"]
    assert other["headers"]["x-trace"] == "t"


# --------------------------------------------------------------------------------------------------
# The default policy, the URL rules, the address rules
# --------------------------------------------------------------------------------------------------


BLOCKED_BY_DEFAULT = [
    ("http://127.0.0.1:{port}/hello", "127.0.0.1", "loopback"),
    ("http://localhost:{port}/hello", "127.0.0.1", "loopback"),
    ("http://[::1]:{port}/hello", "::1", "loopback"),
    ("http://10.0.0.5/data.json", "10.0.0.5", "private"),
    ("http://172.16.0.1/", "172.16.0.1", "private"),
    ("http://172.31.255.254/", "172.31.255.254", "private"),
    ("http://192.168.1.1/", "192.168.1.1", "private"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "metadata"),
    ("http://169.254.1.1/", "169.254.1.1", "link-local"),
    ("http://0.0.0.0:{port}/hello", "0.0.0.0", "unspecified"),
    ("http://0:{port}/hello", "0.0.0.0", "unspecified"),
    ("http://100.64.0.1/", "100.64.0.1", "shared"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "loopback"),
    ("http://[::ffff:a00:1]/", "::ffff:a00:1", "private"),
    ("http://[fd00::1]/", "fd00::1", "private"),
    ("http://[fe80::1]/", "fe80::1", "link-local"),
    ("http://[::]/", "::", "unspecified"),
    ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1", "loopback"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1::", "loopback"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254", "metadata"),
    ("http://2130706433:{port}/hello", "127.0.0.1", "loopback"),
    ("http://0x7f.1:{port}/hello", "127.0.0.1", "loopback"),
    ("http://017700000001:{port}/hello", "127.0.0.1", "loopback"),
    ("http://127.1:{port}/hello", "127.0.0.1", "loopback"),
    ("http://224.0.0.1/", "224.0.0.1", "multicast"),
    ("http://255.255.255.255/", "255.255.255.255", "reserved"),
    ("http://240.0.0.1/", "240.0.0.1", "reserved"),
    ("http://192.0.2.1/", "192.0.2.1", "reserved"),
    (
        "http://metadata.google.internal/computeMetadata/v1/",
        "metadata.google.internal",
        "metadata",
    ),
    ("http://METADATA.google.internal./", "metadata.google.internal", "metadata"),
    (
        "http://169.254.169.254.nip.io/",
        "169.254.169.254",
        "metadata",
    ),  # via the fake DNS below
]


@pytest.mark.parametrize(("url", "address", "kind"), BLOCKED_BY_DEFAULT)
def test_default_policy_blocks(server, url, address, kind):
    """Numeric spellings go through the real getaddrinfo (it parses them; no DNS query is sent)."""

    def resolver(host: str, port: int) -> list[str]:
        if host.endswith(".nip.io"):
            return [host.removesuffix(".nip.io")]
        return outbound.system_resolver(host, port)

    dialer = NoDialing()
    client = GuardedClient(resolver=resolver, connect=dialer)
    url = url.format(port=server.port)
    refused = _raises(BlockedAddress, lambda: client.get(url))
    assert refused.address == address
    assert kind in refused.reason
    assert "Workspace only fetches public addresses" in str(refused)
    assert dialer.calls == [] and server.seen == []


def test_blocked_message_tells_the_user_what_happened():
    refused = _raises(
        BlockedAddress,
        lambda: GuardedClient(connect=NoDialing()).get("http://10.0.0.5/data.json"),
    )
    assert str(refused) == (
        "http://10.0.0.5/data.json resolves to 10.0.0.5, a private address; Workspace only fetches public addresses"
    )
    # query strings (often tokens) stay out of messages
    refused = _raises(
        BlockedAddress,
        lambda: GuardedClient(connect=NoDialing()).get("http://10.0.0.5/x?sig=SECRET"),
    )
    assert "SECRET" not in str(refused)


def test_loopback_policy_still_blocks_private_and_metadata(server):
    client = GuardedClient(LOOPBACK, connect=NoDialing())
    for url in (
        "http://10.0.0.5/",
        "http://169.254.169.254/",
        "http://0.0.0.0/",
        "http://[fd00::1]/",
    ):
        _raises(BlockedAddress, lambda url=url: client.get(url))


def test_every_resolved_address_must_be_public():
    dns = FakeDNS(
        {
            "mixed.example": [PUBLIC_IP, "10.0.0.1"],
            "v6.example": ["2606:2800:220:1:248:1893:25c8:1946", "::1"],
        }
    )
    dialer = NoDialing()
    client = GuardedClient(resolver=dns, connect=dialer)
    assert _raises(BlockedAddress, lambda: client.get("http://mixed.example/")).address == "10.0.0.1"
    assert _raises(BlockedAddress, lambda: client.get("https://v6.example/")).address == "::1"
    assert dialer.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://public.example/file.csv",
        "gopher://public.example:70/_",
        "javascript:alert(1)",
        "ws://public.example/",
        "//public.example/data.json",
        "data:text/plain,hello",
    ],
)
def test_bad_schemes_are_refused(url):
    dns = FakeDNS({"public.example": [PUBLIC_IP]})
    client = GuardedClient(resolver=dns, connect=NoDialing())
    refused = _raises(BadScheme, lambda: client.get(url))
    assert "only fetches http:// and https://" in str(refused)
    assert dns.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@public.example/",
        "http://user@public.example/",
        "https://:pass@public.example/",
    ],
)
def test_userinfo_is_refused(url):
    dns = FakeDNS({"public.example": [PUBLIC_IP]})
    refused = _raises(BadURL, lambda: GuardedClient(resolver=dns, connect=NoDialing()).get(url))
    assert "user name or password" in str(refused)
    assert "pass" not in str(refused).replace("password", "")
    assert dns.calls == []


def test_malformed_urls_are_refused():
    client = GuardedClient(connect=NoDialing())
    for url in ("http://[::1/", "http://public.example:99999/", "http:///path-only"):
        _raises(BadURL, lambda url=url: client.get(url))


def test_port_allowlist(server):
    refused = _raises(
        BadURL,
        lambda: GuardedClient(OutboundPolicy(allow_loopback=True, allowed_ports={80, 443})).get(server.url("/hello")),
    )
    assert f"port {server.port}" in str(refused) and "80, 443" in str(refused)
    assert (
        GuardedClient(OutboundPolicy(allow_loopback=True, allowed_ports={server.port})).get(server.url("/hello")).text
        == "hello world"
    )


def test_allowed_hosts_opens_loopback_and_private_for_those_names_only(server):
    dns = FakeDNS(
        {
            "ml-backend": ["127.0.0.1"],
            "other": ["127.0.0.1"],
            "meta": ["169.254.169.254"],
        }
    )
    client = GuardedClient(OutboundPolicy(allowed_hosts={"ML-Backend", "meta"}), resolver=dns)
    assert client.get(f"http://ml-backend:{server.port}/hello").text == "hello world"
    _raises(BlockedAddress, lambda: client.get(f"http://other:{server.port}/hello"))
    _raises(BlockedAddress, lambda: client.get("http://meta/"))


def test_unresolvable_host_and_refused_connection(server):
    client = GuardedClient(resolver=FakeDNS({}), connect=NoDialing())
    refused = _raises(OutboundConnectError, lambda: client.get("http://nowhere.example/"))
    assert "could not be resolved" in str(refused)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = _raises(
        OutboundConnectError,
        lambda: GuardedClient(LOOPBACK).get(f"http://127.0.0.1:{closed_port}/"),
    )
    assert "could not be reached" in str(refused)


@pytest.mark.parametrize(
    "address",
    [
        PUBLIC_IP,
        "8.8.8.8",
        "1.1.1.1",
        "2606:2800:220:1:248:1893:25c8:1946",
        "2001:4860:4860::8888",
        "64:ff9b::5db8:d822",
    ],
)
def test_public_addresses_pass(address):
    assert address_problem(address) is None


def test_allow_flags_open_only_their_ranges():
    assert address_problem("127.0.0.1", allow_loopback=True) is None
    assert address_problem("::1", allow_loopback=True) is None
    assert address_problem("10.1.2.3", allow_loopback=True) == "a private address"
    assert address_problem("10.1.2.3", allow_private=True) is None
    assert address_problem("100.64.0.1", allow_private=True) is None
    assert address_problem("fd12::1", allow_private=True) is None
    for never in (
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "100.100.100.200",
    ):
        assert address_problem(never, allow_loopback=True, allow_private=True), never


def test_check_url_resolves_once_and_returns_the_pin():
    dns = FakeDNS({"public.example": [PUBLIC_IP]})
    target = check_url("https://Public.Example/a?b=1", OutboundPolicy(), dns)
    assert (target.host, target.port, target.addresses) == (
        "public.example",
        443,
        (PUBLIC_IP,),
    )
    assert dns.calls == ["public.example"]


def test_policy_validation():
    with pytest.raises(ValueError):
        OutboundPolicy(max_bytes=0)
    with pytest.raises(ValueError):
        OutboundPolicy(max_redirects=-1)
    with pytest.raises(ValueError):
        OutboundPolicy(allowed_ports={0})
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError):
        OutboundPolicy(ssl_context=lax)


# --------------------------------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------------------------------


def test_read_timeout(server):
    client = GuardedClient(OutboundPolicy(allow_loopback=True, read_timeout=0.3))
    started = time.monotonic()
    error = _raises(OutboundTimeout, lambda: client.get(server.url("/sleep?s=2")))
    assert time.monotonic() - started < 1.5
    assert error.phase == "read"
    assert "stopped sending data for 0.3 s" in str(error)


def test_total_timeout_stops_a_slow_drip(server):
    """Each byte arrives well within the read timeout; the total deadline still ends it."""
    client = GuardedClient(OutboundPolicy(allow_loopback=True, read_timeout=5, timeout=0.8))
    started = time.monotonic()
    error = _raises(OutboundTimeout, lambda: client.get(server.url("/drip")))
    assert time.monotonic() - started < 2
    assert error.phase == "total"


def test_connect_timeout_is_reported(server):
    def stalled(ip: str, port: int, timeout: float | None) -> socket.socket:
        raise TimeoutError("timed out")

    dns = FakeDNS({"public.example": [PUBLIC_IP]})
    error = _raises(
        OutboundTimeout,
        lambda: GuardedClient(resolver=dns, connect=stalled).get("http://public.example/"),
    )
    assert error.phase == "connect"


# --------------------------------------------------------------------------------------------------
# DNS pinning
# --------------------------------------------------------------------------------------------------


def test_connection_goes_to_the_checked_address_and_dns_is_asked_once(server, monkeypatch):
    """DNS rebinding: the first answer is public, every later one is 127.0.0.1.

    The client resolves once, checks 93.184.216.34, and dials exactly that address (the dialer
    records it, then carries the bytes to the local server). A second lookup would have returned
    127.0.0.1; there is none, and with ``socket.getaddrinfo`` disabled nothing else (httpx, httpcore)
    resolved the name behind our back either.
    """
    dns = FakeDNS({"rebind.example": [[PUBLIC_IP], ["127.0.0.1"]]})
    dialer = Dialer(server.port)

    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected getaddrinfo{args}")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    echo = GuardedClient(resolver=dns, connect=dialer).get("http://rebind.example/echo").json()
    assert dns.calls == ["rebind.example"]
    assert dialer.calls == [(PUBLIC_IP, 80)]
    assert echo["headers"]["host"] == "rebind.example"


def test_rebinding_between_hops_is_caught(server):
    """Same host on the next hop: resolved again, and this time its answer (127.0.0.1) is refused."""
    dns = FakeDNS({"rebind.example": [[PUBLIC_IP], ["127.0.0.1"]]})
    dialer = Dialer(server.port)
    client = GuardedClient(resolver=dns, connect=dialer)
    refused = _raises(BlockedAddress, lambda: client.get("http://rebind.example/redirect?to=/hello"))
    assert refused.address == "127.0.0.1"
    assert dns.calls == ["rebind.example", "rebind.example"]
    assert dialer.calls == [(PUBLIC_IP, 80)]


def test_a_blocked_first_answer_never_connects():
    dns = FakeDNS({"rebind.example": [["127.0.0.1"], [PUBLIC_IP]]})
    dialer = NoDialing()
    _raises(
        BlockedAddress,
        lambda: GuardedClient(resolver=dns, connect=dialer).get("http://rebind.example/"),
    )
    assert dns.calls == ["rebind.example"] and dialer.calls == []


# --------------------------------------------------------------------------------------------------
# TLS: the socket goes to the pinned IP; SNI and certificate checks are for the original name
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Any]:
    pytest.importorskip("cryptography", reason="generating the test CA needs cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Workspace outbound test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "public.example")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("public.example")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "leaf.pem", directory / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "ca_pem": ca.public_bytes(serialization.Encoding.PEM).decode(),
        "cert": cert_file,
        "key": key_file,
    }


@pytest.fixture
def tls_server(certificates) -> Iterator[tuple[_Server, list[str | None]]]:
    sni: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["cert"], certificates["key"])
    context.sni_callback = lambda ssl_object, name, ctx: sni.append(name)
    srv = _Server(ssl_context=context)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv, sni
    srv.shutdown()
    srv.server_close()


def test_https_dials_the_pinned_ip_with_sni_and_verification_for_the_hostname(tls_server, certificates):
    srv, sni = tls_server
    dns = FakeDNS({"public.example": [PUBLIC_IP], "other.example": [PUBLIC_IP]})
    dialer = Dialer(srv.port)
    policy = OutboundPolicy(ssl_context=ssl.create_default_context(cadata=certificates["ca_pem"]))
    client = GuardedClient(policy, resolver=dns, connect=dialer)

    echo = client.get("https://public.example/echo").json()
    assert dialer.calls == [(PUBLIC_IP, 443)]
    assert sni == ["public.example"]
    assert echo["headers"]["host"] == "public.example"

    # same IP, another name: the certificate (valid for public.example only) is refused
    refused = _raises(OutboundConnectError, lambda: client.get("https://other.example/echo"))
    assert "TLS" in str(refused) and "certificate" in str(refused)
    assert sni[-1] == "other.example"
    # the IP itself is not a name the certificate covers either
    _raises(OutboundConnectError, lambda: client.get(f"https://{PUBLIC_IP}/echo"))


def test_https_with_the_default_trust_store_refuses_a_private_ca(tls_server):
    srv, _ = tls_server
    client = GuardedClient(resolver=FakeDNS({"public.example": [PUBLIC_IP]}), connect=Dialer(srv.port))
    refused = _raises(OutboundConnectError, lambda: client.get("https://public.example/echo"))
    assert "certificate" in str(refused).lower()
