"""The worker's session loop: one RunService.WorkSession stream per worker process.

``Worker(target, token, lanes, concurrency, handler).run()`` opens a session, and for every run
the server leases calls ``handler(context)`` in its own task, at most ``concurrency`` at once
(``prefetch`` more runs are leased ahead and wait for a handler, so that the next runs are already
here when handlers finish: the round trip to the server and PostgreSQL overlaps the work). The
handler's return value completes the run (its result, as JSON); ``Retryable`` fails it retryably
(re-queued while attempts remain); any other exception fails it for good. A cancellation pushed by
the server (CancelRun) cancels the handler's task, and the run ends as cancelled.

Outcomes are kept until the server acknowledges them, which it does only once they are durable:
when the stream breaks, or the replica drains, the worker reconnects (with backoff, to the next
address of ``target``) listing the runs it still holds, which the new session adopts, and sends
the unacknowledged outcomes again (the server acknowledges a repeat of what already committed,
and applies nothing twice). Handlers keep running across reconnects; a run the new session does
not adopt (it was reaped meanwhile) has its handler cancelled, since its outcome would be refused.

On SIGTERM (or ``stop()``): no more runs are taken and prefetched runs are handed back at once;
the handlers may finish until shortly before ``grace_seconds``; those still running then are
cancelled and their runs handed back (pending again at once, the hand-back not counting as an
attempt); once every outcome is acknowledged the session is closed and ``run()`` returns, so that
the process exits 0 with nothing left for the reaper.

This module needs only grpcio and protobuf (and the generated switchboard.runs.v1 code).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from switchboard.runs.v1 import run_service_pb2 as pb
from switchboard.runs.v1 import run_service_pb2_grpc

log = logging.getLogger("switchboard.worker")

LANES = {
    "sync": pb.LANE_SYNC,
    "action": pb.LANE_ACTION,
    "embed_backfill": pb.LANE_EMBED_BACKFILL,
    "auth": pb.LANE_AUTH,
    "watcher": pb.LANE_WATCHER,
}
MAX_ERROR_MESSAGE = 4000
MAX_REPORTS = 500  # outcomes per message at most (the server takes up to 1000)
RECONNECT_FIRST_SECONDS = 0.05
RECONNECT_MAX_SECONDS = 5.0
RESEND_AFTER_SECONDS = 0.5  # an outcome the server could not record (UNAVAILABLE) goes again after
# Statuses after which reconnecting cannot help: the worker's configuration is wrong.
_FATAL = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
_OK, _INVALID_ARGUMENT, _UNAVAILABLE = 0, 3, 14
CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),  # a dns:/// name: each new channel may land elsewhere
    # A server that vanished without a word (its host gone) is noticed within ~30 s, and the worker
    # reconnects elsewhere; the services accept a ping every 10 s.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]
_CLOSE = object()


class Retryable(Exception):
    """Raised by a handler when another attempt may succeed: the run is re-queued (after a
    backoff) while it has attempts left. Any other exception fails the run for good."""


class Tools(Protocol):
    """What the worker builds each handler's context with (switchboard.worker.WorkerTools)."""

    def context_for(self, run: pb.Run) -> Any: ...

    async def aclose(self) -> None: ...


Handler = Callable[[Any], Awaitable[Any]]


@dataclass
class _Held:
    """A leased run whose handler runs in this process."""

    run: pb.Run
    task: asyncio.Task | None = None
    stop_reason: str = ""  # why its task was cancelled: "cancel", "shutdown" or "lost"


class WorkerStopped(Exception):
    """The session was refused for good (bad token, bad configuration): ``run()`` raises it."""


class Worker:
    """A worker process's session loop; see the module's docstring."""

    def __init__(
        self,
        target: str | Sequence[str],
        token: str,
        lanes: Sequence[int | str],
        concurrency: int,
        handler: Handler,
        *,
        worker_id: str | None = None,
        grace_seconds: float = 30.0,
        proxy_url: str | None = None,
        events_target: str | None = None,
        tools: Tools | None = None,
        prefetch: int | None = None,
    ):
        """``target``: a gRPC address of the runs service, a list of them (replicas: reconnects go
        to the next), or a name such as ``dns:///runs:50054``. ``token``: a worker token (or, for
        internal workers, the internal token). ``lanes``: Lane values or names; empty: every lane.
        ``concurrency``: runs handled at once. ``prefetch``: runs leased ahead, waiting for a
        handler (default: as many as ``concurrency``), so that the next runs are already here
        when handlers finish; they are handed back at once on stop. ``events_target``: the
        EventService's address (the interactions service, e.g. ``localhost:50052``), for handlers'
        ``publish`` and ``subscribe``; without it, the first runs address (right only behind a
        gateway that routes both services). ``tools``: what builds handlers' contexts; by default a
        WorkerTools opened on ``events_target`` and ``proxy_url``."""
        prefetch = concurrency if prefetch is None else prefetch
        if concurrency < 1 or prefetch < 0 or concurrency + prefetch > 1000:
            raise ValueError("concurrency must be 1 or more, prefetch 0 or more, and together at most 1000")
        self._targets = [target] if isinstance(target, str) else list(target)
        if not self._targets:
            raise ValueError("target must name at least one address")
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._token = token
        self._lanes = [LANES[lane] if isinstance(lane, str) else int(lane) for lane in lanes]
        self._concurrency = concurrency
        self._capacity = concurrency + prefetch
        self._queued: collections.deque[_Held] = collections.deque()  # prefetched runs, not started
        self._active = 0  # handlers running
        self._handler = handler
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._grace = grace_seconds
        self._proxy_url = proxy_url
        self._events_target = events_target
        self._tools = tools
        self._held: dict[str, _Held] = {}  # run id → its lease and handler
        self._unacked: dict[tuple[str, int], pb.WorkSessionRequest] = {}  # outcomes not yet acknowledged
        self._outbox: asyncio.Queue | None = None  # the live session's messages to send
        self._reports: pb.SessionReports | None = None  # outcomes of this loop turn, sent together
        self._closing = False  # the live session's side is (being) closed
        self._stopping: asyncio.Event | None = None
        self._gave_up: asyncio.Event | None = None
        self._stop_requested = False
        self.sessions_opened = 0
        """How many sessions this worker opened (reconnects included)."""
        self.connect_failures = 0
        """How many times a session could not be opened (the next address was tried after)."""

    # -- public ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking runs; finish or hand back those held within the grace period; then
        ``run()`` returns. Safe to call from a signal handler or before ``run()``."""
        self._stop_requested = True
        if self._stopping is not None:
            self._stopping.set()

    async def run(self) -> None:
        """Work until stopped (SIGTERM, SIGINT or ``stop()``). Raises WorkerStopped when the
        server refuses the session for good (UNAUTHENTICATED, PERMISSION_DENIED, …)."""
        self._stopping = asyncio.Event()
        self._gave_up = asyncio.Event()
        if self._stop_requested:
            self._stopping.set()
        installed = _on_signals(self)
        own_tools = self._tools is None
        if own_tools:
            from switchboard.worker.context import WorkerTools  # noqa: PLC0415 - only when not given

            events = self._events_target or self._targets[0]
            self._tools = await WorkerTools.open(events, self._token, self._proxy_url)
        clock = asyncio.create_task(self._shutdown_clock(), name="worker-shutdown-clock")
        try:
            await self._reconnecting()
        finally:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
            for held in list(self._held.values()):
                if held.task is not None:
                    held.stop_reason = held.stop_reason or "lost"
                    held.task.cancel()
            _off_signals(self, installed)
            if own_tools and self._tools is not None:
                await self._tools.aclose()

    # -- the session, again and again ------------------------------------------------------------

    def _settled(self) -> bool:
        return not self._held and not self._unacked

    async def _reconnecting(self) -> None:
        assert self._stopping is not None and self._gave_up is not None
        failures = 0
        index = 0
        while not self._gave_up.is_set():
            if self._stopping.is_set() and self._settled():
                return
            target = self._targets[index % len(self._targets)]
            session = asyncio.create_task(self._session(target), name="worker-session")
            gave_up = asyncio.create_task(self._gave_up.wait())
            await asyncio.wait({session, gave_up}, return_when=asyncio.FIRST_COMPLETED)
            gave_up.cancel()
            if not session.done():
                session.cancel()
            try:
                opened, finished = await session
            except asyncio.CancelledError:
                if self._gave_up.is_set():
                    break
                raise
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _FATAL:
                    raise WorkerStopped(f"the runs service refused the session: {exc.code().name}: {exc.details()}") from None
                log.warning("worker session to %s ended: %s %s", target, exc.code().name, exc.details())
                opened, finished = False, False
            except (OSError, ConnectionError) as exc:
                log.warning("worker session to %s failed: %s", target, exc)
                opened, finished = False, False
            if finished:
                return
            failures = 0 if opened else failures + 1
            if not opened:
                self.connect_failures += 1
            index += 1
            if failures:
                delay = min(RECONNECT_MAX_SECONDS, RECONNECT_FIRST_SECONDS * 2 ** (failures - 1)) * (0.5 + random.random() / 2)
                # Wait the backoff out, or less when giving up, or when stopping with nothing left.
                waits = [asyncio.ensure_future(self._gave_up.wait())]
                if not self._stopping.is_set() or self._settled():
                    waits.append(asyncio.ensure_future(self._stopping.wait()))
                await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                for wait in waits:
                    wait.cancel()
        if not self._settled():
            log.warning(
                "worker gave up after the grace period with %d runs held and %d outcomes unacknowledged",
                len(self._held),
                len(self._unacked),
            )

    async def _session(self, target: str) -> tuple[bool, bool]:
        """One session: (whether it opened, whether the worker is finished). Returns on `drain`
        (the call is cancelled, not closed: the runs stay the worker's, for the next session)."""
        assert self._stopping is not None
        channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        outbox: asyncio.Queue = asyncio.Queue()
        writer: asyncio.Task | None = None
        watcher: asyncio.Task | None = None
        opened = False
        try:
            call = run_service_pb2_grpc.RunServiceStub(channel).WorkSession(metadata=self._metadata)
            await call.write(pb.WorkSessionRequest(open=self._opening()))
            first = await call.read()
            if first is grpc.aio.EOF or first.WhichOneof("message") != "opened":
                raise ConnectionError("the session ended before it opened")
            opened = True
            self.sessions_opened += 1
            self._adopted({(run.run_id, run.attempt) for run in first.opened.adopted})
            self._outbox, self._closing = outbox, False
            writer = asyncio.create_task(self._write(call, outbox), name="worker-session-writer")
            for message in list(self._unacked.values()):
                self._report(message)
            watcher = asyncio.create_task(self._watch_stop(outbox), name="worker-session-stop")
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    # The server ends a session only after we closed our side: finished, unless
                    # something is still held (then the next session takes it).
                    return True, self._closing and self._settled()
                kind = response.WhichOneof("message")
                if kind == "leases":
                    for run in response.leases.runs:
                        self._leased(run)
                elif kind == "acks":
                    for ack in response.acks.acks:
                        self._acked(ack)
                elif kind == "lease":
                    self._leased(response.lease.run)
                elif kind == "ack":
                    self._acked(response.ack)
                elif kind == "cancel":
                    self._cancel(response.cancel.run_id, response.cancel.attempt, "cancel")
                elif kind == "drain":
                    log.info("worker session to %s drained: reconnecting elsewhere", target)
                    return True, False
        finally:
            if self._outbox is outbox:
                self._outbox = None
                self._reports = None  # its outcomes are still unacknowledged: sent again on the next session
            for task in (writer, watcher):
                if task is not None:
                    task.cancel()
            with contextlib.suppress(Exception):
                await channel.close(grace=None)

    def _opening(self) -> pb.SessionOpen:
        held: dict[str, int] = {run_id: held.run.attempt for run_id, held in self._held.items()}
        for run_id, attempt in self._unacked:
            held.setdefault(run_id, attempt)
        pairs = list(held.items())[: 2 * self._capacity]
        return pb.SessionOpen(
            worker_id=self.worker_id,
            lanes=self._lanes,
            capacity=self._capacity,
            held=[pb.HeldRun(run_id=run_id, attempt=attempt) for run_id, attempt in pairs],
            batches=True,
        )

    def _adopted(self, adopted: set[tuple[str, int]]) -> None:
        """Runs the new session did not take over are no longer ours: stop their handlers."""
        for run_id, held in list(self._held.items()):
            if (run_id, held.run.attempt) not in adopted:
                log.warning("worker lost run %s (attempt %d) while reconnecting; stopping its handler", run_id, held.run.attempt)
                self._cancel(run_id, held.run.attempt, "lost")

    async def _write(self, call: grpc.aio.StreamStreamCall, outbox: asyncio.Queue) -> None:
        with contextlib.suppress(Exception):  # a broken stream shows on the read side too
            while True:
                message = await outbox.get()
                if message is _CLOSE:
                    await call.done_writing()
                    return
                await call.write(message)

    async def _watch_stop(self, outbox: asyncio.Queue) -> None:
        assert self._stopping is not None
        await self._stopping.wait()
        outbox.put_nowait(pb.WorkSessionRequest(stop_taking=pb.SessionStopTaking()))
        self._maybe_close()

    def _maybe_close(self) -> None:
        """Stopping and nothing left to report: close our side; the server then ends the session."""
        if self._stopping is not None and self._stopping.is_set() and self._settled() and self._outbox and not self._closing:
            self._send_reports(self._outbox)
            self._closing = True
            self._outbox.put_nowait(_CLOSE)

    def _send(self, key: tuple[str, int], message: pb.WorkSessionRequest) -> None:
        self._unacked[key] = message
        self._report(message)

    def _report(self, message: pb.WorkSessionRequest) -> None:
        """Send an outcome on the live session, together with the others of this loop turn (one
        `reports` message for all the handlers that finished meanwhile)."""
        if self._outbox is None or self._closing:
            return  # sent again when a session opens
        if self._reports is None:
            self._reports = pb.SessionReports()
            asyncio.get_running_loop().call_soon(self._send_reports, self._outbox)
        kind = message.WhichOneof("message")
        getattr(self._reports, kind).append(getattr(message, kind))
        if len(self._reports.complete) + len(self._reports.fail) + len(self._reports.release) >= MAX_REPORTS:
            self._send_reports(self._outbox)

    def _send_reports(self, outbox: asyncio.Queue) -> None:
        if outbox is not self._outbox:
            return  # that session ended; its batch was dropped and is sent again on the next
        reports, self._reports = self._reports, None
        if reports is not None and (reports.complete or reports.fail or reports.release):
            outbox.put_nowait(pb.WorkSessionRequest(reports=reports))

    # -- runs ------------------------------------------------------------------------------------

    def _leased(self, run: pb.Run) -> None:
        assert self._stopping is not None
        if self._closing:
            return  # leased as we closed: the server hands it back itself
        if self._stopping.is_set() or run.id in self._held:
            self._send((run.id, run.attempt), pb.WorkSessionRequest(release=pb.SessionRelease(run_id=run.id, attempt=run.attempt)))
            return
        held = _Held(run)
        self._held[run.id] = held
        if self._active < self._concurrency:
            self._start(held)
        else:
            self._queued.append(held)  # prefetched: starts when a handler finishes

    def _start(self, held: _Held) -> None:
        self._active += 1
        held.task = asyncio.create_task(self._handle(held), name=f"worker-run-{held.run.id}")

    def _start_queued(self) -> None:
        while self._queued and self._active < self._concurrency:
            held = self._queued.popleft()
            if self._held.get(held.run.id) is held:
                self._start(held)

    def _cancel(self, run_id: str, attempt: int, reason: str) -> None:
        held = self._held.get(run_id)
        if held is None or held.run.attempt != attempt or held.stop_reason:
            return
        held.stop_reason = reason
        if held.task is not None:
            held.task.cancel()
            return
        # Prefetched, never started: its outcome is known at once.
        del self._held[run_id]
        message = _stopped(held)
        if message is not None:
            self._send((run_id, attempt), message)
        self._maybe_close()

    async def _handle(self, held: _Held) -> None:
        run = held.run
        key = (run.id, run.attempt)
        message: pb.WorkSessionRequest | None = None
        try:
            assert self._tools is not None
            result = await self._handler(self._tools.context_for(run))
            message = _complete(run, result)
        except asyncio.CancelledError:
            message = _stopped(held)
        except Retryable as exc:
            message = _fail(run, _describe(exc), retryable=True)
        except Exception as exc:  # noqa: BLE001 - any other failure of the handler fails the run
            log.exception("handler failed on run %s", run.id)
            message = _fail(run, _describe(exc), retryable=False)
        finally:
            self._held.pop(run.id, None)
            self._active -= 1
        if message is not None:
            self._send(key, message)
        self._start_queued()
        self._maybe_close()

    def _acked(self, ack: pb.SessionAck) -> None:
        key = (ack.run_id, ack.attempt)
        message = self._unacked.get(key)
        if message is None:
            return
        if ack.code == _UNAVAILABLE:
            asyncio.get_running_loop().call_later(RESEND_AFTER_SECONDS, self._resend, key, message)
            return
        if ack.code == _INVALID_ARGUMENT and message.WhichOneof("message") == "complete":
            # The result was refused (not JSON, too large): the run fails rather than hangs.
            self._send(key, _fail_pair(ack.run_id, ack.attempt, f"the result was refused: {ack.message}"))
            return
        del self._unacked[key]
        if ack.code != _OK:
            log.warning("outcome of run %s (attempt %d) refused: %s", ack.run_id, ack.attempt, ack.message)
        self._maybe_close()

    def _resend(self, key: tuple[str, int], message: pb.WorkSessionRequest) -> None:
        if self._unacked.get(key) is message:
            self._report(message)

    async def _shutdown_clock(self) -> None:
        """After stop: handlers may finish until shortly before the grace period ends; then those
        still running are cancelled and handed back; at its end the worker gives up waiting."""
        assert self._stopping is not None and self._gave_up is not None
        await self._stopping.wait()
        for held in list(self._queued):  # prefetched, not started: handed back at once
            self._cancel(held.run.id, held.run.attempt, "shutdown")
        reserve = min(2.0, self._grace / 4)
        await asyncio.sleep(self._grace - reserve)
        for run_id, held in list(self._held.items()):
            self._cancel(run_id, held.run.attempt, "shutdown")
        await asyncio.sleep(reserve)
        self._gave_up.set()


# The workers running in this process: SIGTERM and SIGINT stop them all (one handler per signal,
# installed while any runs, so that several Workers in one process do not undo each other's).
_RUNNING: set[Worker] = set()
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _stop_all() -> None:
    for worker in list(_RUNNING):
        worker.stop()


def _on_signals(worker: Worker) -> bool:
    """Register a running worker; install the signal handlers with the first. Whether they are
    installed (not on a thread other than the main one, nor on Windows)."""
    first = not _RUNNING
    _RUNNING.add(worker)
    if not first:
        return True
    loop = asyncio.get_running_loop()
    try:
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, _stop_all)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


def _off_signals(worker: Worker, installed: bool) -> None:
    _RUNNING.discard(worker)
    if installed and not _RUNNING:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


def _stopped(held: _Held) -> pb.WorkSessionRequest | None:
    """The outcome of a run whose handler was stopped (or never started): cancelled on request,
    handed back at shutdown, none when the run was lost (its outcome would be refused)."""
    run = held.run
    if held.stop_reason == "cancel":
        return _fail(run, "cancelled: its cancellation was requested", retryable=False)
    if held.stop_reason == "shutdown":
        return pb.WorkSessionRequest(release=pb.SessionRelease(run_id=run.id, attempt=run.attempt))
    return None


def _complete(run: pb.Run, result: Any) -> pb.WorkSessionRequest:
    try:
        text = "" if result is None else json.dumps(result)
    except (TypeError, ValueError) as exc:
        return _fail(run, f"the handler's result is not JSON: {exc}", retryable=False)
    return pb.WorkSessionRequest(complete=pb.SessionComplete(run_id=run.id, attempt=run.attempt, result_json=text))


def _fail(run: pb.Run, message: str, *, retryable: bool) -> pb.WorkSessionRequest:
    return _fail_pair(run.id, run.attempt, message, retryable=retryable)


def _fail_pair(run_id: str, attempt: int, message: str, *, retryable: bool = False) -> pb.WorkSessionRequest:
    return pb.WorkSessionRequest(
        fail=pb.SessionFail(run_id=run_id, attempt=attempt, error_message=message[:MAX_ERROR_MESSAGE] or "failed", retryable=retryable)
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
