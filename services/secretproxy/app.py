"""Builds the secretproxy service in the open: pool → servicers → server registrations."""

from __future__ import annotations

import asyncpg
from prometheus_client import CollectorRegistry

from services.secretproxy.server import SecretProxyService
from shared.config import Settings
from shared.grpc.server import Registration, ServiceApp
from switchboard.secretproxy.v1 import secret_proxy_service_pb2, secret_proxy_service_pb2_grpc

SCHEMA = "secretproxy"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""


async def create(settings: Settings, pool: asyncpg.Pool, *, registry: CollectorRegistry | None = None) -> ServiceApp:
    """The secretproxy service's servicers, ready to be served."""
    return ServiceApp(
        registrations=[
            Registration(
                secret_proxy_service_pb2.DESCRIPTOR.services_by_name["SecretProxyService"].full_name,
                lambda server: secret_proxy_service_pb2_grpc.add_SecretProxyServiceServicer_to_server(SecretProxyService(), server),
            ),
        ]
    )
