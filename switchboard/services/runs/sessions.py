"""Worker sessions (RunService.WorkSession): one bidirectional stream per worker process.

A session leases runs as its capacity frees and pushes them down the stream; its claims go to the
replica's Claimer (one statement for the requests of all sessions that see the same runs) and the
worker's outcomes to the replica's OutcomeFlusher (one statement per flush for all sessions),
coming back as acks once committed. Everything else is shared by all sessions of the replica, so
its cost does not grow with them:

* one heartbeat statement per interval for every run every session holds (the session is the
  liveness signal; a session that vanishes stops heartbeating and the reaper does the rest);
* one listening connection (LISTEN/NOTIFY): an enqueue wakes idle sessions that may take the run,
  a CancelRun pushes `cancel` to the session holding the run; a poll (idle sessions) and the
  heartbeat (cancellations) make up for a missed notification;
* draining the replica sends `drain` to every session: no more leases, reconnect elsewhere with
  the runs still held (`open.held`), which the new session adopts.

Scope: a worker's session claims, heartbeats and finishes only its own agent's runs (the
predicates are in every statement); an operator's session (internal workers) sees every run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from switchboard.services.runs import domain, store
from switchboard.services.runs.claims import Claimer
from switchboard.services.runs.metrics import RunMetrics
from switchboard.services.runs.outcomes import Ack, OutcomeFlusher
from switchboard.services.runs.serialize import run_message
from switchboard.services.runs.session_messages import INVALID_ARGUMENT, UNAVAILABLE, Opening, parse_outcome, reported
from switchboard.shared.errors import FieldViolation, InvalidArgument, ResourceExhausted, Unavailable
from switchboard.shared.lifecycle import cancel_and_wait
from switchboard.shared.logs import get_logger
from switchboard.runs.v1 import run_service_pb2 as pb

log = get_logger(__name__)

LEASE_BATCH = 100
"""Runs leased per claim statement at most."""
OUTCOMES_IN_FLIGHT = 256
"""Outcomes a session may have sent and not yet seen acknowledged, beyond its capacity: past
that, the server reads no more from the stream until acks go out (HTTP/2 flow control then
holds the worker back), so a session's memory is bounded whatever the worker sends."""
MAX_SESSIONS = 2000
"""Open sessions per replica at most."""
MAX_SESSIONS_PER_AGENT = 256
"""Open sessions of one agent's workers per replica at most: one tenant's fleet cannot take the
replica's sessions from the others (per replica: the cluster-wide bound is the replica count
times this)."""
_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class Session:
    """One open WorkSession: what it holds, and its outbox (responses to send, in order)."""

    def __init__(self, opening: Opening, scope: store.Scope, holders: dict[str, Session]):
        self.id = uuid.uuid4().hex
        self._holders = holders  # the hub's run id → session map, kept in step with ``held``
        self.worker_id = opening.worker_id
        self.lanes = opening.lanes
        self.capacity = opening.capacity
        self.batches = opening.batches
        self.scope = scope
        self._acks: list[pb.SessionAck] = []  # acks to send together (batches), once the flush's callbacks are done
        self.held: dict[str, int] = {}  # run id → attempt: leased or adopted, outcome not yet committed
        self.reported: set[str] = set()  # held runs whose outcome came (the worker is done with them)
        self.cancels_sent: set[tuple[str, int]] = set()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.freed = asyncio.Event()  # capacity came back
        self.work = asyncio.Event()  # a run it may take was (probably) enqueued
        self.taking = True
        self.worker_stopping = False  # the worker said stop_taking: it is shutting down
        self.closed = False
        self.in_flight = 0  # outcomes submitted, ack not yet sent
        self.window = asyncio.Semaphore(opening.capacity + OUTCOMES_IN_FLIGHT)
        self.settled = asyncio.Event()  # set whenever in_flight is 0
        self.settled.set()
        self.leasing_done = asyncio.Event()  # the lease loop ended: no lease follows

    def hold(self, run_id: str, attempt: int) -> None:
        self.held[run_id] = attempt
        self._holders[run_id] = self

    @property
    def free(self) -> int:
        """Capacity not in use: a run counts until the worker reports it, not until the report
        commits, so the next lease overlaps with the flush."""
        return self.capacity - len(self.held) + len(self.reported)

    def report(self, outcome: store.Outcome) -> None:
        if self.held.get(outcome.run_id) == outcome.attempt and outcome.run_id not in self.reported:
            self.reported.add(outcome.run_id)
            self.freed.set()

    def let_go(self, run_id: str) -> None:
        self.held.pop(run_id, None)
        self.reported.discard(run_id)
        if self._holders.get(run_id) is self:
            del self._holders[run_id]

    def wants(self, agent: str) -> bool:
        """Whether a run enqueued for ``agent`` ('' for none) may be this session's."""
        return self.scope.agent_id is None or self.scope.agent_id == agent

    def send(self, response: pb.WorkSessionResponse, *, acks: int = 0) -> None:
        """Queue a response; ``acks``: how many outcomes it answers (they leave the window once
        it is sent)."""
        if not self.closed:
            self.outbox.put_nowait((response, acks))

    def lease(self, runs: list[pb.Run]) -> None:
        if self.batches:
            self.send(pb.WorkSessionResponse(leases=pb.SessionLeases(runs=runs)))
        else:
            for run in runs:
                self.send(pb.WorkSessionResponse(lease=pb.SessionLease(run=run)))

    def answer(self, ack: pb.SessionAck) -> None:
        """Send an ack: at once, or (batches) with the others of the same flush."""
        if not self.batches:
            self.send(pb.WorkSessionResponse(ack=ack), acks=1)
            return
        if not self._acks:
            asyncio.get_running_loop().call_soon(self._send_acks)
        self._acks.append(ack)

    def _send_acks(self) -> None:
        acks, self._acks = self._acks, []
        self.send(pb.WorkSessionResponse(acks=pb.SessionAcks(acks=acks)), acks=len(acks))

    def stop_taking(self) -> None:
        self.taking = False
        self.freed.set()
        self.work.set()

    def push_cancel(self, run_id: str, attempt: int) -> None:
        """Tell the worker to stop the run, once per lease."""
        if self.held.get(run_id) == attempt and (run_id, attempt) not in self.cancels_sent:
            self.cancels_sent.add((run_id, attempt))
            self.send(pb.WorkSessionResponse(cancel=pb.SessionCancel(run_id=run_id, attempt=attempt)))

    def acked(self, outcome: store.Outcome, ack: Ack) -> None:
        """The flusher's answer: the run leaves the session (unless the outcome was malformed or
        could not be recorded yet), and the ack goes out."""
        if ack.code != UNAVAILABLE and self.held.get(outcome.run_id) == outcome.attempt:
            self.let_go(outcome.run_id)
            self.cancels_sent.discard((outcome.run_id, outcome.attempt))
        status = domain.STATUS_TO_PROTO[ack.status] if ack.status else pb.RUN_STATUS_UNSPECIFIED
        self.answer(pb.SessionAck(run_id=outcome.run_id, attempt=outcome.attempt, code=ack.code, message=ack.message, status=status))


class SessionHub:
    """One per replica: the open sessions, and the work they share (outcome flushes, heartbeats,
    the listening connection)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        flusher: OutcomeFlusher,
        metrics: RunMetrics,
        *,
        claimer: Claimer | None = None,
        heartbeat_seconds: float,
        poll_seconds: float = 1.0,
    ):
        self._pool = pool
        self._metrics = metrics
        self._dsn = dsn
        self._flusher = flusher
        self._claimer = claimer or Claimer(pool, flusher)
        self._heartbeat = heartbeat_seconds
        self.poll_seconds = poll_seconds
        """How long an idle session waits for a wake-up before it looks again (a missed NOTIFY)."""
        self._sessions: dict[str, Session] = {}
        self._holders: dict[str, Session] = {}  # run id → the session holding it
        self._tasks: list[asyncio.Task] = []
        self._listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._draining = False
        self.listening = asyncio.Event()
        """Set while the listening connection is up."""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the shared loops (idempotent: the first session starts them if the app did not)."""
        if self._tasks:
            return
        self._flusher.start()
        self._claimer.start()
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name="runs-sessions-listener"),
            asyncio.create_task(self._heartbeat_loop(), name="runs-sessions-heartbeat"),
        ]

    def drain(self) -> None:
        """The replica stops: every session is told to reconnect elsewhere, and new ones are
        refused, so that none holds up the server's stop."""
        self._draining = True
        for session in list(self._sessions.values()):
            session.stop_taking()
            session.send(pb.WorkSessionResponse(drain=pb.SessionDrain()))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self._claimer.stop()
        await self._flusher.stop()
        await self._close_listener()

    @property
    def claimer(self) -> Claimer:
        return self._claimer

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    # -- one session -----------------------------------------------------------------------------

    async def serve(
        self,
        opening: Opening,
        requests: AsyncIterator[pb.WorkSessionRequest],
        scope: store.Scope,
        recheck: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[pb.WorkSessionResponse]:
        """Run one session: adopt the runs it still holds, then lease, acknowledge and push until
        the worker closes its side (once every outcome it sent is acknowledged) or goes away.
        ``recheck`` is called before each claim: a revoked or expired token ends the session with
        its refusal. Raises InvalidArgument for a malformed message, Unavailable while the replica
        drains."""
        if self._draining:
            raise Unavailable("this replica is shutting down; open the session on another", reason="REPLICA_DRAINING")
        if len(self._sessions) >= MAX_SESSIONS:
            raise ResourceExhausted(f"this replica holds {MAX_SESSIONS} sessions; retry, or use another replica", reason="TOO_MANY_SESSIONS")
        if scope.agent_id is not None and sum(s.scope.agent_id == scope.agent_id for s in self._sessions.values()) >= MAX_SESSIONS_PER_AGENT:
            raise ResourceExhausted(
                f"agent {scope.agent_id} holds {MAX_SESSIONS_PER_AGENT} sessions on this replica; retry, or use another replica",
                reason="TOO_MANY_SESSIONS",
            )
        self.start()
        session = Session(opening, scope, self._holders)
        self._sessions[session.id] = session
        tasks: list[asyncio.Task] = []
        try:
            adopted = await self._adopt(session, opening.held)
            yield pb.WorkSessionResponse(
                opened=pb.SessionOpened(session_id=session.id, adopted=[pb.HeldRun(run_id=r, attempt=a) for r, a in adopted])
            )
            tasks = [
                asyncio.create_task(self._read(session, requests), name=f"runs-session-read-{session.id}"),
                asyncio.create_task(self._lease(session, recheck), name=f"runs-session-lease-{session.id}"),
            ]
            if self._draining:
                self.drain()
            outbox = session.outbox
            while True:
                item = await outbox.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                response, acks = item
                yield response
                if acks:
                    for _ in range(acks):
                        session.window.release()
                    session.in_flight -= acks
                    if not session.in_flight:
                        session.settled.set()
        finally:
            session.closed = True
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            del self._sessions[session.id]
            for run_id in list(session.held):
                session.let_go(run_id)

    async def _adopt(self, session: Session, held: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Take over the runs the worker still holds at their attempt (one statement; heartbeated
        now); runs no longer its own are left alone. Pushes `cancel` for adopted runs whose
        cancellation was requested meanwhile."""
        if not held:
            return []
        rows = await store.run_heartbeat_many(
            self._pool, [store.HeldRun(run_id, attempt, session.worker_id, session.scope) for run_id, attempt in held]
        )
        adopted = []
        for row in rows:
            run_id, attempt = str(row["id"]), row["attempt"]
            session.hold(run_id, attempt)
            adopted.append((run_id, attempt))
            if row["cancel_requested"]:
                # Sent after `opened` (the outbox is read only then), as every push is.
                session.push_cancel(run_id, attempt)
        return adopted

    async def _read(self, session: Session, requests: AsyncIterator[pb.WorkSessionRequest]) -> None:
        """The worker's messages: outcomes to the flusher (bounded in flight), stop_taking. When
        the worker closes its side, the session hands back what it still holds and ends once
        every outcome is acknowledged."""
        try:
            async for request in requests:
                kind = request.WhichOneof("message")
                if kind in ("complete", "fail", "release", "reports"):
                    for name, field, message in reported(request, kind):
                        await self._submit(session, message, name, field)
                elif kind == "stop_taking":
                    session.worker_stopping = True
                    session.stop_taking()
                    # No lease is sent after the ones already in the outbox: a worker that saw
                    # its last outcome acknowledged has seen every lease it must hand back.
                    await session.leasing_done.wait()
                elif kind == "open":
                    raise InvalidArgument(FieldViolation("open", "a session is opened once, by its first message"))
                else:
                    raise InvalidArgument(FieldViolation("message", "must set one of complete, fail, release, reports, stop_taking"))
            # The worker's side ended. After its stop_taking, that is a stopping worker done with
            # the session: runs still held (leased while it was stopping) go back to pending now
            # rather than to the reaper. Otherwise the worker may be on its way to another
            # replica (a cancelled call ends the same way here): its runs stay its own.
            session.stop_taking()
            await session.leasing_done.wait()
            await session.settled.wait()
            if session.worker_stopping:
                for run_id, attempt in list(session.held.items()):
                    await self._queue(session, store.Outcome("release", run_id, attempt, session.worker_id, session.scope))
                await session.settled.wait()
            session.outbox.put_nowait(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the stream, which ends with it
            session.outbox.put_nowait(_Failure(exc))

    async def _submit(self, session: Session, message: Any, kind: str, field: str) -> None:
        try:
            outcome = parse_outcome(message, kind, field, session.worker_id, session.scope)
        except InvalidArgument as exc:
            await session.window.acquire()
            session.in_flight += 1
            session.settled.clear()
            session.answer(pb.SessionAck(run_id=message.run_id[:64], attempt=message.attempt, code=INVALID_ARGUMENT, message=exc.message))
            return
        await self._queue(session, outcome)

    async def _queue(self, session: Session, outcome: store.Outcome) -> None:
        await session.window.acquire()
        session.in_flight += 1
        session.settled.clear()
        session.report(outcome)
        self._flusher.submit(outcome, session.acked)

    async def _lease(self, session: Session, recheck: Callable[[], Awaitable[None]] | None) -> None:
        """Lease runs while the session takes them: as many as its free capacity (claimed together
        with other sessions' requests); when fewer were runnable, wait for a wake-up (NOTIFY) or
        the poll."""
        try:
            while session.taking:
                if recheck is not None:
                    try:
                        await recheck()
                    except Exception as exc:  # noqa: BLE001 - the refusal ends the stream
                        session.outbox.put_nowait(_Failure(exc))
                        return
                free = session.free
                if free <= 0:
                    session.freed.clear()
                    await session.freed.wait()
                    continue
                asked = min(free, LEASE_BATCH)
                session.work.clear()
                try:
                    rows = await self._claimer.claim(session.worker_id, session.lanes, session.scope, asked)
                except Exception as exc:  # noqa: BLE001 - the session outlives a failed claim; retry after the poll
                    log.warning("runs_session_claim_failed", error=type(exc).__name__)
                    rows = []
                if rows:
                    for row in rows:
                        session.hold(str(row["id"]), row["attempt"])
                    for lane, count in collections.Counter(row["lane"] for row in rows).items():
                        self._metrics.entered(lane, "running", count)
                    session.lease([run_message(row) for row in rows])
                if len(rows) < asked and session.taking:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(session.work.wait(), self.poll_seconds)
        finally:
            session.leasing_done.set()

    # -- shared: heartbeats ----------------------------------------------------------------------

    async def heartbeat_once(self) -> int:
        """Heartbeat every run every session holds, in one statement; push `cancel` for those
        whose cancellation was requested. Returns how many runs were still held."""
        held = [
            store.HeldRun(run_id, attempt, session.worker_id, session.scope)
            for session in list(self._sessions.values())
            for run_id, attempt in list(session.held.items())
        ]
        if not held:
            return 0
        rows = await store.run_heartbeat_many(self._pool, held)
        for row in rows:
            if row["cancel_requested"]:
                self._push_cancel(str(row["id"]), row["attempt"])
        return len(rows)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self.heartbeat_once()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one beat's failure
                log.warning("runs_session_heartbeat_failed", error=type(exc).__name__)

    def _push_cancel(self, run_id: str, attempt: int) -> None:
        holder = self._holders.get(run_id)
        if holder is not None:
            holder.push_cancel(run_id, attempt)

    # -- shared: the listening connection --------------------------------------------------------

    async def _listen_loop(self) -> None:
        while True:
            try:
                self._lost.clear()
                self._listener = await asyncpg.connect(self._dsn)
                self._listener.add_termination_listener(lambda _: self._lost.set())
                await self._listener.add_listener(store.ENQUEUED_CHANNEL, self._on_enqueued)
                await self._listener.add_listener(store.CANCELLED_CHANNEL, self._on_cancelled)
                self.listening.set()
                # Anything enqueued or cancelled while nobody listened: idle sessions look now,
                # and the next heartbeat reports the cancellations.
                for session in list(self._sessions.values()):
                    session.work.set()
                await self._lost.wait()
                raise ConnectionError("the listening connection was lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect whatever broke
                log.warning("runs_sessions_listener_reconnecting", error=type(exc).__name__)
                self.listening.clear()
                await self._close_listener()
                await asyncio.sleep(min(self.poll_seconds, 0.5))

    def _on_enqueued(self, connection: object, pid: int, channel: str, agent: str) -> None:
        for session in self._sessions.values():
            if session.wants(agent):
                session.work.set()

    def _on_cancelled(self, connection: object, pid: int, channel: str, payload: str) -> None:
        run_id, _, attempt = payload.partition(" ")
        if attempt.isdigit():
            self._push_cancel(run_id, int(attempt))

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), 2)
