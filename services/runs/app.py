"""Builds the runs service in the open: pool → servicers → server registrations."""

from __future__ import annotations

import asyncpg

from services.runs.server import RunService
from shared.config import Settings
from shared.grpc.server import Registration, ServiceApp
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc

SCHEMA = "runs"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""


async def create(settings: Settings, pool: asyncpg.Pool) -> ServiceApp:
    """The runs service's servicers, ready to be served."""
    return ServiceApp(
        registrations=[
            Registration(
                run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name,
                lambda server: run_service_pb2_grpc.add_RunServiceServicer_to_server(RunService(), server),
            ),
        ]
    )
