"""Acting users' roles: remembered briefly and boundedly, asked again after the TTL (a removed admin
loses access within it), and never guessed when identity cannot be asked."""

from __future__ import annotations

import grpc
import pytest

from switchboard.shared.authz import Role
from switchboard.shared.errors import Unavailable
from switchboard.peers import remote_fetch
from switchboard.shared.memberships import CachedMemberships
from tests.conftest import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_roles_are_remembered_for_the_ttl_and_refusals_for_less():
    answers = {("o", "admin"): Role.ADMIN}
    asked: list[tuple[str, str]] = []

    async def fetch(org: str, user: str) -> Role | None:
        asked.append((org, user))
        return answers.get((org, user))

    clock = Clock()
    cache = CachedMemberships(fetch, ttl_seconds=5, negative_ttl_seconds=1, clock=clock)
    assert await cache.role_of("o", "admin") == Role.ADMIN
    del answers[("o", "admin")]  # removed from the organisation
    clock.now = 4.9
    assert await cache.role_of("o", "admin") == Role.ADMIN  # still within the documented staleness
    clock.now = 5.0
    assert await cache.role_of("o", "admin") is None  # asked again: gone
    answers[("o", "admin")] = Role.ADMIN
    clock.now = 5.5
    assert await cache.role_of("o", "admin") is None  # a refusal is remembered for 1 s only
    clock.now = 6.0
    assert await cache.role_of("o", "admin") == Role.ADMIN
    assert len(asked) == 3


async def test_the_cache_is_bounded():
    async def fetch(org: str, user: str) -> Role | None:
        return Role.MEMBER

    cache = CachedMemberships(fetch, ttl_seconds=60, max_entries=100)
    for i in range(1000):
        await cache.role_of("o", str(i))
    assert len(cache._entries) == 100


async def test_identity_unreachable_is_unavailable_never_a_guess():
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        fetch = remote_fetch(channel, timeout_seconds=0.5)
        with pytest.raises(Unavailable) as refused:
            await CachedMemberships(fetch).role_of("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002")
    assert refused.value.reason == "IDENTITY_UNAVAILABLE"
