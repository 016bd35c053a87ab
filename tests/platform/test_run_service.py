"""The one start and stop order of every service (switchboard/shared/service.run_service), watched
from outside: components start once the server is bound and the first revocation refresh is in,
SERVING comes after them; on stop they drain while the server still takes connections, stop after
it stopped (in reverse order), then the clients and the pool close. A stop that comes before the
first refresh starts nothing and never reports SERVING."""

from __future__ import annotations

import asyncio
import socket

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.shared.auth import Authenticator
from switchboard.shared.config import Settings
from switchboard.shared.db import create_pool
from switchboard.shared.grpc.server import ServerOptions
from switchboard.shared.lifecycle import Component
from switchboard.shared.revocations import RevocationSync, RevokedTokens
from switchboard.shared.service import ServiceApp, run_service
from tests.conftest import INTERNAL_TOKEN, free_port
from tests.support.worker_keys import verifier

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Recorder(Component):
    """Writes each call into ``log``, with whether the server's port took a connection then."""

    def __init__(self, name: str, port: int, log: list[tuple[str, bool]]):
        self.name, self._port, self._log = name, port, log

    def start(self) -> None:
        self._log.append((f"{self.name} start", listening(self._port)))

    def drain(self) -> None:
        self._log.append((f"{self.name} drain", listening(self._port)))

    async def stop(self) -> None:
        self._log.append((f"{self.name} stop", listening(self._port)))


async def health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10, wait_for_ready=True)
        return reply.status


def held_refresh() -> tuple[RevocationSync, asyncio.Event]:
    """A revocation refresh whose first fetch waits until the returned event is set."""
    release = asyncio.Event()

    async def fetch(since):
        await release.wait()
        return []

    return RevocationSync(RevokedTokens(max_staleness_seconds=60), fetch, 3600), release


async def test_start_and_stop_happen_in_the_one_order(migrated_database):
    port, log = free_port(), []
    pool = await create_pool(Settings(database_url=migrated_database), "runs", application_name="tests-order")

    async def close_client() -> None:
        log.append(("client closed", listening(port)))

    app = ServiceApp(registrations=[], components=[Recorder("a", port, log), Recorder("b", port, log)], closers=[close_client])
    refresh, release = held_refresh()
    entered, leave = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with run_service(
            app, pool, options=ServerOptions(host="127.0.0.1", port=port, shutdown_grace_seconds=1),
            authenticator=Authenticator(INTERNAL_TOKEN, verifier()), revocations=refresh,
        ):
            entered.set()
            await leave.wait()

    running = asyncio.create_task(run())
    # Bound, but waiting for the first refresh: NOT_SERVING and nothing started.
    assert await health(port) == NOT_SERVING
    assert log == [] and not entered.is_set()
    release.set()
    await entered.wait()
    assert await health(port) == SERVING
    assert log == [("a start", True), ("b start", True)]
    leave.set()
    await running
    assert log[2:] == [
        ("a drain", True),  # the server still takes calls: long-lived streams end first
        ("b drain", True),
        ("b stop", False),  # after the server stopped, in reverse order
        ("a stop", False),
        ("client closed", False),
    ]
    assert pool.is_closing()


async def test_a_stop_before_the_first_refresh_starts_nothing(migrated_database):
    port, log = free_port(), []
    pool = await create_pool(Settings(database_url=migrated_database), "runs", application_name="tests-order")
    app = ServiceApp(registrations=[], components=[Recorder("a", port, log)])
    refresh, _ = held_refresh()  # never released
    stopping = asyncio.get_running_loop().create_future()
    stopping.set_result("SIGTERM")
    async with run_service(
        app, pool, options=ServerOptions(host="127.0.0.1", port=port, shutdown_grace_seconds=1),
        authenticator=Authenticator(INTERNAL_TOKEN, verifier()), revocations=refresh, stopping=stopping,
    ):
        assert await health(port) == NOT_SERVING
    assert log == []  # neither started nor drained nor stopped
    assert pool.is_closing()


async def test_each_service_serves_exactly_the_servicers_it_declares():
    from switchboard.catalog import services
    from tests.support.worker_keys import PUBLIC_KEYS_SETTING, SIGNING_KEY_SETTING

    keys = {"worker_token_public_keys": PUBLIC_KEYS_SETTING, "worker_token_signing_key": SIGNING_KEY_SETTING}
    for service in services():
        app = await service.build(Settings(internal_token=INTERNAL_TOKEN, **keys), None)  # nothing touches the pool yet
        try:
            assert [r.service_name for r in app.registrations] == [name for name, _ in service.servicers], service.name
        finally:
            for close in app.closers:
                await close()
