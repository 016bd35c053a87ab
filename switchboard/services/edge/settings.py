"""The edge's own settings (its port and the services' targets are the platform's topology)."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.shared.settings import EnvSettings, Prefix, integer, setting


@dataclass(frozen=True)
class EdgeSettings(EnvSettings):
    PREFIXES = (Prefix("SWITCHBOARD_EDGE_"),)

    edge_max_body_bytes: int = setting("SWITCHBOARD_EDGE_MAX_BODY_BYTES", integer(1024, 64 << 20), 1 << 20)
