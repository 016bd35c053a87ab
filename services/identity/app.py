"""Builds the identity service in the open: pool → servicers → server registrations."""

from __future__ import annotations

import asyncpg

from services.identity.server import IdentityService, AgentService
from shared.config import Settings
from shared.grpc.server import Registration, ServiceApp
from switchboard.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from switchboard.identity.v1 import agent_service_pb2, agent_service_pb2_grpc

SCHEMA = "identity"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""


async def create(settings: Settings, pool: asyncpg.Pool) -> ServiceApp:
    """The identity service's servicers, ready to be served."""
    return ServiceApp(
        registrations=[
            Registration(
                identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
                lambda server: identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityService(), server),
            ),
            Registration(
                agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
                lambda server: agent_service_pb2_grpc.add_AgentServiceServicer_to_server(AgentService(), server),
            ),
        ]
    )
