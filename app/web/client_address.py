"""The address of the client behind a request, for rate limits and the access log.

`X-Forwarded-For` is believed only from the reverse proxies the operator names in
TRUSTED_PROXIES: anyone else can write any address there. Each proxy appends the address it
got the request from, so the client is the rightmost address that is not one of ours.

Rate limits count an IPv6 client by its /64: a subscriber is given a /64 at least (RFC 6177),
and picks any of its 2**64 addresses at will, so counting addresses would let one machine
rotate through as many budgets as it likes.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from flask import Flask, current_app, request

from app.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Where the views find the client's address, and where the access log (gunicorn's
# `%({analytics.logged_client}e)s`) finds what it writes of it.
CLIENT_ENVIRON_KEY = "analytics.client"
LOGGED_CLIENT_ENVIRON_KEY = "analytics.logged_client"
IPV6_SUBSCRIBER_PREFIX = 64
# What ingestion's log keeps of a visitor's address (docs/visitors.md): its network, as
# analytics tools anonymize addresses: an IPv4 address's /24, an IPv6 address's /48.
LOGGED_IPV4_PREFIX = 24
LOGGED_IPV6_PREFIX = 48
# Clients whose hashed address a process remembers: a visitor sends several requests a visit.
ADDRESSES_CACHED = 4096


def parse_networks(setting: str) -> tuple[Network, ...]:
    """TRUSTED_PROXIES as networks: comma-separated addresses or CIDRs."""
    networks = []
    for item in filter(None, (part.strip() for part in setting.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as error:
            raise ValueError(f"TRUSTED_PROXIES: {item!r} is not an address or a CIDR") from error
    return tuple(networks)


def _trusted(address: str, networks: Sequence[Network]) -> bool | None:
    """Whether `address` is one of the proxies; None when it is no address at all."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return any(ip in network for network in networks)


def client_address(remote_addr: str, forwarded_for: str | None, networks: Sequence[Network]) -> str:
    """The rightmost address, walking from the peer back through `X-Forwarded-For`, that is
    not a trusted proxy; the last trusted one if a hop is no address (forged or broken)."""
    client = remote_addr
    if not networks or not forwarded_for or not _trusted(remote_addr, networks):
        return client
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        trusted = _trusted(hop, networks)
        if trusted is None:
            return client
        client = hop
        if not trusted:
            return client
    return client


def limited_address(address: str) -> str:
    """What rate limits count for a client `address`: an IPv6 address's /64 (an IPv4 address
    written as IPv6 is that IPv4 address), an IPv4 address itself."""
    if ":" not in address:  # IPv4, or no address at all: nothing to parse
        return address
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, IPV6_SUBSCRIBER_PREFIX), strict=False))


def request_client_address() -> str:
    """The client address of the current request (TRUSTED_PROXIES of the current app)."""
    networks: tuple[Network, ...] = current_app.extensions["trusted_proxies"]
    return client_address(request.remote_addr or "", request.headers.get("X-Forwarded-For"), networks)


def request_limited_address() -> str:
    """What rate limits count for the client of the current request (whose address
    `remember_client` noted first), under ADDRESS_KEY's hash: the address never reaches Redis."""
    address = request.environ.get(CLIENT_ENVIRON_KEY) or request_client_address()
    return hashed_address(limited_address(address), current_app.extensions["address_key"])


@lru_cache(maxsize=ADDRESSES_CACHED)
def hashed_address(limited: str, key: bytes) -> str:
    """`keyed_hash` of a limited address, remembered for a process's recent clients: of the
    limited address only, so that no IPv6 client's full address stays in memory
    (docs/visitors.md)."""
    return keyed_hash(limited, key)


def keyed_hash(address: str, key: bytes) -> str:
    """BLAKE2b of `address` keyed with `key`, in hex: the same for every process of a deployment,
    and for every day, so that a limit's count goes on across midnight."""
    return hashlib.blake2b(address.encode(), key=key, digest_size=16).hexdigest()


def anonymized(address: str) -> str:
    """An address with its host part zeroed (`203.0.113.0`, `2001:db8:1::`); "-" for none."""
    if address.count(".") == 3 and ":" not in address:  # IPv4: the common case, without parsing
        return address.rpartition(".")[0] + ".0"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "-"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # The mask by integers: building an `ip_network` costs several times as much.
    bits = ip.max_prefixlen - (LOGGED_IPV4_PREFIX if ip.version == 4 else LOGGED_IPV6_PREFIX)
    return str(type(ip)(int(ip) >> bits << bits))


def remember_client() -> None:
    address = request_client_address()
    request.environ[CLIENT_ENVIRON_KEY] = address
    logged = anonymized(address) if current_app.extensions["log_anonymized_clients"] else address
    request.environ[LOGGED_CLIENT_ENVIRON_KEY] = logged


def init_app(app: Flask, settings: Settings, anonymize_log: bool = False) -> None:
    """Read TRUSTED_PROXIES, and note each request's client for the views and the access
    log; `anonymize_log`: the log keeps only the client's network (ingestion's clients are
    the visitors)."""
    app.extensions["trusted_proxies"] = parse_networks(settings.trusted_proxies)
    # BLAKE2b takes a key of at most 64 bytes: a longer secret is hashed down to that.
    app.extensions["address_key"] = hashlib.blake2b(settings.address_key.encode()).digest()
    app.extensions["log_anonymized_clients"] = anonymize_log
    app.before_request(remember_client)
