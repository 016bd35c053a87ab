"""The fuzz suite's fixtures: the whole platform in this process, organisations A and B seeded,
and a guard that fails any call that changed a row of B."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from switchboard.shared.migrate import migrate
from tests.conftest import temporary_database
from tests.fuzz.budget import EXAMPLES, LARGE_RUN, SEED, TALLY
from tests.fuzz.stack import Stack, running_stack
from tests.fuzz.tenancy import Snapshot, snapshot
from tests.fuzz.world import World, seed_world


class Untouched:
    """Organisation B as it was seeded; ``check`` compares its rows now with then."""

    def __init__(self, pool: asyncpg.Pool, organization_id: str, baseline: Snapshot):
        self.pool, self.organization_id, self.baseline = pool, organization_id, baseline

    async def check(self, what: str) -> None:
        now = await snapshot(self.pool, self.organization_id)
        changes = self.baseline.changes(now)
        if changes:
            # Start again from here: the next case is judged on its own, not failed for this one.
            self.baseline = now
            raise AssertionError(f"{what} changed rows of organisation B: {changes}")


@pytest.fixture(scope="package")
async def fuzz_database(postgres_dsn: str) -> AsyncIterator[str]:
    async with temporary_database(postgres_dsn, "fuzz") as database_url:
        await migrate(database_url)
        yield database_url


@pytest.fixture(scope="package")
async def stack(fuzz_database: str) -> AsyncIterator[Stack]:
    async with running_stack(fuzz_database) as running:
        yield running


@pytest.fixture(scope="package")
async def world(stack: Stack) -> World:
    return await seed_world(stack)


@pytest.fixture(scope="package")
async def untouched(stack: Stack, world: World) -> Untouched:
    return Untouched(stack.pool, world.b.id, await snapshot(stack.pool, world.b.id))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    mode = f"random seed (SWITCHBOARD_FUZZ_EXAMPLES={EXAMPLES})" if LARGE_RUN else f"seed {SEED}" if SEED else "derandomized"
    terminalreporter.section(f"fuzz: generated cases run ({mode})")
    for target, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{count:6d}  {target}")
    terminalreporter.write_line(f"{sum(TALLY.values()):6d}  in all, over {len(TALLY)} RPCs-as-principal and routes")
