"""Builds the runs service in the open: pool → metrics → reaper → servicer → registration."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from prometheus_client import CollectorRegistry

from switchboard.services.runs.metrics import RunMetrics
from switchboard.services.runs.outcomes import OutcomeFlusher
from switchboard.services.runs.reaper import Reaper
from switchboard.services.runs.server import RunService
from switchboard.services.runs.sessions import SessionHub
from switchboard.services.runs.settings import RunsSettings
from switchboard.shared.config import Settings
from switchboard.shared.grpc.server import Registration
from switchboard.shared.service import Service, ServiceApp
from switchboard.runs.v1 import run_service_pb2, run_service_pb2_grpc

SCHEMA = "runs"
"""The PostgreSQL schema this service owns (and the folder of its migrations)."""
RUN_SERVICE = run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name


def session_heartbeat_seconds(stale_after_seconds: float) -> float:
    """How often sessions heartbeat their runs: a quarter of the reaper's threshold (so that three
    beats may be lost before a live worker's run is reaped), at most every 15 s."""
    return min(stale_after_seconds / 4, 15.0)


@dataclass(frozen=True)
class RunsParts:
    """The service as served, and the parts of it tests and benchmarks look into."""

    app: ServiceApp
    sessions: SessionHub
    flusher: OutcomeFlusher
    reaper: Reaper


async def create(
    settings: Settings, pool: asyncpg.Pool, *, own: RunsSettings | None = None, registry: CollectorRegistry | None = None
) -> ServiceApp:
    """The runs service, its reaper loop and its worker sessions' shared loops (started once the
    server serves; sessions are told to go elsewhere when it drains)."""
    return (await assemble(settings, pool, own=own, registry=registry)).app


async def assemble(
    settings: Settings, pool: asyncpg.Pool, *, own: RunsSettings | None = None, registry: CollectorRegistry | None = None
) -> RunsParts:
    """``create``, keeping hold of the parts."""
    own = own or RunsSettings()
    metrics = RunMetrics(registry or CollectorRegistry())
    reaper = Reaper(
        pool,
        interval_seconds=own.runs_reaper_interval_seconds,
        stale_after_seconds=own.runs_reaper_stale_after_seconds,
        batch_size=own.runs_reaper_batch_size,
        metrics=metrics,
    )
    flusher = OutcomeFlusher(pool, metrics)
    sessions = SessionHub(
        pool,
        settings.database_url or "",
        flusher,
        metrics,
        heartbeat_seconds=session_heartbeat_seconds(own.runs_reaper_stale_after_seconds),
    )
    servicer = RunService(pool, reaper, metrics, sessions)
    app = ServiceApp(
        registrations=[
            Registration(RUN_SERVICE, lambda server: run_service_pb2_grpc.add_RunServiceServicer_to_server(servicer, server))
        ],
        components=[reaper, sessions],
    )
    return RunsParts(app, sessions, flusher, reaper)


SERVICE = Service(name="runs", schema=SCHEMA, settings=RunsSettings, create=create, servicers=[(RUN_SERVICE, RunService)])
