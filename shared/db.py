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
    )
