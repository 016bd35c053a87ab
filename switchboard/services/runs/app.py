"""Builds the runs service in the open: pool → metrics → reaper → servicer → registration."""

from __future__ import annotations

import asyncpg
from prometheus_client import CollectorRegistry

from switchboard.services.runs.metrics import RunMetrics
from switchboard.services.runs.reaper import Reaper
from switchboard.services.runs.server import RunService
from switchboard.shared.config import Settings
from switchboard.shared.grpc.server import Registration, ServiceApp
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc

SCHEMA = "runs"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""


async def create(settings: Settings, pool: asyncpg.Pool, *, registry: CollectorRegistry | None = None) -> ServiceApp:
    """The runs service, and its reaper loop (started once the server serves)."""
    metrics = RunMetrics(registry or CollectorRegistry())
    reaper = Reaper(
        pool,
        interval_seconds=settings.runs_reaper_interval_seconds,
        stale_after_seconds=settings.runs_reaper_stale_after_seconds,
        batch_size=settings.runs_reaper_batch_size,
        metrics=metrics,
    )
    servicer = RunService(pool, reaper, metrics)
    return ServiceApp(
        registrations=[
            Registration(
                run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name,
                lambda server: run_service_pb2_grpc.add_RunServiceServicer_to_server(servicer, server),
            )
        ],
        on_start=[reaper.start],
        on_stop=[reaper.stop],
    )
