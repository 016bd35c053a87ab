"""Builds the secretproxy service in the open: pool → keys, upstreams, caches, audit → servicer."""

from __future__ import annotations

import asyncpg
from prometheus_client import CollectorRegistry

from switchboard.services.secretproxy.audit import AuditLog
from switchboard.services.secretproxy.cache import TtlLru
from switchboard.services.secretproxy.clients import UpstreamClients
from switchboard.services.secretproxy.destinations import Resolver
from switchboard.services.secretproxy.forwarding import Forwarder, ForwardLimits
from switchboard.services.secretproxy.organizations import OrganizationResolver
from switchboard.services.secretproxy.retention import Retention
from switchboard.services.secretproxy.server import SecretProxyService
from switchboard.services.secretproxy.upstreams import parse_upstreams
from switchboard.shared.config import Settings
from switchboard.shared.crypto import KeyRing
from switchboard.shared.grpc.client import open_channel
from switchboard.shared.grpc.server import Registration, ServiceApp
from switchboard.secretproxy.v1 import (
    secret_proxy_service_pb2,
    secret_proxy_service_pb2_grpc,
)

SCHEMA = "secretproxy"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""


async def create(settings: Settings, pool: asyncpg.Pool, *, registry: CollectorRegistry | None = None) -> ServiceApp:
    """The secretproxy service, its audit writer and its retention loop."""
    settings.require("internal_token")
    assert settings.internal_token is not None
    keys = KeyRing(settings.credentials_keys) if settings.credentials_keys else None
    upstreams = parse_upstreams(settings.proxy_upstreams)
    identity = open_channel(settings.target_of("identity"), token=settings.internal_token)
    organizations = OrganizationResolver(identity, timeout_seconds=settings.proxy_identity_timeout_seconds)
    audit = AuditLog(pool)
    http = UpstreamClients(
        connect_timeout=settings.proxy_connect_timeout_seconds, read_timeout=settings.proxy_read_timeout_seconds
    )
    retention = Retention(
        pool,
        audit_retention_seconds=settings.proxy_audit_retention_seconds,
        lookup_window_seconds=settings.proxy_failed_lookup_window_seconds,
    )
    forwarder = Forwarder(
        pool,
        keys=keys,
        upstreams=upstreams,
        organizations=organizations,
        resolver=Resolver(),
        verdicts=TtlLru(settings.proxy_verdict_cache_size, settings.proxy_verdict_cache_seconds),
        audit=audit,
        http=http,
        limits=ForwardLimits(
            max_body_bytes=settings.proxy_max_body_bytes,
            body_idle_seconds=settings.proxy_read_timeout_seconds,
            failed_lookup_limit=settings.proxy_failed_lookup_limit,
            failed_lookup_window_seconds=settings.proxy_failed_lookup_window_seconds,
        ),
        internal_token=settings.internal_token,
    )
    servicer = SecretProxyService(pool, keys, upstreams, organizations, forwarder)

    async def close_clients() -> None:
        await http.aclose()
        await identity.close()

    return ServiceApp(
        registrations=[
            Registration(
                secret_proxy_service_pb2.DESCRIPTOR.services_by_name["SecretProxyService"].full_name,
                lambda server: secret_proxy_service_pb2_grpc.add_SecretProxyServiceServicer_to_server(servicer, server),
            ),
        ],
        on_start=[audit.start, retention.start],
        on_stop=[retention.stop, audit.stop, close_clients],
        accepts_tokens_without_organization=True,
    )
