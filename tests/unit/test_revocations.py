"""Revoked worker tokens known locally: refused once known, and refused altogether (fail closed)
when the list cannot be refreshed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from switchboard.shared.auth import Authenticator
from switchboard.shared.errors import Unauthenticated, Unavailable
from switchboard.shared.revocations import Revocation, RevocationSync, RevokedTokens
from tests.support.worker_keys import ISSUER, verifier



def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


async def test_tokens_are_refused_until_the_first_refresh_and_after_a_revocation():
    revoked = RevokedTokens(max_staleness_seconds=60)
    found: list[Revocation] = []

    async def fetch(since):
        return list(found)

    sync = RevocationSync(revoked, fetch, interval_seconds=60)
    authenticator = Authenticator("i" * 40, verifier(), revoked)
    issued = ISSUER.issue(organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", agent_id="2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", connection_id=None, ttl=timedelta(minutes=5))
    with pytest.raises(Unavailable):
        authenticator.authenticate(bearer(issued.token))
    assert await sync.run_once() and sync.refreshed.is_set()
    assert authenticator.authenticate(bearer(issued.token)).token_id == issued.token_id
    found.append(Revocation(issued.token_id, datetime.now(UTC), issued.expires_at))
    await sync.run_once()
    with pytest.raises(Unauthenticated, match="revoked"):
        authenticator.authenticate(bearer(issued.token))


async def test_a_failing_source_keeps_the_list_and_reports_failure():
    revoked = RevokedTokens(max_staleness_seconds=60)
    calls = 0

    async def flaky(since):
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("identity is down")
        return [Revocation("t1", datetime.now(UTC), datetime.now(UTC) + timedelta(minutes=5))]

    sync = RevocationSync(revoked, flaky, interval_seconds=60)
    assert await sync.run_once()
    assert not await sync.run_once()
    assert revoked.is_revoked("t1") and revoked.is_fresh


def test_a_list_older_than_its_allowed_staleness_is_not_fresh():
    revoked = RevokedTokens(max_staleness_seconds=0)
    revoked.apply([])
    assert not revoked.is_fresh


def test_expired_revocations_are_forgotten():
    revoked = RevokedTokens(max_staleness_seconds=60)
    now = datetime.now(UTC)
    revoked.apply([Revocation("old", now - timedelta(hours=2), now - timedelta(hours=1))], now=now)
    assert not revoked.is_revoked("old")
