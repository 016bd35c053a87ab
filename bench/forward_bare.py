"""The floor under SecretProxyService.Forward: a bare grpc.aio server (no interceptors, no work)
that answers the same bidirectional stream with the same three messages (head, one body chunk,
end). The proxy benchmark sets Forward's latency beside it.

    python -m bench.forward_bare --port 9001
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import grpc
import uvloop

from switchboard.secretproxy.v1 import secret_proxy_service_pb2 as pb
from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc

BODY = b'{"object": "list", "data": [{"id": "model-1"}, {"id": "model-2"}]}'


class BareForward(secret_proxy_service_pb2_grpc.SecretProxyServiceServicer):
    async def Forward(self, request_iterator: AsyncIterator[pb.ForwardRequest], context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ForwardResponse]:
        async for _ in request_iterator:
            pass
        yield pb.ForwardResponse(head=pb.ForwardResponseHead(status_code=200))
        yield pb.ForwardResponse(body_chunk=BODY)
        yield pb.ForwardResponse(end=pb.ForwardResponseEnd())


async def serve(port: int) -> None:
    server = grpc.aio.server()
    secret_proxy_service_pb2_grpc.add_SecretProxyServiceServicer_to_server(BareForward(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))
