"""The outbound policy: which URLs the service may call (webhook callbacks and http rules).

API.md "Webhooks", outbound policy: by default only `https` to public addresses. Loopback,
private, link-local, metadata (and every other non-public) address is refused unless listed in
`COUNTERSIGN_OUTBOUND_ALLOW` (CIDRs or host names); allowed hosts and networks may use plain
`http`. Dev mode (`COUNTERSIGN_AUTH_MODE=dev`, the embedded default) also allows loopback, over
`http` too, but still refuses private, link-local and metadata addresses.

Two checks, one rule (`decide`):

- When a URL is stored (request creation, policy validation), `check_url` resolves the host and
  refuses the URL if any address it resolves to is refused.
- When a request is sent, `GuardedTransport` resolves the host again, checks every address and
  connects to the checked address itself, so a DNS answer that changes between the two (DNS
  rebinding) cannot reach an internal address.

Parsing uses `httpx.URL`, the parser of the client that sends the request, so the checked host is
the host that is connected to (no parser differential such as `http://a.com\\@10.0.0.1/`).

Destination ports are 80 and 443 only, unless the host is listed in `COUNTERSIGN_OUTBOUND_ALLOW`
(or, in dev mode, is loopback): a public name must not become a port scanner of whatever sits
behind it. DNS lookups are bounded (`DNS_TIMEOUT_SECONDS`): a resolver that never answers refuses
the URL instead of holding a request handler or a worker.

`bounded_request` is the one way the service reads an answer from outside (webhook receivers,
http rules, Keycloak): one deadline for the whole call (DNS, connect, send, the complete answer;
not per read, so a server dripping one byte at a time is cut off) and at most `max_bytes` of the
body read, then the connection closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import anyio.to_thread
import httpx

from countersign.config import AuthMode, Settings
from countersign.errors import CallbackNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

ALLOW_SETTING: Final = "COUNTERSIGN_OUTBOUND_ALLOW"
# Ports any caller may name; others need the host (or its network) in the allow list.
STANDARD_PORTS: Final = frozenset({80, 443})
# Bound on one DNS lookup (the system resolver's own retries can take much longer).
DNS_TIMEOUT_SECONDS: Final = 5.0
# What is read of an answer from outside: enough for an error text or an approver list.
MAX_ANSWER_BYTES: Final = 64 * 1024

_N = ipaddress.ip_network

# First match wins, so the specific names (metadata) come before the ranges that contain them.
_V4_CATEGORIES: Final[tuple[tuple[IPNetwork, str], ...]] = (
    (_N("169.254.169.254/32"), "metadata"),
    (_N("0.0.0.0/8"), "unspecified"),
    (_N("127.0.0.0/8"), "loopback"),
    (_N("10.0.0.0/8"), "private"),
    (_N("172.16.0.0/12"), "private"),
    (_N("192.168.0.0/16"), "private"),
    (_N("169.254.0.0/16"), "link-local"),
    (_N("100.64.0.0/10"), "carrier-grade NAT"),
    (_N("224.0.0.0/4"), "multicast"),
    (_N("240.0.0.0/4"), "reserved"),
)
_V6_CATEGORIES: Final[tuple[tuple[IPNetwork, str], ...]] = (
    (_N("fd00:ec2::254/128"), "metadata"),
    (_N("::/128"), "unspecified"),
    (_N("::1/128"), "loopback"),
    (_N("fc00::/7"), "private"),
    (_N("fe80::/10"), "link-local"),
    (_N("ff00::/8"), "multicast"),
    # Deprecated site-local and IPv4-compatible addresses; Python counts both as global.
    (_N("fec0::/10"), "reserved"),
    (_N("::/96"), "reserved"),
    # Local-use NAT64 translates into the operator's own network.
    (_N("64:ff9b:1::/48"), "private"),
)
# IPv6 ranges that carry an IPv4 address the traffic ends up at (last 32 bits): the well-known
# NAT64 prefix, IPv4-translated addresses of SIIT (`::ffff:0:a.b.c.d`, RFC 2765), and 6to4
# (handled by `IPv6Address.sixtofour`). IPv4-mapped `::ffff:a.b.c.d` is unmapped first.
_EMBEDDING_V4: Final = (_N("64:ff9b::/96"), _N("::ffff:0:0:0/96"))

# Never reachable through a *host name* in the allow list: a name is easy to repoint, and these
# are never a legitimate callback. Listing the address's CIDR explicitly still allows them.
_NOT_ALLOWED_BY_NAME: Final = frozenset({"metadata", "unspecified"})

_HOST_NAME: Final = re.compile(
    r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$"
)


@dataclass(frozen=True)
class OutboundPolicy:
    """What the service may call.

    Args:
        allow: `COUNTERSIGN_OUTBOUND_ALLOW` entries: CIDRs (`10.1.0.0/16`), single addresses
            (`10.1.2.3`) or host names (matched exactly, case-insensitively, no wildcards).
        allow_loopback_http: dev mode; loopback addresses are allowed, over plain http too.

    Raises:
        ValueError: an entry that is neither a CIDR nor a host name (a typo must not silently
            allow nothing, or worse).
    """

    allow: Sequence[str] = ()
    allow_loopback_http: bool = False
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    host_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for raw in self.allow:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = _normal_name(entry)
            if not _HOST_NAME.match(name):
                raise ValueError(
                    f"{ALLOW_SETTING} entry {entry!r} is neither a CIDR nor a host name"
                )
            names.add(name)
        object.__setattr__(self, "networks", tuple(networks))
        object.__setattr__(self, "host_names", frozenset(names))

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(
            allow=tuple(settings.outbound_allow),
            allow_loopback_http=settings.auth_mode is AuthMode.dev,
        )

    def allows_name(self, host: str) -> bool:
        return _normal_name(host) in self.host_names

    def allows_address(self, address: IPAddress) -> bool:
        candidates = {address, _unmapped(address)}
        return any(a in network for a in candidates for network in self.networks)


def default_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's preference order (blocking)."""
    addresses: list[str] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def decide(
    url: str,
    policy: OutboundPolicy,
    resolve: Resolver,
    *,
    dns_timeout: float = DNS_TIMEOUT_SECONDS,
) -> str | None:
    """None when `url` may be called, else the reason it may not (for people, not parsing).

    Every address the host resolves to is checked: a name with one public and one private
    address is refused. Literal IP hosts are checked without DNS. Blocking (at most
    `dns_timeout` in DNS).
    """
    target = _parse(url)
    if isinstance(target, str):
        return target
    addresses = _resolve_within(target, resolve, dns_timeout)
    if isinstance(addresses, str):
        return addresses
    return _evaluate(target, addresses, policy)


def check_url(
    url: str,
    policy: OutboundPolicy,
    resolve: Resolver = default_resolve,
    *,
    dns_timeout: float = DNS_TIMEOUT_SECONDS,
) -> None:
    """Raise `CallbackNotAllowed` unless `url` may be called. Blocking (DNS): see `check_url_async`."""
    reason = decide(url, policy, resolve, dns_timeout=dns_timeout)
    if reason is not None:
        raise CallbackNotAllowed(reason)


async def check_url_async(
    url: str,
    policy: OutboundPolicy,
    resolve: Resolver = default_resolve,
    *,
    dns_timeout: float = DNS_TIMEOUT_SECONDS,
) -> None:
    """`check_url` with the DNS lookup in a worker thread, for use inside request handlers."""
    target = _parse(url)
    reason: str | None
    if isinstance(target, str):
        reason = target
    else:
        addresses = await _resolve_async(target, resolve, dns_timeout)
        reason = (
            addresses
            if isinstance(addresses, str)
            else _evaluate(target, addresses, policy)
        )
    if reason is not None:
        raise CallbackNotAllowed(reason)


class OutboundRefused(httpx.TransportError):
    """The outbound policy refused a request when it was about to be sent."""


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that applies the outbound policy at connect time.

    How: before each request, resolve the host, run the policy on every address, then connect
    to a checked address itself: the URL's host is replaced by that IP while the `Host` header
    and (for https) the TLS SNI name, hence certificate verification, stay the original name
    (`extensions["sni_hostname"]`). There is no second DNS lookup between check and connect
    for an attacker to answer differently (DNS rebinding).

    Connections are kept alive, in one pool per (scheme, name, port, checked address): a pooled
    connection only ever carries requests for the name it was opened (and its certificate
    checked) for, and only to an address that passed the policy. httpcore alone would pool by
    the IP, so a TLS connection made for one name could carry a request for another name on the
    same address (a shared CDN) without that name's certificate being checked. Reusing
    connections spares a TCP and TLS handshake per webhook (ADR 0029). At most `MAX_POOLS`
    destinations keep pools; the least recently used one is closed beyond that.

    Environment proxies are never used (`trust_env=False`): a proxy would make the connection,
    and the checked address would not be the one reached.
    """

    MAX_POOLS = 256

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolve: Resolver = default_resolve,
        verify: ssl.SSLContext | str | bool = True,
        max_connections: int = 100,
        dns_timeout: float = DNS_TIMEOUT_SECONDS,
    ) -> None:
        self._policy = policy
        self._resolve = resolve
        self._dns_timeout = dns_timeout
        self._verify = verify
        self._max_connections = max_connections
        self._pools: OrderedDict[
            tuple[str, str, int, str], httpx.AsyncHTTPTransport
        ] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def _pool(self, target: _Target, address: IPAddress) -> httpx.AsyncHTTPTransport:
        key = (target.scheme, target.ascii_host, target.port, str(address))
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        pool = httpx.AsyncHTTPTransport(
            verify=self._verify,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
            ),
        )
        self._pools[key] = pool
        while len(self._pools) > self.MAX_POOLS:
            _, evicted = self._pools.popitem(last=False)
            closing = asyncio.ensure_future(evicted.aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = _parse(request.url)
        if isinstance(target, str):
            raise OutboundRefused(target, request=request)
        addresses = await _resolve_async(target, self._resolve, self._dns_timeout)
        if isinstance(addresses, str):
            raise OutboundRefused(addresses, request=request)
        reason = _evaluate(target, addresses, self._policy)
        if reason is not None:
            raise OutboundRefused(reason, request=request)

        headers = httpx.Headers(request.headers)
        if "host" not in headers:
            headers["Host"] = request.url.netloc.decode("ascii")
        extensions = dict(request.extensions)
        if target.literal is None and target.scheme == "https":
            extensions["sni_hostname"] = target.ascii_host
        # Try the checked addresses in the resolver's order, as a normal connect would. A
        # connect error happens before any of the body is read, so the stream can be reused.
        for index, address in enumerate(addresses):
            pinned = httpx.Request(
                request.method,
                request.url.copy_with(host=str(address)),
                headers=headers,
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return await self._pool(target, address).handle_async_request(pinned)
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise OutboundRefused("no address to connect to", request=request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class OutboundTimeout(httpx.TimeoutException):
    """The call as a whole (DNS, connect, send, the complete answer) missed its deadline."""


@dataclass(frozen=True)
class BoundedAnswer:
    """An answer from outside, of which at most `max_bytes` of the body was read."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    # False when the body was longer than the bound: `body` is its beginning only.
    complete: bool

    def excerpt(self, limit: int = 200) -> str:
        """The start of the body as one line of printable text, for logs and error texts."""
        text = self.body[: limit * 4].decode("utf-8", errors="replace")
        line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
        return line[:limit]

    def json(self) -> Any:
        """The body as JSON. Raises `ValueError` when it is not, or was cut at the bound."""
        if not self.complete:
            raise ValueError(f"the answer is larger than {len(self.body)} bytes")
        return json.loads(self.body)


async def bounded_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int = MAX_ANSWER_BYTES,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> BoundedAnswer:
    """One call to the outside with one deadline and a bounded read of the answer.

    `deadline` (seconds) covers everything: DNS, connect, sending and the whole answer, so a
    server that drips one byte at a time cannot hold the caller past it (httpx's own timeouts
    apply to each phase and each read). At most `max_bytes` of the body are read; the rest is
    never received: the response is closed at once (which closes its connection). The body is
    asked for without content encoding, so the bound is on what is read, not a compressed
    stand-in for something much larger.

    Raises `OutboundTimeout` when the deadline passes, other `httpx.HTTPError`s as httpx does.
    """
    sent = httpx.Headers(headers or {})
    sent.setdefault("Accept-Encoding", "identity")
    try:
        async with asyncio.timeout(deadline):
            async with client.stream(
                method, url, headers=sent, timeout=deadline, **kwargs
            ) as response:
                body = bytearray()
                complete = True
                async for chunk in response.aiter_bytes():
                    room = max_bytes - len(body)
                    if len(chunk) > room:
                        body += chunk[:room]
                        complete = False
                        break
                    body += chunk
                return BoundedAnswer(
                    response.status_code, response.headers, bytes(body), complete
                )
    except TimeoutError as exc:
        raise OutboundTimeout(f"no complete answer within {deadline:g} s") from exc


@dataclass(frozen=True)
class _Target:
    scheme: Literal["http", "https"]
    host: str  # as written (IDNA decoded), for messages and the allow list
    ascii_host: str  # what DNS and TLS see
    port: int
    literal: IPAddress | None


def _parse(url: str | httpx.URL) -> _Target | str:
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return f"URL is not valid: {exc}"
    scheme = parsed.scheme
    if scheme not in ("http", "https"):
        return f"URL scheme {scheme or '(none)'!r} is not allowed; use https"
    if parsed.userinfo:
        return "URL must not contain credentials (user:password@)"
    if not parsed.host:
        return "URL has no host"
    port = (
        parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)
    )
    if not 0 < port < 65536:
        return f"URL port {port} is not valid"
    ascii_host = parsed.raw_host.decode("ascii")
    try:
        literal: IPAddress | None = ipaddress.ip_address(ascii_host)
    except ValueError:
        literal = None
    return _Target(
        scheme="https" if scheme == "https" else "http",
        host=parsed.host,
        ascii_host=ascii_host,
        port=port,
        literal=literal,
    )


def _resolve(target: _Target, resolve: Resolver) -> list[IPAddress] | str:
    if target.literal is not None:
        return [target.literal]
    try:
        raw = resolve(target.ascii_host, target.port)
    except (OSError, UnicodeError):
        return f"host {target.host!r} could not be resolved"
    addresses: list[IPAddress] = []
    for item in raw:
        try:
            addresses.append(ipaddress.ip_address(item))
        except ValueError:
            return (
                f"host {target.host!r} resolved to something that is not an IP address"
            )
    if not addresses:
        return f"host {target.host!r} could not be resolved"
    return addresses


def _resolve_within(
    target: _Target, resolve: Resolver, timeout: float
) -> list[IPAddress] | str:
    """`_resolve`, given up after `timeout` (the lookup thread is left to finish on its own).

    `getaddrinfo` cannot be cancelled, so it runs in a daemon thread that is abandoned when it
    takes too long; the caller gets a refusal, not a hang.
    """
    if target.literal is not None:
        return [target.literal]
    result: list[list[IPAddress] | str] = []
    thread = threading.Thread(
        target=lambda: result.append(_resolve(target, resolve)),
        name="countersign-dns",
        daemon=True,
    )
    thread.start()
    thread.join(timeout)
    if not result:
        return _dns_timed_out(target, timeout)
    return result[0]


async def _resolve_async(
    target: _Target, resolve: Resolver, within: float
) -> list[IPAddress] | str:
    """`_resolve` in a worker thread, abandoned after `within` s or when the caller is cancelled."""
    if target.literal is not None:
        return [target.literal]
    with anyio.move_on_after(within):
        return await anyio.to_thread.run_sync(
            _resolve, target, resolve, abandon_on_cancel=True
        )
    return _dns_timed_out(target, within)


def _dns_timed_out(target: _Target, timeout: float) -> str:
    return f"host {target.host!r} could not be resolved within {timeout:g} s"


def _evaluate(
    target: _Target, addresses: Sequence[IPAddress], policy: OutboundPolicy
) -> str | None:
    by_name = policy.allows_name(target.host) or policy.allows_name(target.ascii_host)
    all_listed = True  # every address is allowed explicitly, so plain http is fine
    for address in addresses:
        if policy.allows_address(address):
            continue
        category = _category(address)
        if category is None:
            all_listed = False
            continue
        if policy.allow_loopback_http and _unmapped(address).is_loopback:
            continue
        if by_name and category not in _NOT_ALLOWED_BY_NAME:
            continue
        return _refusal(target, category, by_name=by_name)
    if target.scheme == "http" and not (by_name or all_listed):
        return (
            "plain http is allowed only to hosts and networks listed in "
            f"{ALLOW_SETTING}; use https"
        )
    if target.port not in STANDARD_PORTS and not (
        by_name
        or all(policy.allows_address(a) for a in addresses)
        or (
            policy.allow_loopback_http
            and all(_unmapped(a).is_loopback for a in addresses)
        )
    ):
        return (
            f"port {target.port} is allowed only to hosts and networks listed in "
            f"{ALLOW_SETTING}; use port 443 (or 80)"
        )
    return None


def _refusal(target: _Target, category: str, *, by_name: bool) -> str:
    article = "an" if category[0] in "aeiou" else "a"
    if target.literal is not None:
        # The caller wrote the address, so naming it leaks nothing.
        what = f"address {target.host} is {article} {category} address"
    else:
        # Do not echo resolved addresses: the reason goes back to the caller, and internal DNS
        # answers are not theirs to learn.
        what = f"host {target.host!r} resolves to {article} {category} address"
    if by_name:
        return f"{what}, which a host name in {ALLOW_SETTING} does not allow; list its CIDR"
    return f"{what}; list it in {ALLOW_SETTING} to allow it"


def _category(address: IPAddress) -> str | None:
    """None for a public address, else what kind of non-public address it is."""
    address = _unmapped(address)
    if isinstance(address, ipaddress.IPv4Address):
        for network, name in _V4_CATEGORIES:
            if address in network:
                return name
    else:
        for network, name in _V6_CATEGORIES:
            if address in network:
                return name
        embedded = address.sixtofour
        if embedded is None and any(address in net for net in _EMBEDDING_V4):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and _category(embedded) is not None:
            # Translated to a non-public IPv4 address: never loopback for dev mode's sake.
            return "translated non-public"
    if not address.is_global:
        return "non-public"
    return None


def _unmapped(address: IPAddress) -> IPAddress:
    """`::ffff:10.0.0.1` → `10.0.0.1` (a dual-stack socket connects to the IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _normal_name(host: str) -> str:
    return host.strip().rstrip(".").lower()
