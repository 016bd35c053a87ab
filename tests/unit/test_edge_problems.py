"""The edge's one mapping from a failed call (gRPC code, ErrorInfo reason) to an HTTP problem:
every code's status, the reason that picks a more precise one, and the hiding of gRPC's own
messages on the proxy route; and the client-side decoder of status details it reads them with."""

from __future__ import annotations

import json
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2

from switchboard.services.edge.problems import problem_from_status
from switchboard.shared.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    detail_of,
    error_info,
    field_violations,
    reason_of,
)

C = grpc.StatusCode
EXPECTED_STATUS = {
    C.INVALID_ARGUMENT: 400, C.OUT_OF_RANGE: 400, C.UNAUTHENTICATED: 401, C.PERMISSION_DENIED: 403,
    C.NOT_FOUND: 404, C.ALREADY_EXISTS: 409, C.ABORTED: 409, C.FAILED_PRECONDITION: 412,
    C.RESOURCE_EXHAUSTED: 429, C.UNIMPLEMENTED: 501, C.UNAVAILABLE: 503, C.DEADLINE_EXCEEDED: 504,
    C.UNKNOWN: 502, C.INTERNAL: 502, C.CANCELLED: 502, C.DATA_LOSS: 502,
}  # fmt: skip


def body(response) -> dict:
    assert response.media_type == "application/problem+json"
    return json.loads(response.body)


@pytest.mark.parametrize("code", list(EXPECTED_STATUS))
def test_a_services_refusal_keeps_its_message_under_the_mapped_status(code):
    response = problem_from_status(code, "what went wrong")
    assert response.status_code == EXPECTED_STATUS[code]
    assert body(response) == {
        "type": "about:blank", "title": body(response)["title"], "status": EXPECTED_STATUS[code],
        "detail": "what went wrong", "grpc_status": code.name,
    }  # fmt: skip


def test_a_refusal_without_a_message_names_its_code():
    assert body(problem_from_status(C.NOT_FOUND, ""))["detail"] == "NOT_FOUND"
    assert body(problem_from_status(C.NOT_FOUND, None))["detail"] == "NOT_FOUND"


def test_a_reason_goes_into_the_body():
    answer = body(problem_from_status(C.PERMISSION_DENIED, "not yours", reason="EGRESS_DENIED", peer="the secret proxy"))
    assert (answer["status"], answer["detail"], answer["grpc_status"], answer["reason"]) == (403, "not yours", "PERMISSION_DENIED", "EGRESS_DENIED")


def test_body_too_large_is_413_not_429():
    response = problem_from_status(C.RESOURCE_EXHAUSTED, "at most 10 bytes", reason="BODY_TOO_LARGE", peer="the secret proxy")
    assert response.status_code == 413
    assert body(response) == {
        "type": "about:blank", "title": "Request body too large", "status": 413, "detail": "at most 10 bytes", "reason": "BODY_TOO_LARGE",
    }  # fmt: skip
    assert body(problem_from_status(C.RESOURCE_EXHAUSTED, "", reason="BODY_TOO_LARGE"))["detail"] == "the request body is too large"
    assert problem_from_status(C.RESOURCE_EXHAUSTED, "slow down", reason="TOO_MANY_FAILED_LOOKUPS").status_code == 429


@pytest.mark.parametrize(
    ("code", "status", "detail"),
    [
        (C.UNAVAILABLE, 503, "the secret proxy could not be reached; retry shortly"),
        (C.DEADLINE_EXCEEDED, 504, "the secret proxy could not be reached; retry shortly"),
        (C.INTERNAL, 502, "the secret proxy failed; it logged the details"),
        (C.CANCELLED, 502, "the secret proxy failed; it logged the details"),
    ],
)
def test_grpcs_own_failures_do_not_show_their_message_on_a_route_that_hides_them(code, status, detail):
    leaky = "failed to connect to all addresses; last error: ipv4:10.0.0.7:50053: Connection refused"
    answer = body(problem_from_status(code, leaky, reason="", peer="the secret proxy"))
    assert answer == {"type": "about:blank", "title": answer["title"], "status": status, "detail": detail, "grpc_status": code.name}


@dataclass
class _Status:
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple = ()


class _Failed(grpc.RpcError):
    """A failed call as a client sees it: code, message and trailing metadata."""

    def __init__(self, status: grpc.Status | _Status):
        self._status = status

    def code(self):
        return self._status.code

    def details(self):
        return self._status.details

    def trailing_metadata(self):
        return self._status.trailing_metadata


def test_the_decoder_reads_reason_metadata_and_violations_of_a_domain_error():
    failed = _Failed(NotFound("no such stream", reason="STREAM_NOT_FOUND", metadata={"stream": "s"}).to_status())
    info = error_info(failed)
    assert (info.reason, info.domain, dict(info.metadata)) == ("STREAM_NOT_FOUND", "switchboard", {"stream": "s"})
    assert reason_of(failed) == "STREAM_NOT_FOUND" and field_violations(failed) == []
    invalid = _Failed(InvalidArgument([FieldViolation("a", "bad"), FieldViolation("b[0]", "worse")]).to_status())
    assert field_violations(invalid) == [FieldViolation("a", "bad"), FieldViolation("b[0]", "worse")]
    assert reason_of(invalid) == "INVALID_ARGUMENT"
    assert detail_of(_Failed(ResourceExhausted("x").to_status()), error_details_pb2.RetryInfo) is None


def test_a_status_without_details_decodes_to_nothing():
    bare = _Failed(_Status(C.UNAVAILABLE, "gone"))
    assert (reason_of(bare), error_info(bare), field_violations(bare)) == ("", None, [])
