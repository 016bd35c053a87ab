"""The secret proxy's own settings: upstreams, timeouts, limits, caches and retention."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.services.secretproxy.upstreams import parse_upstreams
from switchboard.shared.settings import EnvSettings, Prefix, integer, seconds, setting


def _upstreams(raw: str) -> str:
    parse_upstreams(raw)  # raises ValueError naming the bad entry
    return raw.strip()


@dataclass(frozen=True)
class SecretProxySettings(EnvSettings):
    PREFIXES = (Prefix("SWITCHBOARD_PROXY_"),)

    # Upstreams beyond (or overriding) the built-in LLM APIs: a JSON object, see upstreams.py.
    proxy_upstreams: str | None = setting("SWITCHBOARD_PROXY_UPSTREAMS", _upstreams)
    proxy_connect_timeout_seconds: float = setting("SWITCHBOARD_PROXY_CONNECT_TIMEOUT_SECONDS", seconds(0.05, 120), 5.0)
    # Between two pieces of the upstream's response (a streamed answer may take minutes in all).
    proxy_read_timeout_seconds: float = setting("SWITCHBOARD_PROXY_READ_TIMEOUT_SECONDS", seconds(0.05, 3600), 120.0)
    proxy_max_body_bytes: int = setting("SWITCHBOARD_PROXY_MAX_BODY_BYTES", integer(0, 1 << 30), 32 << 20)
    # How long to wait for the identity service when a worker token lacks its organisation.
    proxy_identity_timeout_seconds: float = setting("SWITCHBOARD_PROXY_IDENTITY_TIMEOUT_SECONDS", seconds(0.05, 60), 2.0)
    proxy_audit_retention_seconds: float = setting(
        "SWITCHBOARD_PROXY_AUDIT_RETENTION_SECONDS", seconds(60, 3650 * 86400), 30 * 86400.0
    )
    proxy_verdict_cache_size: int = setting("SWITCHBOARD_PROXY_VERDICT_CACHE_SIZE", integer(0, 10_000_000), 10_000)
    proxy_verdict_cache_seconds: float = setting("SWITCHBOARD_PROXY_VERDICT_CACHE_SECONDS", seconds(0, 86400), 60.0)
    # Sources (worker agents and client addresses) with this many failed placeholder lookups within
    # the window are refused for the rest of it, on every replica.
    proxy_failed_lookup_limit: int = setting("SWITCHBOARD_PROXY_FAILED_LOOKUP_LIMIT", integer(1, 1_000_000), 20)
    proxy_failed_lookup_window_seconds: float = setting(
        "SWITCHBOARD_PROXY_FAILED_LOOKUP_WINDOW_SECONDS", seconds(1, 86400), 300.0
    )
