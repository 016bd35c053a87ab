"""What counts as "the database cannot be reached": PostgreSQL's and asyncpg's words for an outage
become UNAVAILABLE (DATABASE_UNAVAILABLE, retry after 1 s); the same exception types raised
elsewhere, and errors that are bugs or bad input, do not."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2

from switchboard.shared.db import database_unavailable


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as a handler would see it."""
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.ConnectionFailureError("connection failure"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_postgres_out_of_reach_is_unavailable_with_a_retry_hint(exc):
    error = database_unavailable(raised(exc))
    assert error is not None and error.code == grpc.StatusCode.UNAVAILABLE
    assert error.to_status().code == grpc.StatusCode.UNAVAILABLE
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    details = error.details()
    assert details[0].Unpack(info) and info.reason == "DATABASE_UNAVAILABLE"
    assert details[-1].Unpack(retry) and retry.retry_delay.seconds == 1


@pytest.mark.parametrize("host", ["/nonexistent/socket/dir", "127.0.0.1"])
async def test_a_socket_error_raised_by_asyncpg_is_unavailable(host):
    # A vanished Unix socket (PostgreSQL stopped) and a refused TCP port (port 1: nothing listens).
    with pytest.raises(OSError) as caught:
        await asyncpg.connect(host=host, port=1, user="postgres", timeout=2)
    assert database_unavailable(caught.value) is not None


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError(2, "No such file or directory"),  # from a file, not from asyncpg
        ConnectionRefusedError(111, "Connection refused"),  # an upstream HTTP peer, say
        TimeoutError(),
        asyncpg.ProtocolViolationError("bind message supplies 1 parameters, but prepared statement requires 2"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        ValueError("bad input"),
        asyncio.CancelledError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_are_not_mistaken_for_an_outage(exc):
    assert database_unavailable(raised(exc)) is None
