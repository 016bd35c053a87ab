"""A worker process of the acceptance tests (run as a script): the library's Worker with the
library's tools, recording each completion the server acknowledged as one line written straight to
a file descriptor (a SIGKILL loses none of them).

    python fleet_worker.py <worker id> <acks file>   (RUNS_TARGETS, EVENTS_ADDRESS, WORKER_TOKEN)

Handlers take a few milliseconds; a run whose payload says {"hold": true} runs until cancelled, and
so does every run after the first HOLD_AFTER (when set): a worker that hangs, then is killed, holds
runs for certain.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from switchboard.worker import Worker, WorkerTools


class RecordingWorker(Worker):
    """Writes "<run id> <attempt> <outcome> <code>" for each ack of an outcome it sent (the test
    compares the acknowledged completions with the table: each must be there)."""

    acks_fd: int

    def _acked(self, ack) -> None:  # the library's hook for every SessionAck
        message = self._unacked.get((ack.run_id, ack.attempt))
        if message is not None:
            os.write(self.acks_fd, f"{ack.run_id} {ack.attempt} {message.WhichOneof('message')} {ack.code}\n".encode())
        super()._acked(ack)


HOLD_AFTER = int(os.environ.get("HOLD_AFTER", "0"))
handled = 0


async def handle(ctx):
    global handled
    handled += 1
    if HOLD_AFTER and handled > HOLD_AFTER:
        await asyncio.Event().wait()  # hangs until cancelled (or the process is killed)
    if (ctx.payload or {}).get("hold"):
        await ctx.publish("test.held", {"run": ctx.run.id})
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # a pushed cancel, or the grace period's end: say so, then end
            await ctx.publish("test.cancelled", {"run": ctx.run.id})
            raise
    await asyncio.sleep(random.uniform(0.001, 0.005))
    return {"by": sys.argv[1]}


async def main() -> None:
    token = os.environ["WORKER_TOKEN"]
    async with await WorkerTools.open(os.environ["EVENTS_ADDRESS"], token) as tools:
        worker = RecordingWorker(
            os.environ["RUNS_TARGETS"].split(","), token, ["sync"], 32, handle, worker_id=sys.argv[1], grace_seconds=5, tools=tools
        )
        worker.acks_fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
