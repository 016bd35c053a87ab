"""`switchboard up` from nothing to every process SERVING (the embedded PostgreSQL's initdb
included), and from an existing data directory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Measurement, Row

SERVICES = ("identity", "interactions", "secretproxy", "runs", "edge")


def _free_base_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base < 60000 and all(_free(base + offset) for offset in (0, 1, 2, 3, 4, 1000, 1001, 1002, 1003)):
            return base


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def launch_up(data_dir: Path, **settings: str) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    """`switchboard up` on free ports with its data in ``data_dir`` (and any extra settings), its
    log lines on a pipe (stderr); the process and each service's port."""
    base = _free_base_port()
    ports = {service: base + offset for offset, service in enumerate(SERVICES)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_") and k != "DATABASE_URL"}
    env.update(SWITCHBOARD_DATA_DIR=str(data_dir), **settings)
    env.update({f"SWITCHBOARD_{service.upper()}_PORT": str(port) for service, port in ports.items()})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "up", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return process, ports


async def _up_once(data_dir: Path) -> float:
    """Seconds from starting `switchboard up` to its table (everything SERVING), as it logs them."""
    started = time.perf_counter()
    process, _ = await launch_up(data_dir)
    try:
        async with asyncio.timeout(60):
            while True:
                line = await process.stderr.readline()
                if not line:
                    raise RuntimeError("switchboard up exited before serving")
                if b'"stack_serving"' in line:
                    elapsed = time.perf_counter() - started
                    logged = json.loads(line)["seconds"]
                    break
    finally:
        process.send_signal(signal.SIGINT)
        await process.communicate()
    # From process start (imports included) to SERVING; `logged` excludes the interpreter start.
    return max(elapsed, logged)


async def bench(admin_dsn: str, repetitions: int) -> tuple[list[Row], list[str]]:
    cold, warm = [], []
    for _ in range(repetitions):
        with tempfile.TemporaryDirectory(prefix="switchboard-up-") as scratch:
            data_dir = Path(scratch) / "data"
            cold.append(await _up_once(data_dir))
            warm.append(await _up_once(data_dir))
    rows = [
        Row("`switchboard up` → all SERVING, new data directory (initdb)", "s", Measurement(cold), "goal", None, higher_is_better=False, goal="< 5 s"),
        Row("`switchboard up` → all SERVING, existing data directory", "s", Measurement(warm), "goal", None, higher_is_better=False, goal="< 5 s"),
    ]
    return rows, ["Start-up: measured from launching the `switchboard up` process until it logs `stack_serving`."]
