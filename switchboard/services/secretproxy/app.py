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
from switchboard.services.secretproxy.settings import SecretProxySettings
from switchboard.services.secretproxy.upstreams import parse_upstreams
from switchboard.shared.auth import WorkerTokens
from switchboard.shared.config import Settings
from switchboard.shared.crypto import KeyRing
from switchboard.shared.grpc.client import open_channel
from switchboard.shared.grpc.server import Registration
from switchboard.shared.service import Service, ServiceApp
from switchboard.shared.worker_keys import parse_public_keys
from switchboard.secretproxy.v1 import (
    secret_proxy_service_pb2,
    secret_proxy_service_pb2_grpc,
)

SCHEMA = "secretproxy"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""
SECRET_PROXY_SERVICE = secret_proxy_service_pb2.DESCRIPTOR.services_by_name["SecretProxyService"].full_name


async def create(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    own: SecretProxySettings | None = None,
    registry: CollectorRegistry | None = None,
) -> ServiceApp:
    """The secretproxy service, its audit writer and its retention loop."""
    own = own or SecretProxySettings()
    settings.require("internal_token")
    assert settings.internal_token is not None
    keys = KeyRing(settings.credentials_keys) if settings.credentials_keys else None
    upstreams = parse_upstreams(own.proxy_upstreams)
    identity = open_channel(settings.target_of("identity"), token=settings.internal_token, health_checked=True)
    organizations = OrganizationResolver(identity, timeout_seconds=own.proxy_identity_timeout_seconds)
    audit = AuditLog(pool)
    http = UpstreamClients(connect_timeout=own.proxy_connect_timeout_seconds, read_timeout=own.proxy_read_timeout_seconds)
    retention = Retention(
        pool,
        audit_retention_seconds=own.proxy_audit_retention_seconds,
        lookup_window_seconds=own.proxy_failed_lookup_window_seconds,
    )
    forwarder = Forwarder(
        pool,
        keys=keys,
        upstreams=upstreams,
        organizations=organizations,
        resolver=Resolver(),
        verdicts=TtlLru(own.proxy_verdict_cache_size, own.proxy_verdict_cache_seconds),
        audit=audit,
        http=http,
        limits=ForwardLimits(
            max_body_bytes=own.proxy_max_body_bytes,
            body_idle_seconds=own.proxy_read_timeout_seconds,
            failed_lookup_limit=own.proxy_failed_lookup_limit,
            failed_lookup_window_seconds=own.proxy_failed_lookup_window_seconds,
        ),
        internal_token=settings.internal_token,
    )
    servicer = SecretProxyService(pool, keys, upstreams, organizations, forwarder)
    # Tokens from older issuers carry no organisation: the proxy resolves the agent's itself (and
    # refuses when it cannot), so it alone accepts them.
    public_keys = settings.worker_token_public_keys
    worker_tokens = WorkerTokens(parse_public_keys(public_keys), require_organization=False) if public_keys else None
    return ServiceApp(
        registrations=[
            Registration(
                SECRET_PROXY_SERVICE,
                lambda server: secret_proxy_service_pb2_grpc.add_SecretProxyServiceServicer_to_server(servicer, server),
            ),
        ],
        # Stopped in reverse: retention, then the audit writer (which flushes what is left).
        components=[audit, retention],
        closers=[http.aclose, identity.close],
        worker_tokens=worker_tokens,
    )


SERVICE = Service(
    name="secretproxy",
    schema=SCHEMA,
    settings=SecretProxySettings,
    create=create,
    servicers=[(SECRET_PROXY_SERVICE, SecretProxyService)],
)
