"""The edge's gRPC channels to the services, one per service, balanced over its replicas."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.shared.config import SERVICES, Settings
from switchboard.shared.grpc.client import open_channel


class Upstreams:
    """One channel per service; ``readiness`` asks each for its health."""

    def __init__(self, channels: dict[str, grpc.aio.Channel]):
        self.channels = channels

    @classmethod
    def from_settings(cls, settings: Settings) -> Upstreams:
        settings.require("internal_token")
        return cls(
            {
                service: open_channel(
                    settings.target_of(service),
                    token=settings.internal_token,
                    default_timeout=settings.default_deadline_seconds,
                    max_message_bytes=settings.grpc_max_message_bytes,
                    # Requests go to the replicas that serve: one cut off from its database, or
                    # draining, is skipped while another serves.
                    health_checked=True,
                )
                for service in SERVICES
            }
        )

    async def readiness(self, timeout: float = 1.0) -> dict[str, str]:
        """Each service's health (SERVING, NOT_SERVING, or UNAVAILABLE when it cannot be reached)."""

        async def check(channel: grpc.aio.Channel) -> str:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        names = list(self.channels)
        results = await asyncio.gather(*(check(self.channels[name]) for name in names))
        return dict(zip(names, results, strict=True))

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
