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
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import anyio.to_thread
import httpx

from countersign.config import AuthMode, Settings
from countersign.errors import CallbackNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

ALLOW_SETTING: Final = "COUNTERSIGN_OUTBOUND_ALLOW"

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
# IPv6 ranges that carry an IPv4 address the traffic ends up at: the well-known NAT64 prefix
# (last 32 bits) and 6to4 (handled by `IPv6Address.sixtofour`).
_NAT64: Final = _N("64:ff9b::/96")

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


def decide(url: str, policy: OutboundPolicy, resolve: Resolver) -> str | None:
    """None when `url` may be called, else the reason it may not (for people, not parsing).

    Every address the host resolves to is checked: a name with one public and one private
    address is refused. Literal IP hosts are checked without DNS.
    """
    target = _parse(url)
    if isinstance(target, str):
        return target
    addresses = _resolve(target, resolve)
    if isinstance(addresses, str):
        return addresses
    return _evaluate(target, addresses, policy)


def check_url(
    url: str, policy: OutboundPolicy, resolve: Resolver = default_resolve
) -> None:
    """Raise `CallbackNotAllowed` unless `url` may be called. Blocking (DNS): see `check_url_async`."""
    reason = decide(url, policy, resolve)
    if reason is not None:
        raise CallbackNotAllowed(reason)


async def check_url_async(
    url: str, policy: OutboundPolicy, resolve: Resolver = default_resolve
) -> None:
    """`check_url` with the DNS lookup in a worker thread, for use inside request handlers."""
    reason = await anyio.to_thread.run_sync(decide, url, policy, resolve)
    if reason is not None:
        raise CallbackNotAllowed(reason)


class OutboundRefused(httpx.TransportError):
    """The outbound policy refused a request when it was about to be sent."""


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that applies the outbound policy at connect time.

    How: before each request, resolve the host, run the policy on every address, then connect
    to a checked address itself: the URL's host is replaced by that IP while the `Host` header
    and (for https) the TLS SNI name, hence certificate verification, stay the original name
    (`extensions["sni_hostname"]`). There is no second DNS lookup between check and connect
    for an attacker to answer differently (DNS rebinding).

    Keep-alive is off: httpcore pools connections by (scheme, host, port), which is the IP here,
    so a pooled TLS connection made for one name could otherwise carry a request for another
    name on the same IP (a shared CDN address) without that name's certificate being checked.
    A fresh connection per request also means every request passes the check.

    Environment proxies are never used (`trust_env=False`): a proxy would make the connection,
    and the checked address would not be the one reached.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolve: Resolver = default_resolve,
        verify: ssl.SSLContext | str | bool = True,
        max_connections: int = 100,
    ) -> None:
        super().__init__(
            verify=verify,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=0
            ),
        )
        self._policy = policy
        self._resolve = resolve

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = _parse(request.url)
        if isinstance(target, str):
            raise OutboundRefused(target, request=request)
        if target.literal is not None:
            addresses: list[IPAddress] | str = [target.literal]
        else:
            addresses = await anyio.to_thread.run_sync(_resolve, target, self._resolve)
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
                return await super().handle_async_request(pinned)
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise OutboundRefused("no address to connect to", request=request)


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
        if embedded is None and address in _NAT64:
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
