"""Builds the interactions service in the open: pool → servicers → server registrations."""

from __future__ import annotations

import asyncpg
from prometheus_client import CollectorRegistry

from services.interactions.server import InteractionService, EventService
from shared.config import Settings
from shared.grpc.server import Registration, ServiceApp
from switchboard.interactions.v1 import interaction_service_pb2, interaction_service_pb2_grpc
from switchboard.interactions.v1 import event_service_pb2, event_service_pb2_grpc

SCHEMA = "interactions"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""


async def create(settings: Settings, pool: asyncpg.Pool, *, registry: CollectorRegistry | None = None) -> ServiceApp:
    """The interactions service's servicers, ready to be served."""
    return ServiceApp(
        registrations=[
            Registration(
                interaction_service_pb2.DESCRIPTOR.services_by_name["InteractionService"].full_name,
                lambda server: interaction_service_pb2_grpc.add_InteractionServiceServicer_to_server(InteractionService(), server),
            ),
            Registration(
                event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
                lambda server: event_service_pb2_grpc.add_EventServiceServicer_to_server(EventService(), server),
            ),
        ]
    )
