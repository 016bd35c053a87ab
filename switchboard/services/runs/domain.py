"""Runs: lanes, statuses, limits, and the errors of the run state machine (no I/O)."""

from __future__ import annotations

from switchboard.shared.errors import DomainError, FailedPrecondition, NotFound
from switchboard.shared.validation import Violations
from switchboard.runs.v1 import run_service_pb2 as pb

# The one list of lanes and of run statuses in Python, each with its proto enum value. The
# migration's CHECKs (switchboard/migrations/runs/0002_runs.sql) and the proto enums (Lane, RunStatus) spell
# them too; tests/runs/test_states.py checks that all three say exactly the same, and that the
# literals in store.py's SQL are among them.
LANES = {
    pb.LANE_SYNC: "sync",
    pb.LANE_ACTION: "action",
    pb.LANE_EMBED_BACKFILL: "embed_backfill",
    pb.LANE_AUTH: "auth",
    pb.LANE_WATCHER: "watcher",
}
LANE_TO_PROTO = {name: value for value, name in LANES.items()}
STATUSES = {
    pb.RUN_STATUS_PENDING: "pending",
    pb.RUN_STATUS_RUNNING: "running",
    pb.RUN_STATUS_COMPLETED: "completed",
    pb.RUN_STATUS_FAILED: "failed",
    pb.RUN_STATUS_CANCELLED: "cancelled",
    pb.RUN_STATUS_TIMEOUT: "timeout",
}
STATUS_TO_PROTO = {name: value for value, name in STATUSES.items()}

MAX_JSON_BYTES = 1 << 20
MAX_TEXT = 255
MAX_ERROR_MESSAGE = 4000
DEFAULT_MAX_ATTEMPTS = 5
RETRY_BACKOFF_BASE_SECONDS = 2.0
RETRY_BACKOFF_MAX_SECONDS = 600.0
# Watcher runs are long: one that never heartbeated is given up after 2 h, one that went silent
# after 3 min.
WATCHER_UNSTARTED_SECONDS = 2 * 3600.0
WATCHER_SILENT_SECONDS = 180.0


def lanes(violations: Violations, field: str, values: list[int], *, empty_means_all: bool) -> list[str] | None:
    """Lane names of the given enum values; every lane (or None) when empty."""
    if not values:
        return list(LANES.values()) if empty_means_all else None
    names = []
    for index, value in enumerate(values):
        if value not in LANES:
            violations.add(f"{field}[{index}]", "must be a LANE_* value other than LANE_UNSPECIFIED")
        else:
            names.append(LANES[value])
    return names


def json_text(violations: Violations, field: str, value: str) -> str:
    """Valid JSON text of at most 1 MiB, bounded in depth; empty means ``{}``."""
    return violations.json(field, value, max_bytes=MAX_JSON_BYTES)


def claim_not_current(run_id: str, row: object | None, worker_id: str, attempt: int) -> DomainError:
    """Why a fenced call changed nothing: the run is unknown (or another organisation's), or the
    caller's claim is no longer the run's current one."""
    if row is None:
        return NotFound(f"run {run_id} does not exist", reason="RUN_NOT_FOUND")
    return FailedPrecondition(
        f"run {run_id} is {row['status']} at attempt {row['attempt']}; the claim of {worker_id!r} at attempt "  # type: ignore[index]
        f"{attempt} is no longer current, so nothing was changed",
        reason="CLAIM_NOT_CURRENT",
        metadata={"status": row["status"], "attempt": str(row["attempt"])},  # type: ignore[index]
    )
