"""Hostile input to the run service: deep JSON, forged page tokens, tokens of another listing."""

from __future__ import annotations

import uuid
from datetime import datetime

import grpc
import pytest

from switchboard.shared.errors import field_violations
from switchboard.runs.v1 import run_service_pb2 as pb
from tests.runs.conftest import OPERATOR
from tests.support.page_tokens import assert_hostile_tokens_refused

DEEP = "[" * 5000 + "]" * 5000


async def test_deep_payload_and_result_json_are_invalid_argument(runs, org):
    with pytest.raises(grpc.aio.AioRpcError) as enqueue:
        await runs.stub.EnqueueRun(pb.EnqueueRunRequest(organization_id=org, lane=pb.LANE_ACTION, payload_json=DEEP), metadata=OPERATOR)
    assert enqueue.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(enqueue.value)] == ["payload_json"]
    assert "64 deep" in field_violations(enqueue.value)[0].description

    await runs.enqueue(org)
    claimed = await runs.claim()
    with pytest.raises(grpc.aio.AioRpcError) as complete:
        await runs.stub.CompleteRun(
            pb.CompleteRunRequest(run_id=claimed.id, worker_id="worker-1", attempt=claimed.attempt, result_json='{"a":' * 4000 + "1" + "}" * 4000),
            metadata=OPERATOR,
        )
    assert complete.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(complete.value)] == ["result_json"]
    assert (await runs.stub.GetRun(pb.GetRunRequest(run_id=claimed.id), metadata=OPERATOR)).run.status == pb.RUN_STATUS_RUNNING


async def test_forged_page_tokens_are_invalid_argument_on_list_runs(runs, org):
    await runs.enqueue(org)
    tried = await assert_hostile_tokens_refused(runs.stub.ListRuns, pb.ListRunsRequest(organization_id=org), (datetime, uuid.UUID), OPERATOR)
    assert tried > 20


async def test_a_page_token_is_bound_to_the_filters_of_its_listing(runs, org):
    for _ in range(3):
        await runs.enqueue(org)
    first = await runs.stub.ListRuns(pb.ListRunsRequest(organization_id=org, lanes=[pb.LANE_ACTION], page_size=2), metadata=OPERATOR)
    assert first.next_page_token
    for other in (
        pb.ListRunsRequest(organization_id=org, lanes=[pb.LANE_SYNC], page_token=first.next_page_token),
        pb.ListRunsRequest(organization_id=str(uuid.uuid4()), lanes=[pb.LANE_ACTION], page_token=first.next_page_token),
        pb.ListRunsRequest(organization_id=org, page_token=first.next_page_token),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await runs.stub.ListRuns(other, metadata=OPERATOR)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in field_violations(caught.value)] == ["page_token"]
    # The page size may change between pages (AIP-158); every other field must not.
    rest = await runs.stub.ListRuns(
        pb.ListRunsRequest(organization_id=org, lanes=[pb.LANE_ACTION], page_size=10, page_token=first.next_page_token), metadata=OPERATOR
    )
    assert len(first.runs) + len(rest.runs) == 3 and not rest.next_page_token
    assert not {r.id for r in first.runs} & {r.id for r in rest.runs}


async def test_a_request_that_does_not_decode_is_invalid_argument_not_unknown(runs):
    """Invalid UTF-8 in a proto string field: gRPC alone answers UNKNOWN naming DecodeError."""
    get_run = runs.channel.unary_unary(  # raw bytes on the wire
        "/switchboard.runs.v1.RunService/GetRun", request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_run(b"\x0a\x03\xff\xfe\xfd", metadata=OPERATOR)  # field 1 (run_id), 3 bytes of invalid UTF-8
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(caught.value)] == ["request"]
    assert "DecodeError" not in (caught.value.details() or "")
