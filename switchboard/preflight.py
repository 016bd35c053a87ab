"""What ``switchboard up`` checks before it starts anything, so that a second ``up`` can never harm
a running stack: that it alone uses its data directory (an exclusive lock held for its whole
life), and that every port it is about to listen on is free. A refusal is one line that says what
to change; nothing has been started or written by then."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from switchboard.shared.config import SERVICES, Settings, env_names
from switchboard.shared.process import port_is_free

LOCK_FILE = "up.lock"


class Refused(Exception):
    """``up`` must not start; the message (one line) says why and what to change."""


class DataDirLock:
    """An exclusive ``flock`` on ``<data dir>/up.lock``, holding the owner's pid. The kernel
    releases it when the process ends, however it ends: a killed ``up`` never leaves a stale lock."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise Refused naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Refused(
                f"{self.path.parent} is in use by another `switchboard up` (pid {holder}): stop it first, "
                f"or set {env_names()['data_dir']} to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the lock
            self._fd = None


def planned_ports(settings: Settings, replicas: int, stride: int, metrics_offset: int) -> list[tuple[int, str]]:
    """Every port ``up`` will listen on, each with the variable that moves it."""
    names = env_names()
    planned: list[tuple[int, str]] = []
    for service in SERVICES:
        variable = names[f"{service}_port"]
        for index in range(replicas):
            port = settings.port_of(service) + stride * index
            where = variable if index == 0 else f"{variable} + {stride * index}"
            planned.append((port, where))
            planned.append((port + metrics_offset, f"{where} + {metrics_offset}, metrics"))
    planned.append((settings.edge_port, names["edge_port"]))
    return planned


def require_free_ports(settings: Settings, replicas: int, stride: int, metrics_offset: int) -> None:
    """Raise Refused (one line listing each taken port and its variable) unless every port is free."""
    taken = [
        f"{port} ({origin})"
        for port, origin in planned_ports(settings, replicas, stride, metrics_offset)
        if not port_is_free(settings.bind_host, port)
    ]
    if taken:
        plural = "s" if len(taken) > 1 else ""
        raise Refused(
            f"port{plural} in use on {settings.bind_host}: {', '.join(taken)}; "
            f"set the variable{plural} named to free ports, or stop what listens there"
        )
