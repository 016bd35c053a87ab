"""Builds the interactions service in the open: pool → stream hub → servicers → registrations."""

from __future__ import annotations

import asyncpg
import httpx
from prometheus_client import CollectorRegistry

from switchboard.services.interactions.cards import CardEdits
from switchboard.services.interactions.event_server import EventService
from switchboard.services.interactions.events import SubscriberLimits
from switchboard.services.interactions.hub import StreamHub
from switchboard.services.interactions.retention import Retention
from switchboard.services.interactions.server import InteractionService
from switchboard.services.interactions.settings import InteractionsSettings
from switchboard.services.interactions.sweeper import QuestionSweeper
from switchboard.shared.config import ConfigError, Settings
from switchboard.shared.crypto import KeyRing
from switchboard.shared.db import database_for
from switchboard.shared.grpc.server import Registration
from switchboard.shared.service import Service, ServiceApp
from switchboard.interactions.v1 import (
    event_service_pb2,
    event_service_pb2_grpc,
    interaction_service_pb2,
    interaction_service_pb2_grpc,
)

SCHEMA = "interactions"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""
INTERACTION_SERVICE = interaction_service_pb2.DESCRIPTOR.services_by_name["InteractionService"].full_name
EVENT_SERVICE = event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name


async def create(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    own: InteractionsSettings | None = None,
    registry: CollectorRegistry | None = None,
) -> ServiceApp:
    """The interactions service, its stream hub (one listening connection) and maintenance loops."""
    own = own or InteractionsSettings()
    hub = StreamHub(
        pool, _listen_url(settings), poll_seconds=own.events_poll_seconds, max_lag=own.events_max_lag, registry=registry
    )
    retention = Retention(pool, keep_last=own.events_retention_count, max_age_seconds=own.events_retention_seconds)
    sweeper = QuestionSweeper(pool)
    http = httpx.AsyncClient()
    keys = KeyRing(settings.credentials_keys) if settings.credentials_keys else None
    card_edits = CardEdits()
    interactions = InteractionService(pool, keys, http, card_edits)
    event_service = EventService(
        pool,
        hub,
        SubscriberLimits(
            own.events_max_subscribers,
            own.events_max_subscribers_per_stream,
            own.events_max_subscribers_per_organization,
            own.events_max_subscribers_per_agent,
            own.events_max_subscribers_per_user,
        ),
    )
    return ServiceApp(
        registrations=[
            Registration(
                INTERACTION_SERVICE,
                lambda server: interaction_service_pb2_grpc.add_InteractionServiceServicer_to_server(interactions, server),
            ),
            Registration(
                EVENT_SERVICE, lambda server: event_service_pb2_grpc.add_EventServiceServicer_to_server(event_service, server)
            ),
        ],
        # Stopped in reverse: the loops, then the hub, then pending card edits (before their client
        # closes). Draining ends subscriptions and publish streams early.
        components=[card_edits, hub, event_service.publishers, retention, sweeper],
        closers=[http.aclose],
    )


def _listen_url(settings: Settings) -> str:
    """Where the hub LISTENs: a session of its own, so the direct URL, never a transaction pooler.
    Empty when the pool came without a URL (some tests): the hub then wakes by polling alone."""
    try:
        return database_for(settings, SCHEMA).session_url
    except ConfigError:
        return ""


SERVICE = Service(
    name="interactions",
    schema=SCHEMA,
    settings=InteractionsSettings,
    create=create,
    servicers=[(INTERACTION_SERVICE, InteractionService), (EVENT_SERVICE, EventService)],
)
