"""The interactions service's gRPC servicers: thin (parse, authorise, call the domain, encode)."""

from __future__ import annotations

from switchboard.interactions.v1 import interaction_service_pb2_grpc


class InteractionService(interaction_service_pb2_grpc.InteractionServiceServicer):
    """switchboard.interactions.v1.InteractionService. RPCs are added here as they are built; the ones not built
    yet are inherited from the generated base and answer UNIMPLEMENTED."""
