"""Behind the real server, an RPC that declares no authorization policy (here: the generated base
servicer's, which is not built either) is refused to every caller, after authentication, never
before, and never reaches its handler; unary and streaming alike (fail closed)."""

from __future__ import annotations

import grpc
import pytest

from switchboard.shared.auth import Authenticator
from switchboard.shared.grpc.server import Registration, ServerOptions, ServiceServer
from switchboard.secretproxy.v1 import secret_proxy_service_pb2, secret_proxy_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN
from tests.support.worker_keys import verifier

INTERNAL = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)


async def serve_unbuilt() -> ServiceServer:
    """The SecretProxyService contract with no method built: the generated base servicer."""
    registration = Registration(
        secret_proxy_service_pb2.DESCRIPTOR.services_by_name["SecretProxyService"].full_name,
        lambda server: secret_proxy_service_pb2_grpc.add_SecretProxyServiceServicer_to_server(
            secret_proxy_service_pb2_grpc.SecretProxyServiceServicer(), server
        ),
    )
    server = ServiceServer(
        [registration],
        ServerOptions(host="127.0.0.1", port=0),
        authenticator=Authenticator(INTERNAL_TOKEN, verifier()),
    )
    await server.start()
    return server


CASES = [
    (
        secret_proxy_service_pb2_grpc.SecretProxyServiceStub,
        "ListSecrets",
        secret_proxy_service_pb2.ListSecretsRequest(),
    ),
]


@pytest.mark.parametrize("stub_class, rpc, request_message", CASES, ids=[c[1] for c in CASES])
async def test_rpcs_without_a_policy_are_refused_to_authenticated_callers(stub_class, rpc, request_message):
    server = await serve_unbuilt()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            method = getattr(stub_class(channel), rpc)
            with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
                await method(request_message)
            assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await method(request_message, metadata=INTERNAL)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert f"{rpc} declares no authorization policy" in caught.value.details()
    finally:
        await server.stop()


async def test_a_streaming_rpc_without_a_policy_is_refused():
    server = await serve_unbuilt()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(channel).Forward(metadata=INTERNAL)
            await call.done_writing()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call.read()
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop()
