"""JSON problem bodies (RFC 9457) for every error the edge answers, and the one mapping from a
failed gRPC call (its status code and ErrorInfo reason) to an HTTP status and problem body."""

from __future__ import annotations

from typing import Any

import grpc
from starlette.responses import JSONResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}
# Any other code (UNKNOWN, INTERNAL, CANCELLED, DATA_LOSS, …) is the service failing: 502.
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
# Statuses whose ErrorInfo reason picks a more precise HTTP status than the code alone.
_BY_REASON = {(grpc.StatusCode.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE"): (413, "the request body is too large")}
_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def problem(status: int, detail: str, *, title: str | None = None, **extra: Any) -> JSONResponse:
    """A problem response: ``type``, ``title``, ``status``, ``detail`` and any ``extra`` members."""
    body = {"type": "about:blank", "title": title or _TITLES.get(status, "Error"), "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE)


def problem_from_status(
    code: grpc.StatusCode, details: str | None, *, reason: str | None = None, peer: str | None = None
) -> JSONResponse:
    """The HTTP answer for a failed call to a service: the mapped status, the service's message and
    ``grpc_status``.

    A route that reads the call's ErrorInfo passes its ``reason`` ("" when it carried none): it goes
    into the body, and may pick a more precise status (BODY_TOO_LARGE: 413). With ``peer`` (the
    service's name for people), a status without a reason is gRPC's own rather than the
    service's refusal (the service is down, a connection broke): its message names internal
    addresses, which are no business of the client, so the answer says only what happened.
    """
    if reason and (code, reason) in _BY_REASON:
        status, fallback = _BY_REASON[code, reason]
        return problem(status, details or fallback, reason=reason)
    status = HTTP_STATUS.get(code, 502)
    if peer is not None and not reason:
        unreachable = code in _UNREACHABLE
        detail = f"{peer} could not be reached; retry shortly" if unreachable else f"{peer} failed; it logged the details"
        return problem(status, detail, grpc_status=code.name)
    extra = {"reason": reason} if reason else {}
    return problem(status, details or code.name, grpc_status=code.name, **extra)


def problem_from_error(error: grpc.aio.AioRpcError, *, reason: str | None = None, peer: str | None = None) -> JSONResponse:
    """:func:`problem_from_status` for a call that raised ``error``."""
    return problem_from_status(error.code(), error.details(), reason=reason, peer=peer)
