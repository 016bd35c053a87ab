"""The Switchboard worker library: a worker process's session with the runs service, and the
tools its handlers use (publishing to its agent's stream, the secret proxy, subscriptions).

Needs only grpcio, protobuf and httpx: nothing of the server's dependencies.
"""

from __future__ import annotations

from switchboard.worker.context import RunContext, WorkerTools
from switchboard.worker.publisher import PublishInterrupted, PublishRefused
from switchboard.worker.session import Retryable, Worker, WorkerStopped

__all__ = ["PublishInterrupted", "PublishRefused", "Retryable", "RunContext", "Worker", "WorkerStopped", "WorkerTools"]
