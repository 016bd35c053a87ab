"""Run every benchmark on one embedded PostgreSQL and write bench/RESULTS.md.

    python -m bench [--repetitions 3] [--only runs,reaper]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from bench import (
    memory,
    proxy_latency,
    publish_stream,
    question_claims,
    reaper_sweep,
    runs_throughput,
    slack_clicks,
    startup,
    streams_fanout,
    streams_latency,
    worker_sessions,
)
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
    "fanout": streams_fanout.bench,
    "clicks": slack_clicks.bench,
    "claims": question_claims.bench,
    "proxy": proxy_latency.bench,
    "memory": memory.bench,
}


def merged(previous: str, fresh: str) -> str:
    """``previous`` (a RESULTS.md) with the rows and notes of ``fresh`` put in: a row of the same
    figure and baseline, or a note that starts the same, is replaced; the rest is kept."""
    def split(text: str) -> tuple[list[str], list[str], list[str]]:
        lines = text.splitlines()
        head = [line for line in lines if not line.startswith(("| ", "- "))]
        rows = [line for line in lines if line.startswith("| ") and not line.startswith("| figure")]
        notes = [line for line in lines if line.startswith("- ")]
        return head, rows, notes

    def row_key(line: str) -> tuple[str, str]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        return cells[0], cells[2].split(":")[0]

    old_head, old_rows, old_notes = split(previous)
    new_head, new_rows, new_notes = split(fresh)
    replaced = {row_key(r) for r in new_rows}
    rows = [r for r in old_rows if row_key(r) not in replaced] + new_rows
    notes = [n for n in old_notes if not any(n[:40] == m[:40] for m in new_notes)] + new_notes
    table_at = old_head.index("|---|---|---|---|---|") if "|---|---|---|---|---|" in old_head else None
    head = old_head if table_at is not None else new_head
    out, placed = [], False
    for line in head:
        if line.startswith("|---"):
            out += ["| figure | Switchboard | baseline | ratio | goal |", line, *rows]
            placed = True
        elif line == "## Notes":
            out += [line, "", *notes]
        elif line.strip() or (out and out[-1].strip()):
            out.append(line)
    assert placed
    return "\n".join(out).rstrip() + "\n"


async def main(repetitions: int, only: list[str], merge: bool = False) -> None:
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
    fresh = render(rows, notes, seconds=time.perf_counter() - started)
    # --merge: only the benchmarks run now are replaced in RESULTS.md (the others keep their figures).
    RESULTS.write_text(merged(RESULTS.read_text(), fresh) if merge and RESULTS.exists() else fresh)
    print(RESULTS.read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated, of {', '.join(BENCHMARKS)}")
    parser.add_argument("--merge", action="store_true", help="replace only these benchmarks' rows and notes in RESULTS.md")
    args = parser.parse_args()
    configure_logging("warning", process="bench")
    logging.getLogger().setLevel(logging.WARNING)
    import uvloop

    uvloop.run(main(args.repetitions, [n for n in args.only.split(",") if n], args.merge))
