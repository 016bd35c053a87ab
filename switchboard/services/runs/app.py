"""Builds the runs service in the open: pool → metrics → reaper → servicer → registration."""

from __future__ import annotations

import asyncpg
from prometheus_client import CollectorRegistry

from switchboard.services.runs.metrics import RunMetrics
from switchboard.services.runs.reaper import Reaper
from switchboard.services.runs.server import RunService
from switchboard.services.runs.settings import RunsSettings
from switchboard.shared.config import Settings
from switchboard.shared.grpc.server import Registration
from switchboard.shared.service import Service, ServiceApp
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc

SCHEMA = "runs"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""
RUN_SERVICE = run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name


async def create(
    settings: Settings, pool: asyncpg.Pool, *, own: RunsSettings | None = None, registry: CollectorRegistry | None = None
) -> ServiceApp:
    """The runs service, and its reaper loop (started once the server serves)."""
    own = own or RunsSettings()
    metrics = RunMetrics(registry or CollectorRegistry())
    reaper = Reaper(
        pool,
        interval_seconds=own.runs_reaper_interval_seconds,
        stale_after_seconds=own.runs_reaper_stale_after_seconds,
        batch_size=own.runs_reaper_batch_size,
        metrics=metrics,
    )
    servicer = RunService(pool, reaper, metrics)
    return ServiceApp(
        registrations=[
            Registration(RUN_SERVICE, lambda server: run_service_pb2_grpc.add_RunServiceServicer_to_server(servicer, server))
        ],
        components=[reaper],
    )


SERVICE = Service(name="runs", schema=SCHEMA, settings=RunsSettings, create=create, servicers=[(RUN_SERVICE, RunService)])
