"""``switchboard up``: the whole stack on one machine.

First makes sure it harms nothing (switchboard/preflight.py): it locks its data directory when it
embeds PostgreSQL there, and checks that its ports are free; otherwise it refuses in one line.
Then starts PostgreSQL (embedded unless DATABASE_URL, or every context's own URL, is set), applies
migrations (each context's to its database), starts N processes of each gRPC service and the
edge, waits until every one of *its own* children says it serves (over a pipe: a health probe on
the port could reach another process), prints the endpoints, and on Ctrl-C/SIGTERM stops them
in reverse order (edge, services, database), each draining first. A PostgreSQL that was already running is used but never stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from switchboard.shared.config import SERVICES, Settings, env_names
from switchboard.shared.crypto import new_key_list
from switchboard.shared.embedded_pg import EmbeddedPostgres
from switchboard.shared.logs import get_logger
from switchboard.shared.migrate import migrate_databases
from switchboard.shared.process import wait_for_stop
from switchboard.shared.worker_keys import SigningKey, parse_signing_key
from switchboard.preflight import DataDirLock, Refused, require_free_ports
from switchboard.serve import METRICS_PORT_OFFSET

log = get_logger(__name__)

REPLICA_PORT_STRIDE = 100
"""Replica i of a service listens on the service's port + 100·i (50051, 50151, …), and serves
metrics on that port + 1000; hence at most MAX_REPLICAS, so that the two ranges never meet."""
MAX_REPLICAS = 8
STARTUP_TIMEOUT_SECONDS = 30.0
SECRETS_FILE = "secrets.json"
RESTART_BACKOFF_SECONDS = (0.5, 10.0)  # first pause before restarting a dead child, and the cap


class StartupError(Exception):
    """A part of the stack did not come up; the message says which and why."""


class StartupInterrupted(Exception):
    """A stop signal arrived while the stack was starting."""


@dataclass
class Child:
    """One process of the stack."""

    name: str  # "identity#0", "edge"
    service: str
    port: int
    process: asyncio.subprocess.Process | None = None
    # During start-up: resolves True when the child says it serves, False when it exits first.
    ready: asyncio.Future[bool] | None = None


def replica_ports(settings: Settings, service: str, replicas: int) -> list[int]:
    base = settings.port_of(service)
    return [base + REPLICA_PORT_STRIDE * i for i in range(replicas)]


def load_or_create_secrets(data_dir: Path) -> dict[str, str]:
    """The internal token, the private key of worker tokens and the credentials keys kept in the
    data directory, made once (mode 0600)."""
    path = data_dir / SECRETS_FILE
    wanted = {
        "internal_token": lambda: secrets.token_urlsafe(32),
        "worker_token_signing_key": lambda: SigningKey.generate().setting(),
        "credentials_keys": new_key_list,
    }
    stored = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: make() for name, make in wanted.items() if name not in stored}
    # The shared HMAC key of the old worker tokens: nothing accepts those tokens any more, so the
    # secret that could mint them is not kept either.
    obsolete = stored.pop("worker_token_key", None)
    if missing or obsolete is not None:  # a new data directory, or one made by an older version
        stored.update(missing)
        data_dir.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle)
        os.replace(scratch, path)
    return stored


def needs_embedded_database(settings: Settings) -> bool:
    """Whether ``up`` embeds PostgreSQL: DATABASE_URL is unset and some context has no database
    of its own (``SWITCHBOARD_<CONTEXT>_DATABASE_URL``)."""
    return settings.database_url is None and any(getattr(settings, f"{s}_database_url") is None for s in SERVICES)


def worker_token_keys(settings: Settings, stored: dict[str, str]) -> dict[str, str]:
    """The worker-token keys ``up`` runs with: the environment's when set, else the private key
    of the data directory; without a verification key set, the signing key's own public key.
    The private key goes to identity only (see Stack._spawn), the public keys to every process."""
    signing = settings.worker_token_signing_key or stored["worker_token_signing_key"]
    public = settings.worker_token_public_keys or parse_signing_key(signing).public_setting()
    return {"worker_token_signing_key": signing, "worker_token_public_keys": public}


class Stack:
    """The processes of one ``switchboard up``, and their orderly stop."""

    def __init__(self, settings: Settings, replicas: int):
        self.settings = settings
        self.replicas = replicas
        self.database: EmbeddedPostgres | None = None
        self.children: list[Child] = []
        self._env: dict[str, str] = {}
        self._identity_env: dict[str, str] = {}  # the same, and the private key of worker tokens
        # Set when a stop signal arrives during start(): each step finishes (a half-started
        # database is never abandoned), then start() gives up and stop() cleans up.
        self.stop_requested = False

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise StartupInterrupted

    async def start(self) -> Settings:
        """Bring everything up; returns the effective settings (database and tokens filled in)."""
        settings = self.settings
        data_dir = settings.data_dir.resolve()
        fill: dict[str, object] = {}
        configured = (settings.internal_token, settings.worker_token_signing_key, settings.credentials_keys)
        if None in configured or settings.worker_token_public_keys is None:
            stored = load_or_create_secrets(data_dir)
            fill["internal_token"] = settings.internal_token or stored["internal_token"]
            fill.update(worker_token_keys(settings, stored))
            fill["credentials_keys"] = settings.credentials_keys or stored["credentials_keys"]
        if needs_embedded_database(settings):
            self.database = EmbeddedPostgres(data_dir / "pgdata")
            fill["database_url"] = await asyncio.to_thread(self.database.start)
            if self.database.started_here:
                log.info("embedded_postgres_started", pgdata=str(self.database.pgdata), pid=self.database.pid)
            else:
                log.warning(
                    "embedded_postgres_already_running",
                    pgdata=str(self.database.pgdata),
                    pid=self.database.pid,
                    detail="not started by this `up`, so it is used and left running at the end",
                )
        settings = self.settings = dataclasses.replace(settings, **fill)
        self._check_stop()
        applied = await migrate_databases(settings)
        log.info("migrations_done", applied=len(applied))
        self._check_stop()

        for service in SERVICES:
            for index, port in enumerate(replica_ports(settings, service, self.replicas)):
                self.children.append(Child(f"{service}#{index}", service, port))
        self.children.append(Child("edge", "edge", settings.edge_port))
        self._env = self._child_env(settings)
        self._identity_env = {**self._env, env_names()["worker_token_signing_key"]: settings.worker_token_signing_key or ""}
        for child in self.children:
            await self._spawn(child, report_ready=True)
        await self._wait_until_serving()
        return settings

    async def _spawn(self, child: Child, *, report_ready: bool = False) -> None:
        ready_args: tuple[str, ...] = ()
        pass_fds: tuple[int, ...] = ()
        if report_ready:
            read_end, write_end = os.pipe()
            child.ready = _readiness(read_end)
            ready_args, pass_fds = ("--ready-fd", str(write_end)), (write_end,)
        try:
            child.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "switchboard", "serve", child.service,
                "--port", str(child.port), "--parent-pid", str(os.getpid()), *ready_args,
                *(("--metrics-port", str(child.port + METRICS_PORT_OFFSET)) if child.service != "edge" else ()),
                # Only identity signs worker tokens: only its processes get the private key.
                env=self._env if child.service != "identity" else self._identity_env,
                pass_fds=pass_fds,
                # A session of their own: Ctrl-C reaches the supervisor only, which stops the
                # children in order instead of all at once.
                start_new_session=True,
            )  # fmt: skip
        finally:
            for fd in pass_fds:
                os.close(fd)  # the child holds it now: its exit ends the pipe (EOF) if it never serves

    def _child_env(self, settings: Settings) -> dict[str, str]:
        names = env_names()
        env = dict(os.environ)
        env[names["database_url"]] = settings.database_url or ""
        env[names["internal_token"]] = settings.internal_token or ""
        env[names["worker_token_public_keys"]] = settings.worker_token_public_keys or ""
        env.pop(names["worker_token_signing_key"], None)  # identity's alone: see _spawn
        env[names["credentials_keys"]] = settings.credentials_keys or ""
        env.pop(names["metrics_port"], None)  # one port cannot serve every child: each gets its own
        for service in SERVICES:
            if getattr(settings, f"{service}_target") is None:
                addresses = ",".join(f"127.0.0.1:{p}" for p in replica_ports(settings, service, self.replicas))
                env[names[f"{service}_target"]] = f"ipv4:{addresses}"
        return env

    async def _wait_until_serving(self) -> None:
        """Until every child has said that it serves; raises StartupError when one exits first or
        they take too long, StartupInterrupted on a stop signal."""
        waiting = {child.ready: child for child in self.children if child.ready is not None}
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        try:
            while waiting:
                self._check_stop()
                # Woken by a child's answer; the short timeout only lets a stop signal be seen.
                done, _ = await asyncio.wait(waiting, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    child = waiting.pop(future)
                    if not future.result():
                        assert child.process is not None
                        code = await child.process.wait()
                        raise StartupError(f"{child.name} exited with code {code} during start-up")
                if waiting and time.monotonic() > deadline:
                    names = ", ".join(c.name for c in waiting.values())
                    raise StartupError(f"not serving after {STARTUP_TIMEOUT_SECONDS:g} s: {names}")
        finally:
            for child in self.children:
                if child.ready is not None and not child.ready.done():
                    child.ready.cancel()
                child.ready = None

    async def wait(self, stop: asyncio.Task[str]) -> str:
        """Until ``stop`` (a stop signal) completes; returns its result. A child that exits
        meanwhile is started again (replicas are disposable), after a pause that grows while it
        keeps failing."""
        exits = {asyncio.create_task(c.process.wait()): c for c in self.children if c.process is not None}
        backoff = {c.name: RESTART_BACKOFF_SECONDS[0] for c in self.children}
        try:
            while True:
                done, _ = await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    return stop.result()
                for task in done:
                    child = exits.pop(task)
                    log.warning("child_exited", child=child.name, code=task.result(), restart_in_seconds=backoff[child.name])
                    await asyncio.wait({stop}, timeout=backoff[child.name])
                    if stop.done():
                        return stop.result()
                    backoff[child.name] = min(backoff[child.name] * 2, RESTART_BACKOFF_SECONDS[1])
                    await self._spawn(child)
                    assert child.process is not None
                    exits[asyncio.create_task(child.process.wait())] = child
        finally:
            for task in exits:
                task.cancel()

    async def stop(self) -> None:
        """Edge first (no new requests), then every service replica (each drains), then the database."""
        # A child needs its drain delay plus its grace period, and a little to close its pool.
        grace = self.settings.drain_delay_seconds + self.settings.shutdown_grace_seconds + 5
        edge = [c for c in self.children if c.service == "edge"]
        services = [c for c in self.children if c.service != "edge"]
        for group in (edge, services):
            await asyncio.gather(*(_terminate(child, grace) for child in group))
        self.children.clear()
        if self.database is not None:
            started_here = self.database.started_here
            await asyncio.to_thread(self.database.stop)
            log.info("embedded_postgres_stopped" if started_here else "embedded_postgres_left_running")


def _readiness(fd: int) -> asyncio.Future[bool]:
    """A future for the read end of a child's ready pipe: True on its line, False on EOF (the child
    exited, or could not start, without serving). Reads without a thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        loop.remove_reader(fd)
        os.close(fd)
        if not future.done():
            future.set_result(bool(data))

    def cancelled(done: asyncio.Future[bool]) -> None:
        if done.cancelled():
            loop.remove_reader(fd)
            os.close(fd)

    loop.add_reader(fd, readable)
    future.add_done_callback(cancelled)
    return future


async def _terminate(child: Child, grace: float) -> None:
    process = child.process
    if process is None or process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        log.warning("child_killed", child=child.name, after_seconds=grace)
        process.kill()
        await process.wait()


def endpoint_table(settings: Settings, replicas: int) -> str:
    """The human-readable table that ``up`` prints once everything is SERVING."""
    rows = [("service", "endpoint")]
    for service in SERVICES:
        ports = replica_ports(settings, service, replicas)
        rows.append((service, ", ".join(f"localhost:{p} (gRPC)" for p in ports)))
    rows.append(("edge", f"http://localhost:{settings.edge_port}"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{name.ljust(width)}  {endpoint}" for name, endpoint in rows]
    lines.append("")
    lines.append(f"internal token: {settings.internal_token}")
    lines.append(f"  grpcurl -plaintext localhost:{settings.identity_port} list")
    lines.append(
        f"  grpcurl -plaintext -H 'authorization: Bearer {settings.internal_token}' "
        """-d '{"email": "zoe@example.com", "display_name": "Zoe Doe"}' """
        f"localhost:{settings.identity_port} switchboard.identity.v1.IdentityService/SignUp"
    )
    return "\n".join(lines)


async def up(settings: Settings, replicas: int) -> int:
    """Run the stack until stopped; the process exit code. Refuses at once (1, with one line on
    stderr, nothing started or written) when its data directory is in use by another ``up`` or a
    port it needs is taken."""
    # The lock guards the embedded database; with DATABASE_URL the data directory holds only the
    # generated secrets, which are written atomically, and several stacks may share a server.
    lock = DataDirLock(settings.data_dir.resolve()) if needs_embedded_database(settings) else None
    try:
        # An existing directory is locked first, so that a second `up` is told of the first one
        # rather than of its ports; a new one is made only once the ports are known to be free.
        if lock is not None and lock.path.parent.is_dir():
            lock.acquire()
        require_free_ports(settings, replicas, REPLICA_PORT_STRIDE, METRICS_PORT_OFFSET)
        if lock is not None and not lock.held:
            lock.acquire()
    except Refused as exc:
        if lock is not None:
            lock.release()
        print(f"switchboard: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        return await _run(settings, replicas)
    finally:
        if lock is not None:
            lock.release()  # only after the database stopped: the next `up` may start it at once


async def _run(settings: Settings, replicas: int) -> int:
    stack = Stack(settings, replicas)
    started = time.monotonic()
    # Listen for the stop signal from the very start: Ctrl-C during start-up must still stop
    # whatever was started, the embedded database included.
    stop = asyncio.create_task(wait_for_stop())
    starting = asyncio.create_task(stack.start())
    try:
        await asyncio.wait({stop, starting}, return_when=asyncio.FIRST_COMPLETED)
        if stop.done():
            stack.stop_requested = True
        try:
            effective = await starting
        except StartupInterrupted:
            log.info("stack_stopping", reason=stop.result(), during="start-up")
            return 0
        except StartupError as exc:
            log.error("stack_failed", detail=str(exc))
            print(f"switchboard: {exc}", file=sys.stderr, flush=True)
            return 1
        log.info("stack_serving", seconds=round(time.monotonic() - started, 3), replicas=replicas)
        print(endpoint_table(effective, replicas), flush=True)
        reason = await stack.wait(stop)
        log.info("stack_stopping", reason=reason)
    finally:
        stop.cancel()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A second Ctrl-C while the children drain must not orphan them or the database.
            loop.add_signal_handler(sig, lambda name=sig.name: log.info("already_stopping", signal=name))
        await stack.stop()
        log.info("stack_stopped")
    return 0
