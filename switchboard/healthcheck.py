"""Is a process serving? A gRPC health check, or the edge's ``/healthz``. Used by ``up`` while it
waits for its children, and by ``switchboard health`` (compose health checks, operators)."""

from __future__ import annotations

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def is_serving(service: str, host: str, port: int, timeout: float = 1.0) -> bool:
    """True when the process of ``service`` on ``host:port`` answers that it is serving."""
    if service == "edge":
        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                return (await http.get(f"http://{host}:{port}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING
