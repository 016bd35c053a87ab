"""The organisation a worker acts for: its token's, or (older tokens) the identity service's answer.

The proxy never guesses: when the identity service fails or does not answer in time, the request
is refused with UNAVAILABLE and nothing is looked up. An agent never changes organisation, so
answers are cached for a short while (bounded) to spare identity a call per request.
"""

from __future__ import annotations

import uuid

import grpc

from switchboard.services.secretproxy.cache import TtlLru
from switchboard.shared.auth import WorkerPrincipal
from switchboard.shared.errors import Unauthenticated, Unavailable
from switchboard.shared.logs import get_logger
from switchboard.identity.v1 import identity_service_pb2 as identity_pb
from switchboard.identity.v1 import identity_service_pb2_grpc

log = get_logger(__name__)


class OrganizationResolver:
    def __init__(self, channel: grpc.aio.Channel, *, timeout_seconds: float, ttl_seconds: float = 60.0, max_entries: int = 10_000):
        self._identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
        self._timeout = timeout_seconds
        self._cache: TtlLru[str] = TtlLru(max_entries, ttl_seconds)

    async def organization_of(self, worker: WorkerPrincipal) -> str:
        """Raises Unavailable (identity failed or timed out) or Unauthenticated (no such agent)."""
        if worker.organization_id is not None:
            return worker.organization_id
        organization_id = await self.organization_of_agent(worker.agent_id)
        if organization_id is None:
            raise Unauthenticated("the worker token's agent does not exist", reason="UNKNOWN_AGENT")
        return organization_id

    async def organization_of_agent(self, agent_id: str) -> str | None:
        """The agent's organisation from identity; None when there is no such agent. Raises
        Unavailable when identity fails or times out."""
        cached = self._cache.get(agent_id)
        if cached is not None:
            return cached
        try:
            reply = await self._identity.ResolveAgentOrganization(
                identity_pb.ResolveAgentOrganizationRequest(agent_id=agent_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            log.warning("organization_resolution_failed", code=exc.code().name)
            raise _unresolved() from None
        except grpc.aio.UsageError:  # the channel is closing (the process stops)
            raise _unresolved() from None
        try:
            organization_id = str(uuid.UUID(reply.organization_id))
        except ValueError:
            log.error("organization_resolution_malformed")
            raise _unresolved() from None
        self._cache.put(agent_id, organization_id)
        return organization_id


def _unresolved() -> Unavailable:
    return Unavailable(
        "cannot resolve the worker's organisation (the identity service failed or timed out); retry shortly",
        reason="ORGANIZATION_UNRESOLVED",
    )
