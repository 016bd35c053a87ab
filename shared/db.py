"""asyncpg connection pools: one per service, confined to that service's PostgreSQL schema."""

from __future__ import annotations

import asyncpg

from shared.config import Settings


async def create_pool(settings: Settings, schema: str, *, application_name: str) -> asyncpg.Pool:
    """Open a pool whose connections resolve unqualified names in ``schema`` only.

    ``search_path`` is set per connection at the server, so a service's SQL cannot reach another
    service's tables by accident (it would have to qualify them, which review can see).
    Raises ConfigError when DATABASE_URL is not set.
    """
    settings.require("database_url")
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        server_settings={"search_path": schema, "application_name": application_name},
        # Statements that hang must not pin a connection forever (principle 4: bounded everything).
        command_timeout=60,
        reset=_keep_session,
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's default reset query.

    That query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) is a round trip
    on every release, as many as a one-statement call makes for its own work. No Switchboard code
    leaves session state on a pooled connection: advisory locks are transaction-scoped
    (``pg_try_advisory_xact_lock``), LISTEN runs on a dedicated connection, settings are startup
    parameters, cursors live in transactions. asyncpg still rolls back an open transaction and
    drops listeners before calling this.
    """

