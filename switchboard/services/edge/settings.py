"""The edge's own settings (its port and the services' targets are the platform's topology)."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.shared.settings import EnvSettings, Prefix, integer, setting


@dataclass(frozen=True)
class EdgeSettings(EnvSettings):
    PREFIXES = (Prefix("SWITCHBOARD_EDGE_"),)

    edge_max_body_bytes: int = setting("SWITCHBOARD_EDGE_MAX_BODY_BYTES", integer(1024, 64 << 20), 1 << 20)
    # SSE clients fed from this edge's one upstream subscription per stream hold their slot here
    # (the service sees one subscription per stream and edge): the same fair shares per process.
    edge_sse_max_clients: int = setting("SWITCHBOARD_EDGE_SSE_MAX_CLIENTS", integer(1, 1_000_000), 1000)
    edge_sse_max_clients_per_stream: int = setting("SWITCHBOARD_EDGE_SSE_MAX_CLIENTS_PER_STREAM", integer(1, 1_000_000), 16)
    edge_sse_max_clients_per_organization: int = setting(
        "SWITCHBOARD_EDGE_SSE_MAX_CLIENTS_PER_ORGANIZATION", integer(1, 1_000_000), 200
    )
    edge_sse_max_clients_per_agent: int = setting("SWITCHBOARD_EDGE_SSE_MAX_CLIENTS_PER_AGENT", integer(1, 1_000_000), 64)
