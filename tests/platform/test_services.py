"""Each service's servicers behind the real server: typed stubs work end to end, and an RPC that is
not built yet answers UNIMPLEMENTED (after authentication, never before)."""

from __future__ import annotations

import grpc
import pytest

from services.secretproxy import app as secretproxy_app
from shared.auth import Authenticator, WorkerTokens
from shared.config import Settings
from shared.grpc.server import ServerOptions, ServiceServer
from switchboard.secretproxy.v1 import secret_proxy_service_pb2, secret_proxy_service_pb2_grpc
from tests.conftest import INTERNAL_TOKEN, WORKER_TOKEN_KEY

INTERNAL = (("authorization", f"Bearer {INTERNAL_TOKEN}"),)


async def serve(app_module) -> ServiceServer:
    app = await app_module.create(Settings(worker_token_key=WORKER_TOKEN_KEY), None)
    server = ServiceServer(
        app.registrations,
        ServerOptions(host="127.0.0.1", port=0),
        authenticator=Authenticator(INTERNAL_TOKEN, WorkerTokens(WORKER_TOKEN_KEY)),
    )
    await server.start()
    return server


CASES = [
    (
        secretproxy_app,
        secret_proxy_service_pb2_grpc.SecretProxyServiceStub,
        "ListSecrets",
        secret_proxy_service_pb2.ListSecretsRequest(),
    ),
]


@pytest.mark.parametrize("app_module, stub_class, rpc, request_message", CASES, ids=[c[2] for c in CASES])
async def test_unbuilt_rpcs_answer_unimplemented_to_authenticated_callers(app_module, stub_class, rpc, request_message):
    server = await serve(app_module)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            method = getattr(stub_class(channel), rpc)
            with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
                await method(request_message)
            assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await method(request_message, metadata=INTERNAL)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert f"{rpc} is not implemented yet" in caught.value.details()
    finally:
        await server.stop()


async def test_a_streaming_rpc_not_built_yet_answers_unimplemented():
    server = await serve(secretproxy_app)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = secret_proxy_service_pb2_grpc.SecretProxyServiceStub(channel).Forward(metadata=INTERNAL)
            await call.done_writing()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call.read()
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop()
