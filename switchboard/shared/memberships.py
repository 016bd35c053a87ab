"""Acting users' roles, asked of the identity service and remembered briefly.

A service that lets a user act in an organisation asks identity for the user's role there
(``IdentityService.GetMembership``, asked through switchboard/peers.py). Answers are kept per process in a bounded cache for a few
seconds (``SWITCHBOARD_MEMBERSHIP_CACHE_SECONDS``, default 5; a refusal for 1 s), so a removed or
demoted admin loses access within that time on every replica. Identity unreachable means the
answer cannot be had: UNAVAILABLE, never a guess (fail closed).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from switchboard.shared.authz import Role
from switchboard.shared.errors import Unavailable

Fetch = Callable[[str, str], Awaitable[Role | None]]

DEFAULT_TTL_SECONDS = 5.0
NEGATIVE_TTL_SECONDS = 1.0
MAX_ENTRIES = 10_000


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


class NoMemberships:
    """For a process that cannot reach identity: every acting user is refused as UNAVAILABLE."""

    async def role_of(self, organization_id: str, user_id: str) -> Role | None:
        raise Unavailable("acting users need the identity service, which this process cannot reach", reason="IDENTITY_UNAVAILABLE")
