"""The Switchboard worker library: a worker process's session with the runs service, and the
tools its handlers use (publishing to its agent's stream, the secret proxy, subscriptions).

Needs only grpcio, protobuf and httpx: nothing of the server's dependencies.
"""

from __future__ import annotations

from typing import Any

from switchboard.worker.session import Retryable, Worker, WorkerStopped

__all__ = ["Retryable", "RunContext", "Worker", "WorkerStopped", "WorkerTools"]


def __getattr__(name: str) -> Any:
    # The handlers' tools live in switchboard.worker.context; imported on first use.
    if name in ("RunContext", "WorkerTools"):
        from switchboard.worker import context

        return getattr(context, name)
    raise AttributeError(name)
