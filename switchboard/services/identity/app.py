"""Builds the identity service in the open: pool → bot users → servicers → registrations."""

from __future__ import annotations

import functools

import asyncpg
import httpx
from prometheus_client import CollectorRegistry

from switchboard.services.identity import access, tokens
from switchboard.services.identity.agent_server import AgentService
from switchboard.services.identity.bots import BotUsers, GoTrueBotUsers, LocalBotUsers
from switchboard.services.identity.gotrue import GoTrueAdmin
from switchboard.services.identity.server import IdentityService
from switchboard.services.identity.settings import IdentitySettings
from switchboard.shared.config import Settings
from switchboard.shared.grpc.server import Registration
from switchboard.shared.service import Service, ServiceApp
from switchboard.identity.v1 import agent_service_pb2, agent_service_pb2_grpc, identity_service_pb2, identity_service_pb2_grpc

SCHEMA = "identity"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""
IDENTITY_SERVICE = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
AGENT_SERVICE = agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name


def bot_users_from(own: IdentitySettings, http: httpx.AsyncClient) -> BotUsers:
    """Local bot users, or GoTrue ones when SWITCHBOARD_IDP=gotrue (configuration problems are
    reported when a bot is provisioned, naming the missing variable)."""
    if own.idp != "gotrue":
        return LocalBotUsers(own.support_bot_email_domain)
    required = {"SUPABASE_URL": own.supabase_url, "SUPABASE_SERVICE_ROLE_KEY": own.supabase_service_role_key}
    missing = [name for name, value in required.items() if not value]
    admin = None
    if not missing:
        assert own.supabase_url and own.supabase_service_role_key
        admin = GoTrueAdmin(own.supabase_url, own.supabase_service_role_key, http, own.idp_timeout_seconds)
    return GoTrueBotUsers(admin, own.support_bot_email_domain, missing)


async def create(
    settings: Settings, pool: asyncpg.Pool, *, own: IdentitySettings | None = None, registry: CollectorRegistry | None = None
) -> ServiceApp:
    """The identity service's servicers, ready to be served."""
    own = own or IdentitySettings()
    issuer = tokens.issuer_from(settings)  # identity alone holds the private key
    http = httpx.AsyncClient()
    identity = IdentityService(pool, issuer, bot_users_from(own, http))
    agents = AgentService(pool)
    return ServiceApp(
        registrations=[
            Registration(
                IDENTITY_SERVICE,
                lambda server: identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server),
            ),
            Registration(AGENT_SERVICE, lambda server: agent_service_pb2_grpc.add_AgentServiceServicer_to_server(agents, server)),
        ],
        closers=[http.aclose],
        # The identity service owns the revocations: it reads them from its own tables.
        revocations=functools.partial(tokens.fetch_revocations, pool),
        # Identity answers for roles itself, from its own tables.
        memberships=access.LocalMemberships(pool),
    )


SERVICE = Service(
    name="identity",
    schema=SCHEMA,
    settings=IdentitySettings,
    create=create,
    servicers=[(IDENTITY_SERVICE, IdentityService), (AGENT_SERVICE, AgentService)],
)
