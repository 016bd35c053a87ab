"""Process configuration from environment variables: one typed, immutable settings object.

Every variable the process understands is declared once below with its parser and default. A
variable with the ``SWITCHBOARD_`` prefix that is not declared is an error (a typo should stop the
process at start, not be silently ignored), and so is a value that does not parse; all problems
are reported together in one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "SWITCHBOARD_"

SERVICES = ("identity", "interactions", "secretproxy", "runs")
"""The gRPC services, in start order. Each owns the PostgreSQL schema of the same name."""

DEFAULT_PORTS = {"identity": 50051, "interactions": 50052, "secretproxy": 50053, "runs": 50054}
DEFAULT_EDGE_PORT = 8080


class ConfigError(Exception):
    """The environment does not describe a valid configuration; the message lists every problem."""


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected seconds from {low:g} to {high:g}, got {value:g}")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def _non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _secret(min_length: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if len(value) < min_length:
            # Never echo the value: it is a secret, and error messages end up in logs.
            raise ValueError(f"must be at least {min_length} characters long")
        return value

    return parse


def _database_url(raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("expected a postgresql:// URL")
    return value


def _key_list(raw: str) -> str:
    from switchboard.shared.crypto import KeyRing

    try:
        KeyRing(raw)
    except ValueError as exc:
        # The message names the key id and the problem, never key material.
        raise ValueError(str(exc)) from None
    return raw.strip()


def _worker_signing_key(raw: str) -> str:
    from switchboard.shared.worker_keys import parse_signing_key

    parse_signing_key(raw)  # raises ValueError naming the key id and the problem, never the key
    return raw.strip()


def _worker_public_keys(raw: str) -> str:
    from switchboard.shared.worker_keys import parse_public_keys

    parse_public_keys(raw)
    return raw.strip()


def _http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {raw!r}")
    return value


def _domain(raw: str) -> str:
    value = raw.strip().lower()
    if not value or not all(part and part.replace("-", "").isalnum() for part in value.split(".")):
        raise ValueError(f"expected a domain name, got {raw!r}")
    return value


def _proxy_upstreams(raw: str) -> str:
    from switchboard.services.secretproxy.upstreams import parse_upstreams

    parse_upstreams(raw)  # raises ValueError naming the bad entry
    return raw.strip()


_PORT = _integer(0, 65535)


def _env(name: str, parse: Callable[[str], Any], default: Any = None, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": name, "parse": parse}, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Everything a Switchboard process reads from its environment.

    Attributes map one-to-one to environment variables (see ``env_names()``); ``None`` means
    unset. Secrets are excluded from ``repr`` so that logging a Settings object leaks nothing.
    """

    database_url: str | None = _env("DATABASE_URL", _database_url, secret=True)
    # -- where each context's data lives (issue 17; resolved in one place: shared/db.py database_for) --
    # "transaction": DATABASE_URL (and each context's URL) goes through a transaction pooler such as
    # PgBouncer (pool_mode=transaction): no statement cache, no session state through it, and what
    # needs a session (LISTEN, the migrations' lock) goes to the *_DIRECT_URL instead.
    database_pooler: str = _env("SWITCHBOARD_DATABASE_POOLER", _choice("none", "transaction"), "none")
    database_direct_url: str | None = _env("SWITCHBOARD_DATABASE_DIRECT_URL", _database_url, secret=True)
    # A context's own database (its own server, if wanted), overriding DATABASE_URL for that context.
    identity_database_url: str | None = _env("SWITCHBOARD_IDENTITY_DATABASE_URL", _database_url, secret=True)
    identity_database_direct_url: str | None = _env("SWITCHBOARD_IDENTITY_DATABASE_DIRECT_URL", _database_url, secret=True)
    interactions_database_url: str | None = _env("SWITCHBOARD_INTERACTIONS_DATABASE_URL", _database_url, secret=True)
    interactions_database_direct_url: str | None = _env(
        "SWITCHBOARD_INTERACTIONS_DATABASE_DIRECT_URL", _database_url, secret=True
    )
    secretproxy_database_url: str | None = _env("SWITCHBOARD_SECRETPROXY_DATABASE_URL", _database_url, secret=True)
    secretproxy_database_direct_url: str | None = _env(
        "SWITCHBOARD_SECRETPROXY_DATABASE_DIRECT_URL", _database_url, secret=True
    )
    runs_database_url: str | None = _env("SWITCHBOARD_RUNS_DATABASE_URL", _database_url, secret=True)
    runs_database_direct_url: str | None = _env("SWITCHBOARD_RUNS_DATABASE_DIRECT_URL", _database_url, secret=True)
    # -- end of issue 17's database settings --
    data_dir: Path = _env("SWITCHBOARD_DATA_DIR", lambda raw: Path(_non_empty(raw)), Path(".switchboard"))
    bind_host: str = _env("SWITCHBOARD_BIND_HOST", _non_empty, "127.0.0.1")
    identity_port: int = _env("SWITCHBOARD_IDENTITY_PORT", _PORT, DEFAULT_PORTS["identity"])
    interactions_port: int = _env("SWITCHBOARD_INTERACTIONS_PORT", _PORT, DEFAULT_PORTS["interactions"])
    secretproxy_port: int = _env("SWITCHBOARD_SECRETPROXY_PORT", _PORT, DEFAULT_PORTS["secretproxy"])
    runs_port: int = _env("SWITCHBOARD_RUNS_PORT", _PORT, DEFAULT_PORTS["runs"])
    edge_port: int = _env("SWITCHBOARD_EDGE_PORT", _PORT, DEFAULT_EDGE_PORT)
    metrics_port: int | None = _env("SWITCHBOARD_METRICS_PORT", _PORT)
    # Where clients (the edge, other services) reach each service: any gRPC target, e.g.
    # "dns:///identity:50051" in compose or "ipv4:127.0.0.1:50051,127.0.0.1:50151" for replicas.
    identity_target: str | None = _env("SWITCHBOARD_IDENTITY_TARGET", _non_empty)
    interactions_target: str | None = _env("SWITCHBOARD_INTERACTIONS_TARGET", _non_empty)
    secretproxy_target: str | None = _env("SWITCHBOARD_SECRETPROXY_TARGET", _non_empty)
    runs_target: str | None = _env("SWITCHBOARD_RUNS_TARGET", _non_empty)
    internal_token: str | None = _env("SWITCHBOARD_INTERNAL_TOKEN", _secret(32), secret=True)
    # Worker tokens (Ed25519, see switchboard/shared/worker_keys.py): the private key that signs them,
    # "kid:base64" or "kid:PEM", for the identity service only; and the public keys every service
    # verifies them with, "kid:base64[,kid:base64…]" or a JSON object {kid: key}.
    worker_token_signing_key: str | None = _env("SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY", _worker_signing_key, secret=True)
    worker_token_public_keys: str | None = _env("SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS", _worker_public_keys)
    # AES-256-GCM keys for credentials at rest: "kid:base64key[,kid:base64key…]", the first seals.
    credentials_keys: str | None = _env("SWITCHBOARD_CREDENTIALS_KEYS", _key_list, secret=True)
    log_level: str = _env("SWITCHBOARD_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info")
    db_pool_min_size: int = _env("SWITCHBOARD_DB_POOL_MIN_SIZE", _integer(0, 100), 1)
    db_pool_max_size: int = _env("SWITCHBOARD_DB_POOL_MAX_SIZE", _integer(1, 200), 10)
    default_deadline_seconds: float = _env("SWITCHBOARD_DEFAULT_DEADLINE_SECONDS", _seconds(0.01, 3600), 10.0)
    shutdown_grace_seconds: float = _env("SWITCHBOARD_SHUTDOWN_GRACE_SECONDS", _seconds(0, 600), 10.0)
    # How long health reports NOT_SERVING before the server stops accepting calls, so that load
    # balancers watching health move traffic away first. 0 suits a single machine.
    drain_delay_seconds: float = _env("SWITCHBOARD_DRAIN_DELAY_SECONDS", _seconds(0, 600), 0.0)
    grpc_max_message_bytes: int = _env("SWITCHBOARD_GRPC_MAX_MESSAGE_BYTES", _integer(1024, 64 << 20), 4 << 20)
    edge_max_body_bytes: int = _env("SWITCHBOARD_EDGE_MAX_BODY_BYTES", _integer(1024, 64 << 20), 1 << 20)
    # How often verifiers refresh the list of revoked worker tokens from the identity service: a
    # revocation is honoured within this time.
    revocation_refresh_seconds: float = _env("SWITCHBOARD_REVOCATION_REFRESH_SECONDS", _seconds(0.1, 3600), 5.0)
    # How long a process remembers an acting user's role in an organisation (asked of identity):
    # a removed or demoted user keeps the old rights at most this long. 0 asks on every call.
    membership_cache_seconds: float = _env("SWITCHBOARD_MEMBERSHIP_CACHE_SECONDS", _seconds(0, 60), 5.0)
    # Identity provider of bot users: "local" (the identity schema) or "gotrue" (a GoTrue admin API).
    idp: str = _env("SWITCHBOARD_IDP", _choice("local", "gotrue"), "local")
    supabase_url: str | None = _env("SUPABASE_URL", _http_url)
    supabase_service_role_key: str | None = _env("SUPABASE_SERVICE_ROLE_KEY", _non_empty, secret=True)
    support_bot_email_domain: str = _env("SUPPORT_BOT_EMAIL_DOMAIN", _domain, "bots.support.internal")
    events_retention_count: int = _env("SWITCHBOARD_EVENTS_RETENTION_COUNT", _integer(1, 10_000_000), 10_000)
    events_retention_seconds: float = _env("SWITCHBOARD_EVENTS_RETENTION_SECONDS", _seconds(1, 365 * 86400), 86400.0)
    events_poll_seconds: float = _env("SWITCHBOARD_EVENTS_POLL_SECONDS", _seconds(0.05, 60), 1.0)
    # How far (in events) a live subscriber may fall behind its stream's head before it is ended
    # with the position to resume from.
    events_max_lag: int = _env("SWITCHBOARD_EVENTS_MAX_LAG", _integer(1, 1_000_000), 1000)
    events_max_subscribers: int = _env("SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS", _integer(1, 1_000_000), 1000)
    events_max_subscribers_per_stream: int = _env("SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_STREAM", _integer(1, 10_000), 16)
    # Fair shares on each replica: one organisation, or one agent's streams together, cannot take
    # the capacity of the others.
    events_max_subscribers_per_organization: int = _env(
        "SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_ORGANIZATION", _integer(1, 1_000_000), 200
    )
    events_max_subscribers_per_agent: int = _env("SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_AGENT", _integer(1, 1_000_000), 64)
    events_max_subscribers_per_user: int = _env("SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_USER", _integer(1, 1_000_000), 64)
    runs_reaper_interval_seconds: float = _env("RUNS_REAPER_INTERVAL_SECONDS", _seconds(0.05, 3600), 30.0)
    runs_reaper_stale_after_seconds: float = _env("RUNS_REAPER_STALE_AFTER_SECONDS", _seconds(0.5, 86400), 120.0)
    runs_reaper_batch_size: int = _env("RUNS_REAPER_BATCH_SIZE", _integer(1, 100_000), 1000)
    idp_timeout_seconds: float = _env("SWITCHBOARD_IDP_TIMEOUT_SECONDS", _seconds(0.05, 60), 5.0)
    # The secret proxy's upstreams beyond (or overriding) the built-in LLM APIs: a JSON object,
    # see switchboard/services/secretproxy/upstreams.py.
    proxy_upstreams: str | None = _env("SWITCHBOARD_PROXY_UPSTREAMS", _proxy_upstreams)
    proxy_connect_timeout_seconds: float = _env("SWITCHBOARD_PROXY_CONNECT_TIMEOUT_SECONDS", _seconds(0.05, 120), 5.0)
    # Between two pieces of the upstream's response (a streamed answer may take minutes in all).
    proxy_read_timeout_seconds: float = _env("SWITCHBOARD_PROXY_READ_TIMEOUT_SECONDS", _seconds(0.05, 3600), 120.0)
    proxy_max_body_bytes: int = _env("SWITCHBOARD_PROXY_MAX_BODY_BYTES", _integer(0, 1 << 30), 32 << 20)
    # How long to wait for the identity service when a worker token lacks its organisation.
    proxy_identity_timeout_seconds: float = _env("SWITCHBOARD_PROXY_IDENTITY_TIMEOUT_SECONDS", _seconds(0.05, 60), 2.0)
    proxy_audit_retention_seconds: float = _env("SWITCHBOARD_PROXY_AUDIT_RETENTION_SECONDS", _seconds(60, 3650 * 86400), 30 * 86400.0)
    proxy_verdict_cache_size: int = _env("SWITCHBOARD_PROXY_VERDICT_CACHE_SIZE", _integer(0, 10_000_000), 10_000)
    proxy_verdict_cache_seconds: float = _env("SWITCHBOARD_PROXY_VERDICT_CACHE_SECONDS", _seconds(0, 86400), 60.0)
    # Sources (worker agents and client addresses) with this many failed placeholder lookups within
    # the window are refused for the rest of it, on every replica.
    proxy_failed_lookup_limit: int = _env("SWITCHBOARD_PROXY_FAILED_LOOKUP_LIMIT", _integer(1, 1_000_000), 20)
    proxy_failed_lookup_window_seconds: float = _env("SWITCHBOARD_PROXY_FAILED_LOOKUP_WINDOW_SECONDS", _seconds(1, 86400), 300.0)

    def port_of(self, service: str) -> int:
        """The port the given service (identity, interactions, secretproxy, runs, edge) listens on."""
        return int(getattr(self, f"{service}_port"))

    def target_of(self, service: str) -> str:
        """The gRPC target at which clients reach ``service``; defaults to its local port."""
        configured = getattr(self, f"{service}_target")
        return configured or f"127.0.0.1:{self.port_of(service)}"

    def require(self, *names: str) -> None:
        """Fail with ConfigError naming every attribute in ``names`` that is unset."""
        env = env_names()
        missing = [env[name] for name in names if getattr(self, name) is None]
        if missing:
            raise ConfigError("required but not set: " + ", ".join(missing))


def env_names() -> dict[str, str]:
    """Attribute name → environment variable name, for every setting."""
    return {f.name: f.metadata["env"] for f in dataclasses.fields(Settings)}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``environ`` (default ``os.environ``).

    Raises ConfigError listing every malformed value and every unknown ``SWITCHBOARD_*`` name.
    Empty values count as unset, as shells and compose files commonly write them.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    known = set()
    for f in dataclasses.fields(Settings):
        name = f.metadata["env"]
        known.add(name)
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in known:
            problems.append(f"{name}: unknown setting (known: see README's configuration table)")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return Settings(**values)
