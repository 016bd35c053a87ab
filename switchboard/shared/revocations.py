"""Revoked worker tokens, known locally: verifiers check tokens without a network call, and learn
of revocations by polling a source (the identity service, through switchboard/peers.py), so a revocation is honoured within one refresh.

If the list cannot be refreshed for too long, worker calls are refused (UNAVAILABLE) rather than
trusted on a stale list: failing closed is the rule where tenant access is at stake.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from switchboard.shared.logs import get_logger
from switchboard.shared.lifecycle import BackgroundLoop

log = get_logger(__name__)

# Polls overlap by this much so that a revocation committed just before the previous poll's
# watermark (clocks of different transactions) is not missed.
_OVERLAP = timedelta(seconds=5)
# Verifiers accept a token a few seconds past its expiry (clock skew); its revocation must be
# remembered at least that long.
_LEEWAY = timedelta(seconds=60)


@dataclass(frozen=True)
class Revocation:
    token_id: str
    revoked_at: datetime
    expires_at: datetime


Fetch = Callable[[datetime | None], Awaitable[list[Revocation]]]
"""Every revocation at or after the given time (all unexpired ones for None)."""


class RevokedTokens:
    """The revoked, unexpired token ids this process knows of, and how fresh that knowledge is."""

    def __init__(self, max_staleness_seconds: float):
        self._expiry_by_id: dict[str, datetime] = {}
        self._max_staleness = max_staleness_seconds
        self._refreshed_at: float | None = None
        self.watermark: datetime | None = None

    def is_revoked(self, token_id: str) -> bool:
        return token_id in self._expiry_by_id

    @property
    def is_fresh(self) -> bool:
        """False until the first refresh, and when the last one is older than the allowed staleness."""
        return self._refreshed_at is not None and time.monotonic() - self._refreshed_at <= self._max_staleness

    def apply(self, revocations: list[Revocation], now: datetime | None = None) -> None:
        """Record a successful refresh: add what it found, forget what has expired."""
        now = now or datetime.now(UTC)
        for revocation in revocations:
            self._expiry_by_id[revocation.token_id] = revocation.expires_at
            if self.watermark is None or revocation.revoked_at > self.watermark:
                self.watermark = revocation.revoked_at
        # Forgotten once expired beyond the verifiers' clock leeway: refused anyway from then on.
        forget_before = now - _LEEWAY
        for token_id in [t for t, expires_at in self._expiry_by_id.items() if expires_at <= forget_before]:
            del self._expiry_by_id[token_id]
        self._refreshed_at = time.monotonic()


class RevocationSync(BackgroundLoop):
    """One maintenance loop: refresh ``revoked`` from ``fetch`` every ``interval`` seconds."""

    name = "revocation-sync"

    def __init__(self, revoked: RevokedTokens, fetch: Fetch, interval_seconds: float):
        self.revoked = revoked
        self._fetch = fetch
        self._interval = interval_seconds
        self.refreshed = asyncio.Event()
        """Set after the first successful refresh."""

    async def run_once(self) -> bool:
        """One refresh; False (logged) when the source could not be reached."""
        since = self.revoked.watermark - _OVERLAP if self.revoked.watermark else None
        try:
            found = await self._fetch(since)
        except Exception as exc:  # noqa: BLE001 - any failure means "stale", which the list tracks
            log.warning("revocation_refresh_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return False
        self.revoked.apply(found)
        self.refreshed.set()
        return True

    async def _loop(self) -> None:
        while True:
            ok = await self.run_once()
            # Until the first success, retry sooner: worker calls are refused meanwhile.
            await asyncio.sleep(self._interval if ok or self.revoked.is_fresh else min(self._interval, 0.5))
