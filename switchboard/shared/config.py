"""The platform's own settings: where the database and the services are, the tokens and keys
every process verifies with, logging, pools, deadlines and the stop order's timings.

Each service declares its own settings beside its code (switchboard/services/<context>/settings.py);
``switchboard/catalog.py`` reads them all together with these (see switchboard/shared/settings.py
for the machinery and the unknown-variable check).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from switchboard.shared.settings import (
    PORT,
    ConfigError,
    EnvSettings,
    Prefix,
    choice,
    integer,
    load,
    non_empty,
    seconds,
    secret,
    setting,
)

__all__ = ["ConfigError", "DEFAULT_EDGE_PORT", "DEFAULT_PORTS", "SERVICES", "Settings", "env_names", "load_settings"]

PREFIX = "SWITCHBOARD_"

SERVICES = ("identity", "interactions", "secretproxy", "runs")
"""The gRPC services, in start order: the topology every process knows (where to reach whom)."""

DEFAULT_PORTS = {"identity": 50051, "interactions": 50052, "secretproxy": 50053, "runs": 50054}
DEFAULT_EDGE_PORT = 8080


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


@dataclass(frozen=True)
class Settings(EnvSettings):
    """What every Switchboard process reads from its environment, whichever service it runs.

    Attributes map one-to-one to environment variables (see ``env_names()``); ``None`` means
    unset. Secrets are excluded from ``repr`` so that logging a Settings object leaks nothing.
    """

    PREFIXES = (Prefix(PREFIX),)

    database_url: str | None = setting("DATABASE_URL", _database_url, secret=True)
    # -- where each context's data lives (resolved in one place: shared/db.py database_for) --------
    # "transaction": DATABASE_URL (and each context's URL) goes through a transaction pooler such as
    # PgBouncer (pool_mode=transaction): no statement cache, no session state through it, and what
    # needs a session (LISTEN, the migrations' lock) goes to the *_DIRECT_URL instead.
    database_pooler: str = setting("SWITCHBOARD_DATABASE_POOLER", choice("none", "transaction"), "none")
    database_direct_url: str | None = setting("SWITCHBOARD_DATABASE_DIRECT_URL", _database_url, secret=True)
    # A context's own database (its own server, if wanted), instead of DATABASE_URL for that context.
    # Topology, like the ports and targets below: `up` and `migrate` must know every context's.
    identity_database_url: str | None = setting("SWITCHBOARD_IDENTITY_DATABASE_URL", _database_url, secret=True)
    identity_database_direct_url: str | None = setting("SWITCHBOARD_IDENTITY_DATABASE_DIRECT_URL", _database_url, secret=True)
    interactions_database_url: str | None = setting("SWITCHBOARD_INTERACTIONS_DATABASE_URL", _database_url, secret=True)
    interactions_database_direct_url: str | None = setting(
        "SWITCHBOARD_INTERACTIONS_DATABASE_DIRECT_URL", _database_url, secret=True
    )
    secretproxy_database_url: str | None = setting("SWITCHBOARD_SECRETPROXY_DATABASE_URL", _database_url, secret=True)
    secretproxy_database_direct_url: str | None = setting(
        "SWITCHBOARD_SECRETPROXY_DATABASE_DIRECT_URL", _database_url, secret=True
    )
    runs_database_url: str | None = setting("SWITCHBOARD_RUNS_DATABASE_URL", _database_url, secret=True)
    runs_database_direct_url: str | None = setting("SWITCHBOARD_RUNS_DATABASE_DIRECT_URL", _database_url, secret=True)
    data_dir: Path = setting("SWITCHBOARD_DATA_DIR", lambda raw: Path(non_empty(raw)), Path(".switchboard"))
    bind_host: str = setting("SWITCHBOARD_BIND_HOST", non_empty, "127.0.0.1")
    identity_port: int = setting("SWITCHBOARD_IDENTITY_PORT", PORT, DEFAULT_PORTS["identity"])
    interactions_port: int = setting("SWITCHBOARD_INTERACTIONS_PORT", PORT, DEFAULT_PORTS["interactions"])
    secretproxy_port: int = setting("SWITCHBOARD_SECRETPROXY_PORT", PORT, DEFAULT_PORTS["secretproxy"])
    runs_port: int = setting("SWITCHBOARD_RUNS_PORT", PORT, DEFAULT_PORTS["runs"])
    edge_port: int = setting("SWITCHBOARD_EDGE_PORT", PORT, DEFAULT_EDGE_PORT)
    metrics_port: int | None = setting("SWITCHBOARD_METRICS_PORT", PORT)
    # Where clients (the edge, other services) reach each service: any gRPC target, e.g.
    # "dns:///identity:50051" in compose or "ipv4:127.0.0.1:50051,127.0.0.1:50151" for replicas.
    identity_target: str | None = setting("SWITCHBOARD_IDENTITY_TARGET", non_empty)
    interactions_target: str | None = setting("SWITCHBOARD_INTERACTIONS_TARGET", non_empty)
    secretproxy_target: str | None = setting("SWITCHBOARD_SECRETPROXY_TARGET", non_empty)
    runs_target: str | None = setting("SWITCHBOARD_RUNS_TARGET", non_empty)
    internal_token: str | None = setting("SWITCHBOARD_INTERNAL_TOKEN", secret(32), secret=True)
    # Worker tokens (Ed25519, see switchboard/shared/worker_keys.py): the private key that signs them,
    # "kid:base64" or "kid:PEM", for the identity service only; and the public keys every service
    # verifies them with, "kid:base64[,kid:base64…]" or a JSON object {kid: key}.
    worker_token_signing_key: str | None = setting("SWITCHBOARD_WORKER_TOKEN_SIGNING_KEY", _worker_signing_key, secret=True)
    worker_token_public_keys: str | None = setting("SWITCHBOARD_WORKER_TOKEN_PUBLIC_KEYS", _worker_public_keys)
    # AES-256-GCM keys for credentials at rest: "kid:base64key[,kid:base64key…]", the first seals.
    credentials_keys: str | None = setting("SWITCHBOARD_CREDENTIALS_KEYS", _key_list, secret=True)
    log_level: str = setting("SWITCHBOARD_LOG_LEVEL", choice("debug", "info", "warning", "error"), "info")
    db_pool_min_size: int = setting("SWITCHBOARD_DB_POOL_MIN_SIZE", integer(0, 100), 1)
    db_pool_max_size: int = setting("SWITCHBOARD_DB_POOL_MAX_SIZE", integer(1, 200), 10)
    default_deadline_seconds: float = setting("SWITCHBOARD_DEFAULT_DEADLINE_SECONDS", seconds(0.01, 3600), 10.0)
    shutdown_grace_seconds: float = setting("SWITCHBOARD_SHUTDOWN_GRACE_SECONDS", seconds(0, 600), 10.0)
    # How long health reports NOT_SERVING before the server stops accepting calls, so that load
    # balancers watching health move traffic away first. 0 suits a single machine.
    drain_delay_seconds: float = setting("SWITCHBOARD_DRAIN_DELAY_SECONDS", seconds(0, 600), 0.0)
    grpc_max_message_bytes: int = setting("SWITCHBOARD_GRPC_MAX_MESSAGE_BYTES", integer(1024, 64 << 20), 4 << 20)
    # How often verifiers refresh the list of revoked worker tokens from the identity service: a
    # revocation is honoured within this time.
    revocation_refresh_seconds: float = setting("SWITCHBOARD_REVOCATION_REFRESH_SECONDS", seconds(0.1, 3600), 5.0)
    # How long a process remembers an acting user's role in an organisation (asked of identity):
    # a removed or demoted user keeps the old rights at most this long. 0 asks on every call.
    membership_cache_seconds: float = setting("SWITCHBOARD_MEMBERSHIP_CACHE_SECONDS", seconds(0, 60), 5.0)

    def port_of(self, service: str) -> int:
        """The port the given service (identity, interactions, secretproxy, runs, edge) listens on."""
        return int(getattr(self, f"{service}_port"))

    def target_of(self, service: str) -> str:
        """The gRPC target at which clients reach ``service``; defaults to its local port."""
        configured = getattr(self, f"{service}_target")
        return configured or f"127.0.0.1:{self.port_of(service)}"


def env_names() -> dict[str, str]:
    """Attribute name → environment variable name, for every platform setting."""
    return Settings.env_names()


def load_settings(environ: Mapping[str, str] | None = None, *, also: Iterable[type[EnvSettings]] = ()) -> Settings:
    """The platform's Settings from ``environ`` (default ``os.environ``). The variables of the
    classes in ``also`` (the services' settings) are known too, and checked, but not returned:
    see switchboard/catalog.py for reading everything at once.

    Raises ConfigError listing every malformed value and every unknown variable.
    """
    environ = os.environ if environ is None else environ
    return load(environ, [Settings, *also])[Settings]
