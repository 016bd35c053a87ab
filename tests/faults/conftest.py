"""One `switchboard up` for the whole fault suite (each start costs seconds): every test leaves it
as it found it, serving, so the next one starts from a healthy stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.test_up import Stack, start_stack, stop_stack


@pytest.fixture(scope="package")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    stack = await start_stack(
        tmp_path_factory.mktemp("faults"),
        # Revocations refreshed every 0.3 s, so that a list goes stale after 2 s (the floor)
        # rather than the default 30; identity is given 0.5 s to resolve an organisation.
        extra_env={"SWITCHBOARD_REVOCATION_REFRESH_SECONDS": "0.3", "SWITCHBOARD_PROXY_IDENTITY_TIMEOUT_SECONDS": "0.5"},
    )
    yield stack
    assert await stop_stack(stack) == 0
