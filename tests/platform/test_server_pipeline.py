"""The gRPC server plumbing through real channels: authentication before any handler, error
mapping with rich details, default deadlines, request logging, health, reflection, draining."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from switchboard.shared.auth import Authenticator
from switchboard.shared.errors import field_violations, status_details
from switchboard.shared.grpc.server import ServerOptions, ServiceServer
from switchboard.shared.logs import capture_log_lines
from tests.conftest import INTERNAL_TOKEN
from tests.platform.probe import SERVICE, Probe
from tests.support.worker_keys import ISSUER, stranger, verifier

INTERNAL = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)


async def start_server(probe: Probe, **options: float) -> ServiceServer:
    server = ServiceServer(
        [probe.registration()],
        ServerOptions(host="127.0.0.1", port=0, **options),
        authenticator=Authenticator(INTERNAL_TOKEN, verifier()),
    )
    await server.start()
    return server


@pytest.fixture
async def probe() -> Probe:
    return Probe()


@pytest.fixture
async def server(probe: Probe) -> AsyncIterator[ServiceServer]:
    server = await start_server(probe, default_deadline_seconds=0.5, shutdown_grace_seconds=5)
    yield server
    await server.stop()


@pytest.fixture
async def channel(server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


def unary(channel: grpc.aio.Channel, name: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(f"/{SERVICE}/{name}")


def worker_token(*, ttl: timedelta = timedelta(minutes=5), now: datetime | None = None) -> str:
    return ISSUER.issue(organization_id="0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11", agent_id="2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33", connection_id=None, ttl=ttl, now=now).token


async def test_internal_token_reaches_the_handler_with_the_acting_user(channel, probe):
    user = "6f1b2c9e-8a44-4c1e-9d1a-0b7d4f3e2a11"
    reply = await unary(channel, "WhoAmI")(b"", metadata=(*INTERNAL, ("x-switchboard-user-id", user)))
    assert reply == f"internal:{user}".encode()


async def test_worker_token_reaches_the_handler_with_its_organisation(channel):
    reply = await unary(channel, "WhoAmI")(b"", metadata=(("authorization", f"Bearer {worker_token()}"),))
    assert reply == b"worker:0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11:2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33"


async def logged(logs, event: str, count: int = 1) -> None:
    """Wait (bounded) until the captured log holds ``count`` lines of ``event``."""
    async with asyncio.timeout(5):
        while logs.getvalue().count(f'"event": "{event}"') < count:
            await asyncio.sleep(0.005)


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param((), id="no-token"),
        pytest.param((("authorization", "Bearer not-the-internal-token-" + "z" * 20),), id="wrong-token"),
        pytest.param((("authorization", f"Basic {INTERNAL_TOKEN}"),), id="wrong-scheme"),
        pytest.param((("authorization", f"Bearer {worker_token()[:-3]}AAA"),), id="tampered-worker-token"),
        pytest.param(
            (("authorization", f"Bearer {worker_token(ttl=timedelta(minutes=1), now=datetime.now(UTC) - timedelta(hours=1))}"),),
            id="expired-worker-token",
        ),
        pytest.param(
            (("authorization", f"Bearer {stranger().issue(organization_id='0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11', agent_id='2e7c3f6a-8b3d-4e3a-9f3c-2d9f6b5a4c33', connection_id=None, ttl=timedelta(minutes=5)).token}"),),
            id="worker-token-of-another-key",
        ),
    ],
)
async def test_bad_credentials_are_refused_before_the_handler_and_never_logged(channel, probe, metadata):
    with capture_log_lines() as logs:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unary(channel, "Echo")(b"hello", metadata=metadata)
        await logged(logs, "rpc_finished")  # the server writes it just after the client has its answer
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert probe.calls == 0
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    finished = [line for line in lines if line["event"] == "rpc_finished"]
    assert len(finished) == 1 and finished[0]["status"] == "UNAUTHENTICATED"
    for _, value in metadata:
        token = value.split(" ", 1)[1]
        assert token not in logs.getvalue()
        assert token[:16] not in logs.getvalue()
        assert token not in (caught.value.details() or "")


async def test_a_worker_cannot_name_an_acting_user(channel):
    metadata = (("authorization", f"Bearer {worker_token()}"), ("x-switchboard-user-id", "6f1b2c9e-8a44-4c1e-9d1a-0b7d4f3e2a11"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "WhoAmI")(b"", metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_malformed_acting_user_is_invalid_argument_with_a_field_violation(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "WhoAmI")(b"", metadata=(*INTERNAL, ("x-switchboard-user-id", "bob")))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(caught.value)] == ["x-switchboard-user-id"]


async def test_invalid_argument_carries_bad_request_field_violations(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Invalid")(b"", metadata=INTERNAL)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name: must not be empty" in caught.value.details()
    assert [(v.field, v.description) for v in field_violations(caught.value)] == [
        ("name", "must not be empty"),
        ("options[1].id", "duplicate"),
    ]


async def test_domain_errors_carry_error_info_with_a_stable_reason(channel):
    from google.rpc import error_details_pb2

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "NotFound")(b"", metadata=INTERNAL)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    status = status_details(caught.value)
    info = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == ("ORGANIZATION_NOT_FOUND", "switchboard", {"organization_id": "7d0e"})


async def test_unexpected_exceptions_become_internal_with_a_fixed_message(channel):
    with capture_log_lines() as logs:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unary(channel, "Crash")(b"", metadata=INTERNAL)
        await logged(logs, "rpc_finished")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in caught.value.details()
    request_id = dict(caught.value.trailing_metadata())["x-request-id"]
    errors = [json.loads(line) for line in logs.getvalue().splitlines() if "rpc_unexpected_error" in line]
    assert errors and errors[0]["request_id"] == request_id and "hunter2" in errors[0]["exception"]


async def test_calls_without_a_deadline_get_the_default_one(channel, probe):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, "Hold")(b"", metadata=INTERNAL)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "default deadline of 0.5 s" in caught.value.details()


async def test_request_log_line_names_service_method_status_duration_request_id_and_org(channel):
    with capture_log_lines() as logs:
        await unary(channel, "Echo")(b"x", metadata=(*INTERNAL, ("x-request-id", "req-123")))
        await unary(channel, "WhoAmI")(b"", metadata=(("authorization", f"Bearer {worker_token()}"),))
        await logged(logs, "rpc_finished", count=2)
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if '"rpc_finished"' in line]
    echo, who = lines
    assert echo["service"] == SERVICE and echo["method"] == f"/{SERVICE}/Echo"
    assert echo["status"] == "OK" and echo["request_id"] == "req-123" and echo["duration_ms"] >= 0
    assert who["organization_id"] == "0c5a1d4e-6f1b-4c1e-9d1a-0b7d4f3e2a11" and who["method"].endswith("/WhoAmI")


async def test_server_streams_pass_through_the_pipeline(channel):
    call = channel.unary_stream(f"/{SERVICE}/Count")(b"4", metadata=INTERNAL)
    assert [item async for item in call] == [b"0", b"1", b"2", b"3"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [item async for item in channel.unary_stream(f"/{SERVICE}/Count")(b"4")]
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_stream_the_client_abandons_is_closed_at_once_and_counted_cancelled(server, channel, probe):
    call = channel.unary_stream(f"/{SERVICE}/Forever")(b"", metadata=INTERNAL)
    assert await call.read() == b"tick"
    call.cancel()
    await asyncio.wait_for(probe.stream_closed.wait(), 10)  # the handler's finally ran
    text = server.metrics.render().decode()
    assert f'grpc_code="CANCELLED",grpc_method="Forever",grpc_service="{SERVICE}"}} 1.0' in text


async def test_metrics_count_rpcs_by_method_and_code(server, channel):
    await unary(channel, "Echo")(b"x", metadata=INTERNAL)
    with pytest.raises(grpc.aio.AioRpcError):
        await unary(channel, "Echo")(b"x")
    expected = [
        f'grpc_code="OK",grpc_method="Echo",grpc_service="{SERVICE}"}} 1.0',
        f'grpc_code="UNAUTHENTICATED",grpc_method="Echo",grpc_service="{SERVICE}"}} 1.0',
    ]
    # The server counts a call just after the client has its answer: wait (bounded) for both.
    async with asyncio.timeout(5):
        while not all(line in server.metrics.render().decode() for line in expected):
            await asyncio.sleep(0.005)


async def test_health_and_reflection_need_no_token(channel):
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = [r async for r in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_drain_reports_not_serving_lets_in_flight_calls_finish_and_refuses_new_ones(probe):
    server = await start_server(probe, shutdown_grace_seconds=10)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        in_flight = asyncio.ensure_future(unary(channel, "Hold")(b"", metadata=INTERNAL, timeout=30))
        await probe.entered.wait()

        stopping = asyncio.ensure_future(server.stop())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await watch.read() is grpc.aio.EOF  # the watch ends so it cannot hold up the stop
        assert not stopping.done() and not in_flight.done()

        probe.release.set()
        assert await in_flight == b"released"
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unary(channel, "Echo")(b"x", metadata=INTERNAL, timeout=2)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
