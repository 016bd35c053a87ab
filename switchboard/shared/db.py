"""Where each context's data lives (``database_for``), asyncpg connection pools (one per service,
in that service's PostgreSQL schema), what "the database cannot be reached" looks like, and the
probe that keeps health honest about it."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2

from switchboard.shared.config import ConfigError, Settings, env_names
from switchboard.shared.errors import Unavailable
from switchboard.shared.logs import get_logger
from switchboard.shared.lifecycle import BackgroundLoop

log = get_logger(__name__)

# Opening a connection must not take a call's whole deadline (principle 4: bounded everything).
CONNECT_TIMEOUT_SECONDS = 5.0
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
RETRY_DELAY_SECONDS = 1


TRANSACTION_POOLER = "transaction"


@dataclass(frozen=True)
class Database:
    """Where one context (identity, interactions, secretproxy, runs) keeps its data."""

    context: str
    url: str
    """What the context's pool connects to: through a transaction pooler when ``pooled``."""
    session_url: str
    """A connection of its own, never through a transaction pooler: for what needs a session
    (LISTEN, the migrations' advisory lock). The same as ``url`` without a pooler."""
    pooled: bool
    """``url`` goes through a transaction pooler: no prepared statement outlives its transaction,
    and nothing may rely on session state (settings, session locks, LISTEN) through it."""


def database_for(settings: Settings, context: str) -> Database:
    """The database of ``context``: its own ``SWITCHBOARD_<CONTEXT>_DATABASE_URL`` when set, else
    ``DATABASE_URL``; the session URL likewise (``…_DIRECT_URL``), which a transaction pooler
    makes mandatory. The one place that resolves these variables.

    Raises ConfigError naming the variables to set when a URL is missing.
    """
    names = env_names()
    own = getattr(settings, f"{context}_database_url")
    own_direct = getattr(settings, f"{context}_database_direct_url")
    pooled = settings.database_pooler == TRANSACTION_POOLER
    url = own or settings.database_url
    if url is None:
        raise ConfigError(f"required but not set: {names['database_url']} (or {names[f'{context}_database_url']})")
    if own_direct is not None and own is None:
        # The direct URL reaches the context's own database without the pooler: alone, it would
        # put the migrations and LISTEN on one database and the calls on DATABASE_URL's.
        raise ConfigError(
            f"{names[f'{context}_database_direct_url']} is set without {names[f'{context}_database_url']}: "
            f"set both (one database of its own), or neither (the shared one, with {names['database_direct_url']})"
        )
    if own_direct is not None:
        return Database(context, url, own_direct, pooled)
    if own is not None:
        # A context's own database never falls back to the shared direct URL: that names another.
        session_url, direct_name = own, names[f"{context}_database_direct_url"]
    else:
        session_url, direct_name = settings.database_direct_url or url, names["database_direct_url"]
    if pooled and session_url == url:
        raise ConfigError(
            f"{names['database_pooler']}={TRANSACTION_POOLER}: set {direct_name} to a URL that reaches "
            "PostgreSQL without the pooler (LISTEN and the migrations' lock need a session of their own)"
        )
    return Database(context, url, session_url, pooled)


def connect_options(database: Database) -> dict[str, object]:
    """asyncpg options for a connection to ``database.url``: no statement cache behind a
    transaction pooler, where a named prepared statement would be looked for on another server
    connection (with the cache off, asyncpg parses each statement again in the same message
    sequence as its execution, unnamed)."""
    return {"statement_cache_size": 0} if database.pooled else {}


async def create_pool(settings: Settings, schema: str, *, application_name: str) -> asyncpg.Pool:
    """Open the pool of the context that owns ``schema``.

    Every statement names its tables with their schema (``runs.runs``): a transaction pooler
    cannot keep a session's ``search_path``, and a context moved to a database of its own has no
    other schema to reach. Without a pooler, ``search_path`` is still set to ``schema`` at the
    server, for anything unqualified that slips through (the pooled tests catch those).
    Raises ConfigError when no database URL is set for it.
    """
    database = database_for(settings, schema)
    server_settings = {"application_name": application_name}
    if not database.pooled:
        # A startup parameter PgBouncer refuses ("unsupported startup parameter"): only without one.
        server_settings["search_path"] = schema
    return await asyncpg.create_pool(
        database.url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        server_settings=server_settings,
        # Statements that hang must not pin a connection forever (principle 4: bounded everything).
        command_timeout=60,
        timeout=CONNECT_TIMEOUT_SECONDS,
        reset=_keep_session,
        **connect_options(database),  # type: ignore[arg-type]
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's default reset query.

    That query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) is a round trip
    on every release, as many as a one-statement call makes for its own work. No Switchboard code
    leaves session state on a pooled connection: advisory locks are transaction-scoped
    (``pg_try_advisory_xact_lock``), LISTEN runs on a dedicated connection, settings are startup
    parameters (none behind a transaction pooler), cursors live in transactions. asyncpg still rolls back an open transaction and
    drops listeners before calling this.
    """


# -- the database out of reach -------------------------------------------------------------------


class DatabaseUnavailable(Unavailable):
    """The call could not reach PostgreSQL (stopped, restarting, unreachable, out of connections).
    Nothing the caller did is wrong: retrying shortly, on this replica or another, may succeed."""

    default_reason = DATABASE_UNAVAILABLE

    def __init__(self, cause: BaseException | None = None):
        super().__init__(
            "the database cannot be reached right now; retry shortly",
            metadata={"cause": type(cause).__name__} if cause is not None else None,
        )

    def details(self) -> list[any_pb2.Any]:
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_DELAY_SECONDS)))
        return [*super().details(), retry]


# PostgreSQL's own words for "not now": the server is starting or stopping (57P01-3), out of
# connection slots (53300), or the connection broke (class 08, asyncpg's "closed in the middle of
# operation" included). 08P01 is a protocol violation: a bug on our side, not an outage.
_SERVER_GONE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# asyncpg's client-side words for a connection or pool that is no longer usable.
_CLOSED_MESSAGES = ("connection is closed", "pool is closing", "pool is closed")
# What asyncpg raises when the server cut a connection in the middle of a statement ("cannot
# switch to state …; another operation (…) is in progress"). Using one connection concurrently,
# the bug this could otherwise hide, is an InterfaceError ("cannot perform operation: …") instead.
_CUT_MID_STATEMENT = "another operation"


def database_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable error to answer with when ``exc`` means that PostgreSQL could not be
    reached (None for anything else, which stays the caller's business or a bug).

    Socket errors (a refused connection, a Unix socket that vanished with a stopped server, a
    reset) and timeouts count only when asyncpg raised them: the same types from elsewhere (an
    upstream HTTP call, a file) say nothing about the database.
    """
    if isinstance(exc, _SERVER_GONE) and not isinstance(exc, asyncpg.ProtocolViolationError):
        return DatabaseUnavailable(exc)
    if isinstance(exc, asyncpg.InterfaceError) and str(exc).startswith(_CLOSED_MESSAGES):
        return DatabaseUnavailable(exc)
    if isinstance(exc, asyncpg.InternalClientError) and _CUT_MID_STATEMENT in str(exc):
        return DatabaseUnavailable(exc)
    if isinstance(exc, OSError) and _raised_in_asyncpg(exc.__traceback__):  # TimeoutError is one
        return DatabaseUnavailable(exc)
    return None


def _raised_in_asyncpg(traceback: types.TracebackType | None) -> bool:
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__", "").startswith("asyncpg"):
            return True
        traceback = traceback.tb_next
    return False


# -- the probe -----------------------------------------------------------------------------------


class DatabaseProbe(BackgroundLoop):
    """Asks PostgreSQL ``SELECT 1`` every ``interval`` seconds, each try bounded by ``timeout``,
    and reports a change of reachability to ``on_change`` (False after ``failures_to_fail``
    consecutive failures, True after one success).

    The probe has a connection of its own rather than one from the pool: a pool busy with calls
    is not an outage, and must not turn health NOT_SERVING.
    """

    name = "database-probe"

    def __init__(
        self,
        dsn: str,
        on_change: Callable[[bool], Awaitable[None]],
        *,
        application_name: str = "switchboard-probe",
        pooled: bool = False,
        interval_seconds: float = 1.0,
        timeout_seconds: float = 1.0,
        failures_to_fail: int = 2,
    ):
        self._dsn = dsn
        self._on_change = on_change
        self._application_name = application_name
        self._options = {"statement_cache_size": 0} if pooled else {}
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._failures_to_fail = failures_to_fail
        self._connection: asyncpg.Connection | None = None
        self._failures = 0
        self.reachable = True
        """What the probe last reported (a process starts with a pool that just connected)."""

    async def run_once(self) -> bool:
        """One probe; returns what is reported now (True: reachable)."""
        try:
            async with asyncio.timeout(self._timeout):
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(
                        self._dsn, server_settings={"application_name": self._application_name}, **self._options
                    )
                await self._connection.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # TimeoutError is an OSError
            await self._discard_connection()
            self._failures += 1
            if self.reachable and self._failures >= self._failures_to_fail:
                log.warning("database_unreachable", error=type(exc).__name__, detail=str(exc)[:200])
                await self._report(False)
        else:
            self._failures = 0
            if not self.reachable:
                log.info("database_reachable")
                await self._report(True)
        return self.reachable

    async def _report(self, reachable: bool) -> None:
        self.reachable = reachable
        await self._on_change(reachable)

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._interval)

    async def _after_stop(self) -> None:
        await self._discard_connection()

    async def _discard_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # terminate(), not close(): close() waits for the server, which may be the thing gone.
            connection.terminate()
