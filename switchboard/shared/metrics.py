"""Prometheus metrics of a process: RPC counts and latencies by method and code.

Each process has its own registry (not the client library's global one), so tests and several
servers in one process do not collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RpcMetrics:
    """Counters and latency histograms of the RPCs a server handled."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self._handled = Counter(
            "switchboard_grpc_server_handled",
            "RPCs completed by the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "switchboard_grpc_server_handling_seconds",
            "Time from receiving an RPC to its status, by method.",
            ["grpc_service", "grpc_method"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        # Label lookups hash and lock; cache the children since the label sets are few and fixed.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def observe(self, service: str, method: str, code: str, seconds: float) -> None:
        key = (service, method, code)
        children = self._children.get(key)
        if children is None:
            children = (self._handled.labels(service, method, code), self._latency.labels(service, method))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> None:
        """Expose ``/metrics`` on ``host:port`` from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
