"""Runs as protobuf messages (for the servicer and the sessions alike)."""

from __future__ import annotations

from switchboard.services.runs import domain, store
from switchboard.shared.messages import timestamp
from switchboard.runs.v1 import run_service_pb2 as pb


def run_message(row: store.Record) -> pb.Run:
    return pb.Run(
        id=str(row["id"]),
        organization_id=str(row["organization_id"]),
        lane=domain.LANE_TO_PROTO[row["lane"]],
        subject_id=row["subject_id"],
        payload_json=row["payload_json"],
        priority=row["priority"],
        status=domain.STATUS_TO_PROTO[row["status"]],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        idempotency_key=row["idempotency_key"] or "",
        run_after=timestamp(row["run_after"]),
        claimed_by=row["claimed_by"] or "",
        claimed_at=timestamp(row["claimed_at"]),
        last_heartbeat_at=timestamp(row["last_heartbeat_at"]),
        cancel_requested=row["cancel_requested"],
        result_json=row["result_json"] or "",
        error_message=row["error_message"] or "",
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
        finished_at=timestamp(row["finished_at"]),
        agent_id=str(row["agent_id"]) if row["agent_id"] else "",
    )
