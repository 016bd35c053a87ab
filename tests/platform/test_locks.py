"""Advisory-lock keys that moved into switchboard/shared/locks.py kept their values, so a replica of the
previous release and one of this release still exclude each other during a rolling upgrade."""

from __future__ import annotations

import asyncpg

from switchboard.services.secretproxy import store as secretproxy_store
from switchboard.shared import locks


async def test_the_secretproxy_maintenance_key_is_the_hashtext_it_was_taken_under(postgres_dsn):
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT hashtext('secretproxy.maintenance')::bigint") == locks.SECRETPROXY_MAINTENANCE
    finally:
        await conn.close()


async def test_a_previous_release_holding_the_maintenance_lock_keeps_this_release_out(postgres_dsn):
    old, new = await asyncpg.connect(postgres_dsn), await asyncpg.connect(postgres_dsn)
    try:
        async with old.transaction():
            # What the previous release ran, verbatim.
            assert await old.fetchval("SELECT pg_try_advisory_xact_lock(hashtext('secretproxy.maintenance'))")
            async with new.transaction():
                assert not await secretproxy_store.try_maintenance_lock(new)
        async with new.transaction():
            assert await secretproxy_store.try_maintenance_lock(new)
    finally:
        await old.close()
        await new.close()
