"""Where a request really goes: DNS resolution, the global deny of private addresses, and pinning.

The check runs on the addresses the host resolves to, and the connection then goes to the checked
address (the URL's host is replaced by it; Host and TLS SNI keep the name). Otherwise a host that
resolves to a public address for the check and to 169.254.169.254 for the connection (DNS
rebinding) would walk past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from switchboard.services.secretproxy.cache import TtlLru

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata endpoints, named even where the ranges below already cover them.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ResolutionFailed(Exception):
    """The host does not resolve (an upstream failure: 502)."""


def is_private(address: IPAddress) -> bool:
    """Anything that is not a globally routable unicast address (private, loopback, link-local
    with 169.254.169.254, shared/CGNAT with 100.100.100.200, multicast, reserved, unspecified), also
    when an IPv4 address hides inside an IPv6 one (mapped, 6to4, Teredo, NAT64): nothing a worker
    may reach unless an operator allowed that upstream by name."""
    if address in _METADATA_ADDRESSES:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.is_site_local or any(inner is not None and is_private(inner) for inner in embedded):
            return True
    return not address.is_global or address.is_multicast


@dataclass(frozen=True)
class Destination:
    addresses: tuple[IPAddress, ...]

    @property
    def any_private(self) -> bool:
        return any(is_private(a) for a in self.addresses)

    @property
    def first(self) -> IPAddress:
        return self.addresses[0]


class Resolver:
    """Resolves host names through the event loop, with a small cache (bounded, short-lived)."""

    def __init__(self, ttl_seconds: float = 30.0, max_entries: int = 4096):
        self._cache: TtlLru[Destination] = TtlLru(max_entries, ttl_seconds)

    async def resolve(self, host: str, port: int) -> Destination:
        """Raises ResolutionFailed."""
        try:
            return Destination((ipaddress.ip_address(host),))
        except ValueError:
            pass
        key = (host, port)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ResolutionFailed(f"cannot resolve {host}") from exc
        addresses = tuple(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        if not addresses:
            raise ResolutionFailed(f"{host} resolves to no address")
        destination = Destination(addresses)
        self._cache.put(key, destination)
        return destination
