"""gRPC server bootstrap: grpc.aio server with the request pipeline, health, reflection, metrics,
and a graceful stop (NOT_SERVING first, then ``server.stop(grace)``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from switchboard.shared.auth import Authenticator
from switchboard.shared.authz import Memberships
from switchboard.shared.grpc.health import SERVING, HealthService
from switchboard.shared.grpc.pipeline import RequestPipeline
from switchboard.shared.logs import get_logger
from switchboard.shared.metrics import RpcMetrics

log = get_logger(__name__)


@dataclass(frozen=True)
class Registration:
    """One servicer to serve: its fully qualified service name and how to add it to a server."""

    service_name: str
    add_to_server: Callable[[grpc.aio.Server], None]


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    default_deadline_seconds: float = 10.0
    shutdown_grace_seconds: float = 10.0
    drain_delay_seconds: float = 0.0
    max_message_bytes: int = 4 << 20


class ServiceServer:
    """A running gRPC server for a set of servicers. ``start`` binds; ``stop`` drains and stops."""

    def __init__(
        self,
        registrations: Sequence[Registration],
        options: ServerOptions,
        *,
        authenticator: Authenticator,
        metrics: RpcMetrics | None = None,
        memberships: Memberships | None = None,
    ):
        self.options = options
        self.metrics = metrics or RpcMetrics()
        names = tuple(r.service_name for r in registrations)
        self.health = HealthService(names)
        self._server = grpc.aio.server(
            interceptors=[
                RequestPipeline(
                    authenticator=authenticator,
                    metrics=self.metrics,
                    default_deadline_seconds=options.default_deadline_seconds,
                    memberships=memberships,
                )
            ],
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
                # Several replicas may bind the same port only by mistake; fail loudly instead.
                ("grpc.so_reuseport", 0),
            ],
        )
        for registration in registrations:
            registration.add_to_server(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self._server,
        )
        self.port: int | None = None

    async def start(self, *, serving: bool = True) -> int:
        """Bind and start serving; returns the bound port (useful with port 0). With
        ``serving=False`` health stays NOT_SERVING until ``health.set_all(SERVING)``."""
        address = f"{self.options.host}:{self.options.port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:  # what grpcio raises when the port is taken
            raise OSError(f"could not bind {address}: is another process listening there?") from exc
        if self.port == 0:
            raise OSError(f"could not bind {address}")
        await self._server.start()
        if serving:
            await self.health.set_all(SERVING)
        return self.port

    async def stop(self) -> None:
        """Drain: report NOT_SERVING, wait the drain delay, then let in-flight calls finish within
        the grace period while refusing new ones."""
        await self.health.drain()
        log.info("server_draining", port=self.port, grace_seconds=self.options.shutdown_grace_seconds)
        if self.options.drain_delay_seconds:
            await asyncio.sleep(self.options.drain_delay_seconds)
        await self._server.stop(self.options.shutdown_grace_seconds)
        log.info("server_stopped", port=self.port)
