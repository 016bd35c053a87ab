"""Worker tokens: issued for an agent, recorded so they can be revoked, revocations listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from switchboard.services.identity import store
from switchboard.shared.auth import IssuedToken, WorkerTokenIssuer
from switchboard.shared.config import ConfigError, Settings
from switchboard.shared.errors import NotFound
from switchboard.shared.revocations import Revocation
from switchboard.shared.worker_keys import parse_public_keys, parse_signing_key, same_key

DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(hours=24)


def issuer_from(settings: Settings) -> WorkerTokenIssuer:
    """The signer of worker tokens, with identity's private key. Raises ConfigError when the key
    is not configured, or when its public half is not in the verification key set under its kid:
    every service verifies with that set, so a key missing from it would sign tokens that no
    service accepts (rotate by publishing the new public key first, then switching to it)."""
    settings.require("worker_token_signing_key", "worker_token_public_keys")
    assert settings.worker_token_signing_key is not None and settings.worker_token_public_keys is not None
    signing = parse_signing_key(settings.worker_token_signing_key)
    published = parse_public_keys(settings.worker_token_public_keys).get(signing.kid)
    if published is None:
        raise ConfigError(
            f"the worker token signing key {signing.kid!r} is not in SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS: "
            "add its public key there, on every service, before signing with it"
        )
    if not same_key(published, signing.public_key):
        raise ConfigError(
            f"the public key listed as {signing.kid!r} in SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS is not the signing "
            "key's: list the signing key's own public key under its kid"
        )
    return WorkerTokenIssuer(signing)


async def issue(
    pool: asyncpg.Pool, tokens: WorkerTokenIssuer, agent_id: str, connection_id: str | None, ttl: timedelta
) -> IssuedToken:
    """Sign a token for the agent's organisation and record it. Raises NotFound for an unknown agent."""
    agent = await store.agent_get(pool, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} does not exist", reason="AGENT_NOT_FOUND")
    now = datetime.now(UTC).replace(microsecond=0)
    issued = tokens.issue(
        organization_id=str(agent["organization_id"]), agent_id=agent_id, connection_id=connection_id, ttl=ttl, now=now
    )
    # Recorded before it is handed out: a token that exists is a token that can be revoked.
    await store.worker_token_insert(
        pool, issued.token_id, str(agent["organization_id"]), agent_id, connection_id, now, issued.expires_at
    )
    return issued


async def fetch_revocations(pool: asyncpg.Pool, since: datetime | None) -> list[Revocation]:
    """Every unexpired revocation at or after ``since``: the identity service's own revocation
    source (other services get the same through ListRevokedWorkerTokens)."""
    found: list[Revocation] = []
    after = None
    while True:
        rows = await store.worker_token_list_revoked(pool, since=since, after=after, limit=1000)
        found += [Revocation(str(r["id"]), r["revoked_at"], r["expires_at"]) for r in rows]
        if len(rows) < 1000:
            return found
        after = (rows[-1]["revoked_at"], str(rows[-1]["id"]))
