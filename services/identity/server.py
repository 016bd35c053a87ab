"""The identity service's gRPC servicers: thin (parse, authorise, call the domain, encode)."""

from __future__ import annotations

from switchboard.identity.v1 import identity_service_pb2_grpc
from switchboard.identity.v1 import agent_service_pb2_grpc


class IdentityService(identity_service_pb2_grpc.IdentityServiceServicer):
    """switchboard.identity.v1.IdentityService. RPCs are added here as they are built; the ones not built
    yet are inherited from the generated base and answer UNIMPLEMENTED."""


class AgentService(agent_service_pb2_grpc.AgentServiceServicer):
    """switchboard.identity.v1.AgentService. RPCs are added here as they are built; the ones not built
    yet are inherited from the generated base and answer UNIMPLEMENTED."""
