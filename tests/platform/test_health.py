"""Health as a client of a real server sees it: SERVING only when declared ready and every
dependency is healthy; a dependency lost and back flips it both ways; draining wins over all."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.shared.auth import Authenticator
from switchboard.shared.grpc.health import LIVENESS, NOT_SERVING, SERVING
from switchboard.shared.grpc.server import ServerOptions, ServiceServer
from tests.conftest import INTERNAL_TOKEN
from tests.support.worker_keys import verifier


async def test_a_lost_dependency_flips_health_both_ways_and_draining_wins():
    server = ServiceServer(
        [], ServerOptions(host="127.0.0.1", port=0), authenticator=Authenticator(INTERNAL_TOKEN, verifier())
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            async def status() -> int:
                return (await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status

            watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=10)
            assert (await watch.read()).status == SERVING
            await server.health.set_dependency("database", False)
            assert (await watch.read()).status == NOT_SERVING and await status() == NOT_SERVING
            # Alive all the same: a liveness probe must not restart a replica for its database.
            alive = await stub.Check(health_pb2.HealthCheckRequest(service=LIVENESS), timeout=5)
            assert alive.status == SERVING
            await server.health.set_dependency("database", True)
            assert (await watch.read()).status == SERVING and await status() == SERVING

            await server.health.drain()
            assert (await watch.read()).status == NOT_SERVING
            # A probe that finds the database again must not bring a stopping server back.
            await server.health.set_dependency("database", True)
            await server.health.set_all(SERVING)
            assert await status() == NOT_SERVING
    finally:
        await server.stop()
