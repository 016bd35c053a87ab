"""The runs service's gRPC servicers: thin (parse, authorise, call the domain, encode)."""

from __future__ import annotations

from switchboard.runs.v1 import run_service_pb2_grpc


class RunService(run_service_pb2_grpc.RunServiceServicer):
    """switchboard.runs.v1.RunService. RPCs are added here as they are built; the ones not built
    yet are inherited from the generated base and answer UNIMPLEMENTED."""
