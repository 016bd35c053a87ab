"""WorkSession's messages from the worker, parsed and checked like the unary calls' fields: the
`open` that starts a session, and the outcomes (complete, fail, release, or several in `reports`).
Every malformed field is named in the InvalidArgument (``open.capacity``,
``reports.fail[2].error_message``…)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard.services.runs import domain, store
from switchboard.shared.errors import FieldViolation, InvalidArgument
from switchboard.shared.validation import Violations
from switchboard.runs.v1 import run_service_pb2 as pb

MAX_CAPACITY = 1000
MAX_REPORTS = 1000
"""Outcomes in one `reports` message at most."""
INVALID_ARGUMENT = 3  # google.rpc.Code values, as acks carry them
UNAVAILABLE = 14


@dataclass(frozen=True)
class Opening:
    """A session's parsed `open`."""

    worker_id: str
    lanes: list[str]
    capacity: int
    held: list[tuple[str, int]]
    batches: bool = False


def parse_open(request: pb.WorkSessionRequest) -> Opening:
    """The session's `open`, checked like ClaimRun's fields. Raises InvalidArgument naming the
    field (``open.capacity``…) when it is malformed or is not the first message."""
    if request.WhichOneof("message") != "open":
        raise InvalidArgument(FieldViolation("open", "the first message of a session must be `open`"))
    opened = request.open
    v = Violations()
    worker_id = v.text("open.worker_id", opened.worker_id, max_length=domain.MAX_TEXT)
    lanes = domain.lanes(v, "open.lanes", list(opened.lanes), empty_means_all=True) or []
    if not 1 <= opened.capacity <= MAX_CAPACITY:
        v.add("open.capacity", f"must be from 1 to {MAX_CAPACITY}")
    if len(opened.held) > 2 * max(opened.capacity, 1):
        v.add("open.held", "must not list more than twice the session's capacity (runs handled, and runs reported but not acknowledged)")
    held = []
    for index, run in enumerate(opened.held[:MAX_CAPACITY]):
        run_id = v.uuid(f"open.held[{index}].run_id", run.run_id)
        if run.attempt < 1:
            v.add(f"open.held[{index}].attempt", "must be the attempt the run was leased with (1 or more)")
        held.append((run_id, run.attempt))
    v.check()
    return Opening(worker_id, lanes, opened.capacity, held, opened.batches)


def parse_outcome(message: Any, kind: str, field: str, worker_id: str, scope: store.Scope) -> store.Outcome:
    """A complete, fail or release (``kind``), checked like CompleteRun's and FailRun's fields.
    Raises InvalidArgument naming the field under ``field`` (``complete.result_json``,
    ``reports.fail[2].error_message``…)."""
    v = Violations()
    run_id = v.uuid(f"{field}.run_id", message.run_id)
    if message.attempt < 1:
        v.add(f"{field}.attempt", "must be the attempt the run was leased with (1 or more)")
    result_json = error_message = None
    retryable = False
    if kind == "complete":
        result_json = domain.json_text(v, f"{field}.result_json", message.result_json)
    elif kind == "fail":
        text = v.document(f"{field}.error_message", message.error_message, max_length=1 << 20, required=True)
        error_message = text.strip()[: domain.MAX_ERROR_MESSAGE]
        retryable = message.retryable
    v.check()
    return store.Outcome(kind, run_id, message.attempt, worker_id, scope, result_json, error_message, retryable)


def reported(request: pb.WorkSessionRequest, kind: str) -> list[tuple[str, str, Any]]:
    """The outcomes one message carries: (kind, field path, message) for each."""
    if kind != "reports":
        return [(kind, kind, getattr(request, kind))]
    reports = request.reports
    if len(reports.complete) + len(reports.fail) + len(reports.release) > MAX_REPORTS:
        raise InvalidArgument(FieldViolation("reports", f"must carry at most {MAX_REPORTS} outcomes"))
    return [
        (name, f"reports.{name}[{index}]", message)
        for name in ("complete", "fail", "release")
        for index, message in enumerate(getattr(reports, name))
    ]
