"""The secretproxy service's gRPC servicers: thin (parse, authorise, call the domain, encode)."""

from __future__ import annotations

from switchboard.secretproxy.v1 import secret_proxy_service_pb2_grpc


class SecretProxyService(secret_proxy_service_pb2_grpc.SecretProxyServiceServicer):
    """switchboard.secretproxy.v1.SecretProxyService. RPCs are added here as they are built; the ones not built
    yet are inherited from the generated base and answer UNIMPLEMENTED."""
