"""The worker library: what a worker process needs, importable without the server's dependencies
(grpcio, protobuf and httpx only)."""

from switchboard.worker.context import RunContext, WorkerTools
from switchboard.worker.publisher import PublishInterrupted, PublishRefused

__all__ = ["PublishInterrupted", "PublishRefused", "RunContext", "WorkerTools"]
