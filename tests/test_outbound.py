"""The outbound URL guard: the pure decision with injected resolvers, then real connects.

No test sends traffic outside 127.0.0.0/8: public addresses appear only in the pure decision, and
every transport gets an injected resolver that answers loopback addresses (Linux routes all of
127.0.0.0/8 to `lo`, so 127.0.0.2 stands in for an internal address).
"""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from countersign.config import Settings
from countersign.errors import CallbackNotAllowed
from countersign.kit.outbound import (
    DNS_TIMEOUT_SECONDS,
    GuardedTransport,
    OutboundPolicy,
    OutboundRefused,
    check_url,
    check_url_async,
    decide,
    default_resolve,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
DEFAULT = OutboundPolicy()
DEV = OutboundPolicy(allow_loopback_http=True)


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        try:
            return table[host.rstrip(".")]
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "unknown host") from None

    return resolve


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"literal IP hosts must not be resolved (asked for {host})")


NAMES = resolver(
    {
        "public.test": [PUBLIC_V4],
        "public6.test": [PUBLIC_V6],
        "private.test": ["10.0.0.5"],
        "mixed.test": [PUBLIC_V4, "10.0.0.5"],
        "metadata.test": ["169.254.169.254"],
        "mapped.test": ["::ffff:192.168.1.1"],
        "translated.test": ["::ffff:0:10.0.0.1"],
        "localhost": ["127.0.0.1", "::1"],
        "hooks.internal": ["10.0.0.7"],
        "in-cidr.test": ["10.1.2.3"],
        "xn--bcher-kva.test": [PUBLIC_V4],
    }
)


class TestDecideLiteralAddresses:
    @pytest.mark.parametrize(
        ("host", "category"),
        [
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.254", "private"),
            ("192.168.0.1", "private"),
            ("169.254.169.254", "metadata"),
            ("169.254.1.1", "link-local"),
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("[::1]", "loopback"),
            ("[fe80::1]", "link-local"),
            ("[fc00::1]", "private"),
            ("[fd12:3456::1]", "private"),
            ("[fd00:ec2::254]", "metadata"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("[::ffff:10.0.0.1]", "private"),
            ("[::ffff:169.254.169.254]", "metadata"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("0.0.0.0", "unspecified"),
            ("[::]", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("[ff02::1]", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
            ("192.0.2.10", "non-public"),
            ("[2001:db8::1]", "non-public"),
            ("[64:ff9b::a00:1]", "translated non-public"),
            ("[2002:a00:1::]", "translated non-public"),
            # IPv4-translated (SIIT, RFC 2765): `::ffff:0:a.b.c.d`, refused like mapped forms.
            ("[::ffff:0:127.0.0.1]", "translated non-public"),
            ("[::ffff:0:10.0.0.1]", "translated non-public"),
            ("[::ffff:0:169.254.169.254]", "translated non-public"),
            ("[::ffff:0:a00:1]", "translated non-public"),
        ],
    )
    def test_non_public_address_is_refused(self, host: str, category: str) -> None:
        reason = decide(f"https://{host}/hook", DEFAULT, no_dns)
        assert reason is not None
        assert f" {category} address" in reason
        assert "COUNTERSIGN_OUTBOUND_ALLOW" in reason

    @pytest.mark.parametrize("host", [PUBLIC_V4, f"[{PUBLIC_V6}]", "8.8.8.8:443"])
    def test_https_to_public_address_is_allowed(self, host: str) -> None:
        assert decide(f"https://{host}/hook", DEFAULT, no_dns) is None

    def test_http_to_public_address_is_refused_by_default(self) -> None:
        reason = decide(f"http://{PUBLIC_V4}/hook", DEFAULT, no_dns)
        assert reason is not None
        assert "plain http" in reason


class TestDecideHostNames:
    def test_public_name_over_https_is_allowed(self) -> None:
        assert decide("https://public.test/hook", DEFAULT, NAMES) is None
        assert decide("https://PUBLIC.test:443/hook?a=1", DEFAULT, NAMES) is None
        assert decide("https://public6.test/", DEFAULT, NAMES) is None

    def test_public_name_over_http_is_refused(self) -> None:
        reason = decide("http://public.test/hook", DEFAULT, NAMES)
        assert reason is not None
        assert "use https" in reason

    @pytest.mark.parametrize(
        ("host", "category"),
        [
            ("private.test", "private"),
            ("mixed.test", "private"),
            ("metadata.test", "metadata"),
            ("mapped.test", "private"),
            ("translated.test", "translated non-public"),
            ("localhost", "loopback"),
        ],
    )
    def test_name_resolving_to_any_non_public_address_is_refused(
        self, host: str, category: str
    ) -> None:
        reason = decide(f"https://{host}/hook", DEFAULT, NAMES)
        assert reason == (
            f"host {host!r} resolves to a {category} address; "
            "list it in COUNTERSIGN_OUTBOUND_ALLOW to allow it"
        )

    def test_resolved_addresses_are_not_echoed(self) -> None:
        reason = decide("https://private.test/", DEFAULT, NAMES)
        assert reason is not None
        assert "10.0.0.5" not in reason

    def test_unresolvable_name_is_refused(self) -> None:
        assert decide("https://nowhere.test/", DEFAULT, NAMES) == (
            "host 'nowhere.test' could not be resolved"
        )

    def test_empty_answer_is_refused(self) -> None:
        reason = decide("https://empty.test/", DEFAULT, resolver({"empty.test": []}))
        assert reason == "host 'empty.test' could not be resolved"

    def test_international_name_is_resolved_in_ascii(self) -> None:
        assert decide("https://bücher.test/", DEFAULT, NAMES) is None

    def test_resolver_gets_the_effective_port(self) -> None:
        seen: list[tuple[str, int]] = []

        def record(host: str, port: int) -> list[str]:
            seen.append((host, port))
            return [PUBLIC_V4]

        decide("https://a.test/", DEFAULT, record)
        decide("https://b.test:8443/", DEFAULT, record)
        assert seen == [("a.test", 443), ("b.test", 8443)]


class TestDecideUrlShape:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("ftp://public.test/", "URL scheme 'ftp' is not allowed; use https"),
            ("file:///etc/passwd", "URL scheme 'file' is not allowed; use https"),
            ("gopher://public.test/", "URL scheme 'gopher' is not allowed; use https"),
            (
                "javascript:alert(1)",
                "URL scheme 'javascript' is not allowed; use https",
            ),
            ("/relative/path", "URL scheme '(none)' is not allowed; use https"),
            ("https:///path", "URL has no host"),
            (
                "https://user:pass@public.test/",
                "URL must not contain credentials (user:password@)",
            ),
            (
                "https://token@public.test/",
                "URL must not contain credentials (user:password@)",
            ),
        ],
    )
    def test_refused(self, url: str, expected: str) -> None:
        assert decide(url, DEFAULT, NAMES) == expected

    def test_parser_differential_is_checked_as_the_client_parses_it(self) -> None:
        # httpx reads the host as 10.0.0.1 here (the rest is userinfo), and so does the check.
        assert decide(r"https://public.test\@10.0.0.1/", DEFAULT, NAMES) is not None

    def test_invalid_url_is_refused(self) -> None:
        reason = decide("https://public.test:abc/", DEFAULT, NAMES)
        assert reason is not None
        assert reason.startswith("URL is not valid")

    @pytest.mark.parametrize("port", [0, 65536, 99999])
    def test_port_out_of_range_is_refused(self, port: int) -> None:
        reason = decide(f"https://public.test:{port}/", DEFAULT, NAMES)
        assert reason == f"URL port {port} is not valid"


class TestPorts:
    """Only 80 and 443, unless the host or its network is listed (or dev mode's loopback)."""

    @pytest.mark.parametrize(
        "url",
        [
            "https://public.test:8443/hook",
            "https://public.test:22/",
            f"https://{PUBLIC_V4}:6379/",
            f"https://[{PUBLIC_V6}]:8080/",
            "https://public.test:80/",  # a standard port, even under https
        ],
    )
    def test_a_public_host_is_reached_on_80_and_443_only(self, url: str) -> None:
        reason = decide(url, DEFAULT, NAMES)
        if url.startswith("https://public.test:80/"):
            assert reason is None
            return
        assert reason is not None
        assert reason.startswith("port ")
        assert "COUNTERSIGN_OUTBOUND_ALLOW" in reason

    def test_standard_ports_are_allowed(self) -> None:
        assert decide("https://public.test:443/", DEFAULT, NAMES) is None
        assert decide("https://public.test/", DEFAULT, NAMES) is None

    def test_a_listed_host_name_may_use_any_port(self) -> None:
        policy = OutboundPolicy(allow=["public.test"])
        assert decide("https://public.test:8443/", policy, NAMES) is None
        assert decide("https://public6.test:8443/", policy, NAMES) is not None

    def test_a_listed_network_may_use_any_port(self) -> None:
        policy = OutboundPolicy(allow=[f"{PUBLIC_V4}/32", "10.0.0.0/8"])
        assert decide(f"https://{PUBLIC_V4}:8443/", policy, no_dns) is None
        assert decide("http://10.1.2.3:8080/", policy, no_dns) is None
        # Every address must be listed: one unlisted public address keeps the port refused.
        mixed = resolver({"two.test": [PUBLIC_V4, "93.184.216.35"]})
        assert decide("https://two.test:8443/", policy, mixed) is not None

    def test_dev_mode_loopback_may_use_any_port_but_public_hosts_may_not(self) -> None:
        assert decide("http://127.0.0.1:8080/", DEV, NAMES) is None
        assert decide("https://public.test:8443/", DEV, NAMES) is not None


class TestDnsTimeout:
    """A resolver that never answers refuses the URL after the bound instead of hanging."""

    @pytest.fixture
    def stuck(self) -> Iterator[Callable[[str, int], list[str]]]:
        released = threading.Event()

        def resolve(host: str, port: int) -> list[str]:
            released.wait(30)
            return [PUBLIC_V4]

        yield resolve
        released.set()  # let the abandoned lookup threads end

    def test_decide_gives_up_after_the_bound(
        self, stuck: Callable[[str, int], list[str]]
    ) -> None:
        started = time.monotonic()
        reason = decide("https://slow.test/", DEFAULT, stuck, dns_timeout=0.3)
        assert time.monotonic() - started < 2
        assert reason == "host 'slow.test' could not be resolved within 0.3 s"

    async def test_check_url_async_gives_up_after_the_bound(
        self, stuck: Callable[[str, int], list[str]]
    ) -> None:
        started = time.monotonic()
        with pytest.raises(CallbackNotAllowed, match="within 0.3 s"):
            await check_url_async("https://slow.test/", DEFAULT, stuck, dns_timeout=0.3)
        assert time.monotonic() - started < 2

    async def test_the_transport_gives_up_after_the_bound(
        self, stuck: Callable[[str, int], list[str]]
    ) -> None:
        transport = GuardedTransport(ONLY_127_0_0_1, resolve=stuck, dns_timeout=0.3)
        started = time.monotonic()
        async with client(transport) as http:
            with pytest.raises(OutboundRefused, match="within 0.3 s"):
                await http.get("https://slow.test/")
        assert time.monotonic() - started < 2

    def test_the_default_bound_is_a_few_seconds(self) -> None:
        assert 0 < DNS_TIMEOUT_SECONDS <= 10


class TestAllowList:
    def test_cidr_allows_addresses_inside_over_http_too(self) -> None:
        policy = OutboundPolicy(allow=["10.1.0.0/16"])
        assert decide("https://10.1.2.3/", policy, no_dns) is None
        assert decide("http://10.1.2.3:8080/", policy, no_dns) is None
        assert decide("http://in-cidr.test/", policy, NAMES) is None
        assert decide("https://10.2.0.1/", policy, no_dns) is not None
        assert decide("https://private.test/", policy, NAMES) is not None

    def test_single_address_entry(self) -> None:
        policy = OutboundPolicy(allow=["10.0.0.5"])
        assert decide("http://private.test/", policy, NAMES) is None
        assert decide("http://10.0.0.6/", policy, no_dns) is not None

    def test_cidr_covers_ipv4_mapped_addresses(self) -> None:
        policy = OutboundPolicy(allow=["10.0.0.0/8"])
        assert decide("https://[::ffff:10.0.0.1]/", policy, no_dns) is None

    def test_ipv6_cidr(self) -> None:
        policy = OutboundPolicy(allow=["fd12::/16"])
        assert decide("http://[fd12::5]/", policy, no_dns) is None

    def test_http_needs_every_address_listed(self) -> None:
        policy = OutboundPolicy(allow=["10.0.0.0/8"])
        assert decide("https://mixed.test/", policy, NAMES) is None
        reason = decide("http://mixed.test/", policy, NAMES)
        assert reason is not None
        assert "plain http" in reason

    def test_cidr_may_list_the_metadata_address_explicitly(self) -> None:
        policy = OutboundPolicy(allow=["169.254.169.254/32"])
        assert decide("http://169.254.169.254/latest", policy, no_dns) is None

    def test_host_name_allows_its_addresses_over_http_too(self) -> None:
        policy = OutboundPolicy(allow=["Hooks.Internal"])
        assert decide("http://hooks.internal:8080/cb", policy, NAMES) is None
        assert decide("https://HOOKS.INTERNAL./cb", policy, NAMES) is None
        assert decide("https://private.test/", policy, NAMES) is not None

    def test_host_name_allows_public_addresses_over_http(self) -> None:
        policy = OutboundPolicy(allow=["public.test"])
        assert decide("http://public.test/", policy, NAMES) is None

    def test_host_name_does_not_allow_the_metadata_address(self) -> None:
        policy = OutboundPolicy(allow=["metadata.test"])
        reason = decide("https://metadata.test/", policy, NAMES)
        assert reason is not None
        assert "metadata address, which a host name" in reason

    def test_host_name_is_matched_exactly(self) -> None:
        policy = OutboundPolicy(allow=["internal"])
        assert decide("https://hooks.internal/", policy, NAMES) is not None

    @pytest.mark.parametrize(
        "entry", ["10.0.0.0/33", "*.example.org", "host:8080", "a b"]
    )
    def test_malformed_entry_is_refused(self, entry: str) -> None:
        with pytest.raises(ValueError, match="neither a CIDR nor a host name"):
            OutboundPolicy(allow=[entry])

    def test_blank_entries_are_ignored(self) -> None:
        assert OutboundPolicy(allow=["", "  "]).networks == ()


class TestDevMode:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/cb",
            "https://127.0.0.1/cb",
            "http://[::1]:9000/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8080/",
        ],
    )
    def test_loopback_is_allowed_over_http(self, url: str) -> None:
        assert decide(url, DEV, NAMES) is None

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1/",
            "https://10.0.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/",
            "https://[fe80::1]/",
            "https://private.test/",
            "https://[64:ff9b::7f00:1]/",
        ],
    )
    def test_other_non_public_addresses_stay_refused(self, url: str) -> None:
        assert decide(url, DEV, NAMES) is not None

    def test_http_to_public_stays_refused(self) -> None:
        assert decide("http://public.test/", DEV, NAMES) is not None


class TestFromSettings:
    def test_dev_mode_allows_loopback(self) -> None:
        settings = Settings(
            auth_mode="dev", outbound_allow="10.0.0.0/8, hooks.internal"
        )
        policy = OutboundPolicy.from_settings(settings)
        assert policy.allow_loopback_http
        assert policy.allows_name("HOOKS.internal")
        assert decide("http://10.9.9.9/", policy, no_dns) is None

    def test_oidc_mode_does_not(self) -> None:
        settings = Settings(
            auth_mode="oidc",
            secret_key="mSQk2t1dOoZQy1Yq5uS6mNnE0g6zO3m8rX3cZ9dYb0Q=",
            oidc_jwks_url="https://idp.test/jwks",
            oidc_issuers="https://idp.test",
            oidc_audience="countersign",
        )
        policy = OutboundPolicy.from_settings(settings)
        assert not policy.allow_loopback_http
        assert decide("http://127.0.0.1/", policy, no_dns) is not None


class TestCheckUrl:
    def test_raises_callback_not_allowed_with_the_reason(self) -> None:
        with pytest.raises(CallbackNotAllowed) as caught:
            check_url("https://private.test/", DEFAULT, NAMES)
        assert caught.value.message == decide("https://private.test/", DEFAULT, NAMES)
        assert caught.value.status_code == 422

    def test_allowed_url_passes(self) -> None:
        check_url("https://public.test/", DEFAULT, NAMES)

    async def test_async_variant(self) -> None:
        await check_url_async("https://public.test/", DEFAULT, NAMES)
        with pytest.raises(CallbackNotAllowed):
            await check_url_async("https://10.0.0.1/", DEFAULT, NAMES)


def test_default_resolve_answers_localhost_from_the_hosts_file() -> None:
    addresses = default_resolve("localhost", 80)
    assert addresses
    assert set(addresses) <= {"127.0.0.1", "::1"}
    assert decide("https://localhost/", DEFAULT, default_resolve) is not None


# --- connect time: real requests to loopback servers ---------------------------------------


@dataclass
class Hits:
    hosts: list[str] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)


@dataclass
class LoopbackServer:
    address: str
    port: int
    hits: Hits


def _serve(
    address: str, port: int, tls: ssl.SSLContext | None = None
) -> Iterator[LoopbackServer]:
    hits = Hits()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps connections alive, as real receivers do

        def do_GET(self) -> None:
            hits.hosts.append(self.headers.get("Host", ""))
            hits.client_ports.append(self.client_address[1])
            body = f"{address} saw Host {self.headers.get('Host')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield LoopbackServer(address, server.server_address[1], hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def allowed_server() -> Iterator[LoopbackServer]:
    yield from _serve("127.0.0.1", 0)


@pytest.fixture
def internal_server(allowed_server: LoopbackServer) -> Iterator[LoopbackServer]:
    """Stands in for an internal service: same port, another loopback address."""
    yield from _serve("127.0.0.2", allowed_server.port)


ONLY_127_0_0_1 = OutboundPolicy(allow=["127.0.0.1/32"])


def client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=5)


class TestGuardedTransport:
    async def test_allowed_address_is_reached_with_the_original_host_header(
        self, allowed_server: LoopbackServer
    ) -> None:
        transport = GuardedTransport(
            ONLY_127_0_0_1, resolve=resolver({"hooks.test": ["127.0.0.1"]})
        )
        async with client(transport) as http:
            response = await http.get(f"http://hooks.test:{allowed_server.port}/cb")
            literal = await http.get(f"http://127.0.0.1:{allowed_server.port}/cb")
        assert response.status_code == 200
        assert allowed_server.hits.hosts == [
            f"hooks.test:{allowed_server.port}",
            f"127.0.0.1:{allowed_server.port}",
        ]
        # The caller's view is untouched by the pinning.
        assert response.url.host == "hooks.test"
        assert literal.status_code == 200

    async def test_address_outside_the_allow_list_is_refused(
        self, internal_server: LoopbackServer
    ) -> None:
        url = f"http://127.0.0.2:{internal_server.port}/cb"
        # Control: an unguarded client does reach it, so the refusal below is what stops it.
        async with client(httpx.AsyncHTTPTransport()) as http:
            assert (await http.get(url)).status_code == 200
        assert len(internal_server.hits.hosts) == 1

        async with client(GuardedTransport(ONLY_127_0_0_1, resolve=no_dns)) as http:
            with pytest.raises(OutboundRefused, match="loopback address"):
                await http.get(url)
        assert len(internal_server.hits.hosts) == 1

    async def test_dns_rebinding_between_check_and_connect_is_refused(
        self, allowed_server: LoopbackServer, internal_server: LoopbackServer
    ) -> None:
        answers = iter([["127.0.0.1"], ["127.0.0.2"]])
        calls: list[str] = []

        def rebinding(host: str, port: int) -> list[str]:
            calls.append(host)
            return next(answers)

        url = f"http://rebind.test:{allowed_server.port}/cb"
        check_url(url, ONLY_127_0_0_1, rebinding)  # the stored URL passed the check
        async with client(GuardedTransport(ONLY_127_0_0_1, resolve=rebinding)) as http:
            with pytest.raises(OutboundRefused) as caught:
                await http.get(url)
        assert "host 'rebind.test' resolves to a loopback address" in str(caught.value)
        assert calls == ["rebind.test", "rebind.test"]  # resolved again at connect time
        assert internal_server.hits.hosts == []
        assert allowed_server.hits.hosts == []

    async def test_refuses_what_decide_refuses_before_any_lookup(self) -> None:
        transport = GuardedTransport(ONLY_127_0_0_1, resolve=no_dns)
        async with client(transport) as http:
            for url in [
                "ftp://127.0.0.1/",
                "http://u:p@127.0.0.1/",
                "http://10.0.0.1/",
            ]:
                with pytest.raises(OutboundRefused):
                    await http.get(url)

    async def test_unresolvable_name_is_refused(self) -> None:
        async with client(GuardedTransport(ONLY_127_0_0_1, resolve=NAMES)) as http:
            with pytest.raises(OutboundRefused, match="could not be resolved"):
                await http.get("http://nowhere.test/")

    async def test_falls_back_to_the_next_checked_address(
        self, allowed_server: LoopbackServer
    ) -> None:
        # 127.0.0.3 is allowed but nothing listens there: connect fails, the next one answers.
        policy = OutboundPolicy(allow=["127.0.0.1/32", "127.0.0.3/32"])
        resolve = resolver({"two.test": ["127.0.0.3", "127.0.0.1"]})
        async with client(GuardedTransport(policy, resolve=resolve)) as http:
            response = await http.get(f"http://two.test:{allowed_server.port}/")
        assert response.status_code == 200

    async def test_connections_are_reused_for_one_name_and_never_across_names(
        self, allowed_server: LoopbackServer
    ) -> None:
        resolve = resolver({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
        async with client(GuardedTransport(ONLY_127_0_0_1, resolve=resolve)) as http:
            await http.get(f"http://a.test:{allowed_server.port}/")
            await http.get(f"http://b.test:{allowed_server.port}/")
            await http.get(f"http://a.test:{allowed_server.port}/")
        assert [h.split(":")[0] for h in allowed_server.hits.hosts] == [
            "a.test",
            "b.test",
            "a.test",
        ]
        first_a, only_b, second_a = allowed_server.hits.client_ports
        # One address, two names: a connection is never shared between them ...
        assert only_b not in (first_a, second_a)
        # ... and one name's calls ride the same kept-alive connection (no new handshake).
        assert second_a == first_a


@dataclass
class TlsFixture:
    server: LoopbackServer
    client_context: ssl.SSLContext
    server_names: list[str | None]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsFixture]:
    """An https server on 127.0.0.1 whose certificate is valid for `hooks.test` only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("hooks.test")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server_names: list[str | None] = []

    def record_sni(
        sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext
    ) -> None:
        server_names.append(name)

    server_context.sni_callback = record_sni
    client_context = ssl.create_default_context(cadata=cert_pem.decode())
    for server in _serve("127.0.0.1", 0, tls=server_context):
        yield TlsFixture(server, client_context, server_names)


class TestGuardedTransportTls:
    async def test_sni_and_certificate_use_the_original_name(
        self, tls_server: TlsFixture
    ) -> None:
        resolve = resolver({"hooks.test": ["127.0.0.1"]})
        transport = GuardedTransport(
            ONLY_127_0_0_1, resolve=resolve, verify=tls_server.client_context
        )
        async with client(transport) as http:
            response = await http.get(f"https://hooks.test:{tls_server.server.port}/cb")
        assert response.status_code == 200
        assert tls_server.server_names == ["hooks.test"]
        assert tls_server.server.hits.hosts == [f"hooks.test:{tls_server.server.port}"]

    async def test_certificate_for_another_name_is_rejected(
        self, tls_server: TlsFixture
    ) -> None:
        # Proof that verification runs against the URL's name, not the pinned IP.
        resolve = resolver({"other.test": ["127.0.0.1"]})
        transport = GuardedTransport(
            ONLY_127_0_0_1, resolve=resolve, verify=tls_server.client_context
        )
        async with client(transport) as http:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(f"https://other.test:{tls_server.server.port}/cb")
        assert tls_server.server.hits.hosts == []
