"""The standard health service (grpc.health.v1.Health) with dependencies and a draining state.

A server is SERVING when it was declared so (``set_all``), every dependency it needs to answer is
healthy (``set_dependency``: the database, reported by its probe), and it is not draining. Draining
is final: no later report of a healthy dependency turns a stopping server back to SERVING.

Unlike the reference servicer, ``Watch`` streams end by themselves once the server drains (after
telling the watcher NOT_SERVING), so that an open watch never holds up a graceful stop.
"""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
LIVENESS = "liveness"
"""The service name a liveness probe asks for (Kubernetes' gRPC livenessProbe): SERVING whenever
the process answers at all. A replica whose database is out of reach is alive (NOT_SERVING for
``""``, so out of rotation) and must not be restarted for it: it serves again once the database
is back."""


class HealthService(health_pb2_grpc.HealthServicer):
    """Serving status per service name; ``""`` stands for the whole server."""

    def __init__(self, service_names: tuple[str, ...]):
        self._status = {name: NOT_SERVING for name in ("", *service_names)}
        self._changed = asyncio.Condition()
        self._declared = NOT_SERVING
        self._unhealthy: set[str] = set()
        self._draining = False

    async def set_all(self, status: "health_pb2.HealthCheckResponse.ServingStatus") -> None:
        """Declare the server SERVING (ready to answer) or NOT_SERVING; dependencies and draining
        still have their say."""
        async with self._changed:
            self._declared = status
            self._publish()

    async def set_dependency(self, name: str, healthy: bool) -> None:
        """Record whether dependency ``name`` (e.g. ``"database"``) is healthy."""
        async with self._changed:
            if healthy:
                self._unhealthy.discard(name)
            else:
                self._unhealthy.add(name)
            self._publish()

    async def drain(self) -> None:
        """Report NOT_SERVING for every service from now on, and end the open watches."""
        async with self._changed:
            self._draining = True
            self._publish()

    def _publish(self) -> None:
        """Under the lock: recompute every status and wake the watchers."""
        status = NOT_SERVING if self._draining or self._unhealthy else self._declared
        for name in self._status:
            self._status[name] = status
        self._changed.notify_all()

    async def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext):
        if request.service == LIVENESS:
            return health_pb2.HealthCheckResponse(status=SERVING)
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext):
        last = None
        while True:
            async with self._changed:
                # Checked under the lock that notify_all holds, so no change can slip between the
                # read and the wait.
                while self._status.get(request.service, SERVICE_UNKNOWN) == last and not self._draining:
                    await self._changed.wait()
                status = self._status.get(request.service, SERVICE_UNKNOWN)
                draining = self._draining
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            if draining:
                return
