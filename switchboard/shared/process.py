"""Process lifetime: the event loop, waiting for the signal (or the parent's death) to stop, whether a
port is free to listen on, and telling the supervisor that the process serves."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_PARENT_POLL_SECONDS = 0.5


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on uvloop when it is installed, else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every platform we ship
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def wait_for_stop(parent_pid: int | None = None) -> str:
    """Return the reason to stop: ``SIGINT``/``SIGTERM`` received, or ``parent_exited`` when
    ``parent_pid`` is given and this process was orphaned (so that a supervisor killed hard never
    leaves its children running)."""
    loop = asyncio.get_running_loop()
    reason: asyncio.Future[str] = loop.create_future()

    def stop(why: str) -> None:
        if not reason.done():
            reason.set_result(why)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig.name)
    watcher = None
    if parent_pid is not None:

        async def watch_parent() -> None:
            await wait_for_parent_exit(parent_pid)
            stop("parent_exited")

        watcher = asyncio.create_task(watch_parent())
    try:
        return await reason
    finally:
        if watcher is not None:
            watcher.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def wait_for_parent_exit(parent_pid: int) -> None:
    """Return once this process is no longer a child of ``parent_pid``."""
    # Polling is the portable way: Linux's PR_SET_PDEATHSIG is per-thread and not in the standard
    # library. Half a second is well within what a person waits after stopping a supervisor.
    while os.getppid() == parent_pid:
        await asyncio.sleep(_PARENT_POLL_SECONDS)


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen on ``host:port`` right now. Bound with SO_REUSEADDR, as the
    servers bind: a port held only by closed connections (TIME_WAIT) is free."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return True  # not ours to judge: the server's own bind reports a bad host
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError:
                return False
    return True


def signal_ready(fd: int | None) -> None:
    """Tell the supervisor that started this process (``--ready-fd``) that it now serves: one line
    on the pipe it passed, then closed. Its own health probes could be answered by another
    process on the same port; this cannot."""
    if fd is None:
        return
    try:
        os.write(fd, b"ready\n")
    finally:
        os.close(fd)
