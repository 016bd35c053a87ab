"""gRPC statuses as HTTP problem responses at the edge."""

from __future__ import annotations

import grpc
from starlette.responses import Response

from services.edge.problems import problem

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def problem_from_status(code: grpc.StatusCode, details: str | None) -> Response:
    """The HTTP answer for a failed call: the mapped status and the service's message."""
    status = HTTP_STATUS.get(code, 502)
    return problem(status, details or code.name, grpc_status=code.name)
