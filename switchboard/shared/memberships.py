"""Acting users' roles, asked of the identity service and remembered briefly.

A service that lets a user act in an organisation asks identity for the user's role there
(``IdentityService.GetMembership``). Answers are kept per process in a bounded cache for a few
seconds (``SWITCHBOARD_MEMBERSHIP_CACHE_SECONDS``, default 5; a refusal for 1 s), so a removed or
demoted admin loses access within that time on every replica. Identity unreachable means the
answer cannot be had: UNAVAILABLE, never a guess (fail closed).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import grpc

from switchboard.shared.authz import Role
from switchboard.shared.errors import Unavailable

Fetch = Callable[[str, str], Awaitable[Role | None]]

DEFAULT_TTL_SECONDS = 5.0
NEGATIVE_TTL_SECONDS = 1.0
MAX_ENTRIES = 10_000
LOOKUP_TIMEOUT_SECONDS = 2.0


class CachedMemberships:
    """A bounded TTL cache in front of a role lookup (a Memberships)."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        negative_ttl_seconds: float = NEGATIVE_TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._negative_ttl = min(negative_ttl_seconds, ttl_seconds)
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, Role | None]] = OrderedDict()

    async def role_of(self, organization_id: str, user_id: str) -> Role | None:
        key = (organization_id, user_id)
        now = self._clock()
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        role = await self._fetch(organization_id, user_id)
        if self._ttl > 0:
            self._entries[key] = (now + (self._ttl if role is not None else self._negative_ttl), role)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return role


def remote_fetch(channel: grpc.aio.Channel, *, timeout_seconds: float = LOOKUP_TIMEOUT_SECONDS) -> Fetch:
    """A role lookup through identity's GetMembership over ``channel`` (which carries the token)."""
    from switchboard.identity.v1 import identity_service_pb2 as pb
    from switchboard.identity.v1 import identity_service_pb2_grpc, resources_pb2

    stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
    roles = {resources_pb2.ROLE_MEMBER: Role.MEMBER, resources_pb2.ROLE_ADMIN: Role.ADMIN, resources_pb2.ROLE_OWNER: Role.OWNER}

    async def fetch(organization_id: str, user_id: str) -> Role | None:
        try:
            response = await stub.GetMembership(
                pb.GetMembershipRequest(organization_id=organization_id, user_id=user_id), timeout=timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise Unavailable(
                "cannot resolve the acting user's role: the identity service did not answer; retry shortly",
                reason="IDENTITY_UNAVAILABLE",
            ) from None
        return roles.get(response.membership.role)

    return fetch


class NoMemberships:
    """For a process that cannot reach identity: every acting user is refused as UNAVAILABLE."""

    async def role_of(self, organization_id: str, user_id: str) -> Role | None:
        raise Unavailable("acting users need the identity service, which this process cannot reach", reason="IDENTITY_UNAVAILABLE")
