"""Domain errors and their gRPC status, with rich details (google.rpc.Status).

Domain code raises these; one interceptor turns them into statuses, so servicers never build a
status by hand. Every error carries a stable machine-readable ``reason`` (UPPER_SNAKE, sent as
``google.rpc.ErrorInfo``) and a message a person can act on; INVALID_ARGUMENT also carries
``google.rpc.BadRequest`` field violations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "switchboard"
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (``options[2].label``) and what is wrong with it."""

    field: str
    description: str


class DomainError(Exception):
    """An expected failure with a gRPC code, a stable reason and a message for people."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    default_reason = "UNKNOWN"

    def __init__(self, message: str, *, reason: str | None = None, metadata: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})

    def details(self) -> list[any_pb2.Any]:
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata)
        packed = any_pb2.Any()
        packed.Pack(info)
        return [packed]

    def to_status(self) -> grpc.Status:
        """The status with ``grpc-status-details-bin`` trailing metadata, for ``context.abort``."""
        proto = status_pb2.Status(code=self.code.value[0], message=self.message, details=self.details())
        return rpc_status.to_status(proto)


class InvalidArgument(DomainError):
    """The request is malformed; ``violations`` says which fields and why."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation] | FieldViolation, message: str | None = None):
        self.violations = [violations] if isinstance(violations, FieldViolation) else list(violations)
        if not self.violations:
            raise ValueError("InvalidArgument needs at least one field violation")
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message or f"invalid request: {summary}")

    def details(self) -> list[any_pb2.Any]:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in self.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        return [packed, *super().details()]


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Aborted(DomainError):
    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


def status_details(error: grpc.aio.AioRpcError | grpc.RpcError) -> status_pb2.Status | None:
    """Client side: decode the rich status of a failed call (None when it carries none)."""
    return rpc_status.from_call(error)  # type: ignore[arg-type]


def detail_of(error: grpc.aio.AioRpcError | grpc.RpcError, kind: type[M]) -> M | None:
    """Client side: the first rich-status detail of type ``kind`` (``ErrorInfo``, ``BadRequest``,
    ``RetryInfo``…) a failed call carried, or None. The one decoder of details: the edge and the
    tests read statuses through it."""
    status = status_details(error)
    for detail in status.details if status else []:
        if detail.Is(kind.DESCRIPTOR):
            found = kind()
            detail.Unpack(found)
            return found
    return None


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """Client side: the ErrorInfo (reason, domain, metadata) of a failed call, if it carries one."""
    return detail_of(error, error_details_pb2.ErrorInfo)


def field_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[FieldViolation]:
    """Client side: the BadRequest field violations of a failed call, if any."""
    bad_request = detail_of(error, error_details_pb2.BadRequest)
    return [FieldViolation(v.field, v.description) for v in bad_request.field_violations] if bad_request else []


def reason_of(error: grpc.aio.AioRpcError | grpc.RpcError) -> str:
    """Client side: the ErrorInfo reason of a failed call, or "" when it carries none."""
    info = error_info(error)
    return info.reason if info else ""
