"""Run every benchmark on one embedded PostgreSQL and write bench/RESULTS.md.

    python -m bench [--repetitions 3] [--only runs,reaper]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from bench import memory, proxy_latency, publish_stream, question_claims, reaper_sweep, runs_throughput, slack_clicks, startup, streams_latency, worker_sessions
from bench.common import RESULTS, Row, render
from switchboard.shared.embedded_pg import EPHEMERAL_SETTINGS, EmbeddedPostgres
from switchboard.shared.logs import configure_logging

BENCHMARKS = {
    "startup": startup.bench,
    "runs": runs_throughput.bench,
    "sessions": worker_sessions.bench,
    "reaper": reaper_sweep.bench,
    "streams": streams_latency.bench,
    "publish": publish_stream.bench,
    "clicks": slack_clicks.bench,
    "claims": question_claims.bench,
    "proxy": proxy_latency.bench,
    "memory": memory.bench,
}


async def main(repetitions: int, only: list[str]) -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as scratch:
        server = EmbeddedPostgres(Path(scratch) / "pgdata", EPHEMERAL_SETTINGS)
        admin_dsn = server.start()
        rows: list[Row] = []
        notes: list[str] = []
        try:
            for name in only:
                print(f"running {name} …", flush=True)
                found, said = await BENCHMARKS[name](admin_dsn, repetitions)
                rows += found
                notes += said
        finally:
            server.stop()
    RESULTS.write_text(render(rows, notes, seconds=time.perf_counter() - started))
    print(RESULTS.read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated, of {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    configure_logging("warning", process="bench")
    logging.getLogger().setLevel(logging.WARNING)
    import uvloop

    uvloop.run(main(args.repetitions, [n for n in args.only.split(",") if n]))
