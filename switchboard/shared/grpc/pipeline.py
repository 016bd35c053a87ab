"""The request pipeline: one server interceptor that wraps every RPC handler once.

For each call, in order: take or mint a request id; authenticate the caller and check it against
the method's declared authorization policy (``shared.authz``; before the handler runs, and a method
without a policy is refused); bind request id, method and organisation to the log context; impose
the default deadline on unary calls that came without one; run the handler; map domain errors to rich statuses and anything
unexpected to INTERNAL (traceback in the log only); log one ``rpc_finished`` line and record metrics.

Wrapped handlers are built once per method and cached, so the per-call cost is the work above and
nothing else. Health checking and reflection pass through untouched: they need no token and
would only add noise to logs and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import structlog

from switchboard.shared.auth import Authenticator, InternalCaller, Principal, WorkerPrincipal, set_current_principal
from switchboard.shared.authz import Memberships, Policy, authorize, policy_of, set_current_access
from switchboard.shared.db import database_unavailable
from switchboard.shared.errors import DomainError, FieldViolation, InvalidArgument, PermissionDenied
from switchboard.shared.headers import REQUEST_ID_HEADER, REQUEST_ID_PATTERN
from switchboard.shared.logs import get_logger
from switchboard.shared.memberships import NoMemberships
from switchboard.shared.metrics import RpcMetrics

log = get_logger(__name__)

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")


class _Outcome:
    """What the pipeline observed about one call: its code and, for failures, the status to send."""

    __slots__ = ("code", "status", "message")

    def __init__(self) -> None:
        self.code = grpc.StatusCode.OK
        self.status: grpc.Status | None = None
        self.message = ""


class RequestPipeline(grpc.aio.ServerInterceptor):
    """Authentication, logging, deadlines, error mapping and metrics for every RPC of a server."""

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        metrics: RpcMetrics,
        default_deadline_seconds: float,
        memberships: Memberships | None = None,
    ):
        self._authenticator = authenticator
        self._memberships = memberships or NoMemberships()
        self._metrics = metrics
        self._default_deadline = default_deadline_seconds
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            return handler
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = wrapped
        return wrapped

    # -- building wrapped handlers ---------------------------------------------------------------

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        service, _, name = method.lstrip("/").rpartition("/")
        kinds = {
            (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler, True),
            (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler, False),
            (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler, True),
            (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler, False),
        }
        attribute, factory, unary_response = kinds[(handler.request_streaming, handler.response_streaming)]
        behavior = getattr(handler, attribute)
        declared = policy_of(behavior)
        if declared is not None and handler.request_streaming and (declared.target or declared.agent or declared.stream):
            raise TypeError(f"{method}: a streaming request has no fields to check; its policy may not name any")
        guard = _Guard(
            declared, getattr(behavior, "__self__", None), self._memberships, method,
            self._authenticator if handler.response_streaming else None,
        )  # fmt: skip
        if handler.request_streaming:
            behavior = _checking_requests(behavior)
        if unary_response:
            wrapped = self._unary_response(service, name, method, behavior, guard)
        else:
            wrapped = self._streaming_response(service, name, method, behavior, guard)
        return factory(
            wrapped,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _unary_response(self, service: str, name: str, method: str, behavior: Callable[..., Any], guard: _Guard):
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            outcome = _Outcome()
            started = time.perf_counter()
            metadata = context.invocation_metadata() or ()
            request_id = self._begin(method, context, metadata)
            # A caller's own deadline is enforced by gRPC itself; a timeout scope is a timer handle
            # per call, so it is paid only by calls that came without a deadline.
            scope = asyncio.timeout(self._default_deadline) if context.time_remaining() is None else None
            try:
                try:
                    principal = self._authenticate(request, metadata)
                    if scope is None:
                        await guard.check(principal, request)
                        return await _call(behavior, request, context)
                    async with scope:
                        await guard.check(principal, request)
                        return await _call(behavior, request, context)
                except BaseException as exc:  # noqa: BLE001 - classified, then re-raised or mapped
                    expired = scope is not None and scope.expired()
                    self._classify(exc, method, context, outcome, self._default_deadline if expired else None)
                await self._abort(context, outcome, request_id)
            finally:
                self._finish(service, name, method, outcome, started)

        return handle

    def _streaming_response(self, service: str, name: str, method: str, behavior: Callable[..., Any], guard: _Guard):
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            outcome = _Outcome()
            started = time.perf_counter()
            metadata = context.invocation_metadata() or ()
            request_id = self._begin(method, context, metadata)
            try:
                try:
                    principal = self._authenticate(request, metadata)
                    await guard.check(principal, request)
                    result = behavior(request, context)
                    if hasattr(result, "__aiter__"):
                        # aclosing: when the client goes away, the handler's own finally blocks run
                        # now (releasing connections, listeners), not whenever the GC gets to it.
                        async with contextlib.aclosing(result) as items:
                            async for item in items:
                                yield item
                    elif inspect.isawaitable(result):
                        await result  # a handler that writes with context.write()
                    elif result is not None:
                        raise TypeError(f"{method}: a streaming handler must be an async generator or use context.write()")
                    return
                except GeneratorExit:
                    outcome.code = grpc.StatusCode.CANCELLED  # the client left while we were sending
                    raise
                except BaseException as exc:  # noqa: BLE001 - classified, then re-raised or mapped
                    self._classify(exc, method, context, outcome, None)
                await self._abort(context, outcome, request_id)
            finally:
                self._finish(service, name, method, outcome, started)

        return handle

    # -- the steps -------------------------------------------------------------------------------

    def _begin(self, method: str, context: grpc.aio.ServicerContext, metadata: Sequence[tuple[str, Any]]) -> str:
        """Take or mint the request id and bind it to the log context; return it."""
        request_id = ""
        for key, value in metadata:
            if key == REQUEST_ID_HEADER and isinstance(value, str) and REQUEST_ID_PATTERN.match(value):
                request_id = value
                break
        request_id = request_id or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        return request_id

    def _authenticate(self, request: Any, metadata: Sequence[tuple[str, Any]]) -> Principal:
        """Bind the caller for the handler, or raise (a DomainError) before the handler runs."""
        principal = self._authenticator.authenticate(metadata)
        set_current_principal(principal)
        organization_id = _organization_of(principal, request)
        if organization_id:
            structlog.contextvars.bind_contextvars(organization_id=organization_id)
        return principal

    def _classify(
        self,
        exc: BaseException,
        method: str,
        context: grpc.aio.ServicerContext,
        outcome: _Outcome,
        deadline: float | None,
    ) -> None:
        """Turn what the handler raised into the status to send, or re-raise what must propagate.
        ``deadline`` is set only when the pipeline's own default deadline expired."""
        if isinstance(exc, DomainError):
            outcome.code, outcome.status, outcome.message = exc.code, exc.to_status(), exc.message
        elif isinstance(exc, TimeoutError) and deadline is not None:  # our default deadline expired
            outcome.code = grpc.StatusCode.DEADLINE_EXCEEDED
            outcome.message = f"the call did not finish within the server's default deadline of {deadline:g} s"
            outcome.status = _plain_status(outcome.code, outcome.message)
        elif (unreachable := database_unavailable(exc)) is not None:  # an outage to retry, not a bug
            outcome.code, outcome.status, outcome.message = unreachable.code, unreachable.to_status(), unreachable.message
            log.warning("rpc_database_unavailable", error=type(exc).__name__)
        elif isinstance(exc, NotImplementedError):
            outcome.code = grpc.StatusCode.UNIMPLEMENTED
            outcome.message = f"{method.lstrip('/')} is not implemented yet"
            outcome.status = _plain_status(outcome.code, outcome.message)
        elif isinstance(exc, grpc.aio.AbortError):
            # The handler aborted by itself; the status is already on the context.
            outcome.code = context.code() or grpc.StatusCode.UNKNOWN
            raise exc
        elif isinstance(exc, asyncio.CancelledError):
            outcome.code = grpc.StatusCode.CANCELLED
            raise exc
        elif isinstance(exc, Exception):
            outcome.code = grpc.StatusCode.INTERNAL
            outcome.message = "internal error; the server logged the details under this request id"
            outcome.status = _plain_status(outcome.code, outcome.message)
            log.error("rpc_unexpected_error", exc_info=exc)
        else:
            raise exc

    async def _abort(self, context: grpc.aio.ServicerContext, outcome: _Outcome, request_id: str) -> None:
        assert outcome.status is not None
        trailing = (*outcome.status.trailing_metadata, (REQUEST_ID_HEADER, request_id))
        await context.abort(outcome.status.code, outcome.status.details, trailing)

    def _finish(self, service: str, name: str, method: str, outcome: _Outcome, started: float) -> None:
        seconds = time.perf_counter() - started
        self._metrics.observe(service, name, outcome.code.name, seconds)
        fields = {"service": service, "status": outcome.code.name, "duration_ms": round(seconds * 1000, 3)}
        if outcome.message:
            fields["message"] = outcome.message
        if outcome.code in _SERVER_FAULTS:
            log.error("rpc_finished", **fields)
        else:
            log.info("rpc_finished", **fields)
        structlog.contextvars.unbind_contextvars("request_id", "method", "organization_id")


# Codes that mean the server is at fault (worth an error line); the rest are the caller's business.
_SERVER_FAULTS = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})


async def _call(behavior: Callable[..., Any], request: Any, context: grpc.aio.ServicerContext) -> Any:
    response = behavior(request, context)
    if inspect.isawaitable(response):
        response = await response
    return response


def _organization_of(principal: Principal, request: Any) -> str:
    if isinstance(principal, WorkerPrincipal):
        return principal.organization_id
    organization_id = getattr(request, "organization_id", "")
    return organization_id[:64] if isinstance(organization_id, str) else ""


class _Guard:
    """One method's authorization: its declared policy, checked before the handler runs; a method
    that declares none is refused to everyone (fail closed; a test lists every RPC's policy)."""

    __slots__ = ("_policy", "_servicer", "_memberships", "_method", "_long_lived")

    def __init__(
        self, declared: Policy | None, servicer: Any, memberships: Memberships, method: str, long_lived: Authenticator | None
    ):
        self._policy = declared
        self._servicer = servicer
        self._memberships = memberships
        self._method = method
        # For streamed responses: the authenticator that checks again, mid-stream, that the caller
        # still may (a revoked token or a removed member must not keep an open stream).
        self._long_lived = long_lived

    async def check(self, principal: Principal, request: Any) -> None:
        if isinstance(request, _Undecodable):
            raise InvalidArgument(FieldViolation("request", f"is not a valid message of this method: {request.problem}"))
        if self._policy is None:
            raise PermissionDenied(f"{self._method.lstrip('/')} declares no authorization policy", reason="NO_POLICY")
        access = await authorize(self._policy, principal, request, self._servicer, self._memberships)
        if self._long_lived is not None:
            access = dataclasses.replace(access, recheck=functools.partial(self._recheck, principal, request))
        set_current_access(access)

    async def _recheck(self, principal: Principal, request: Any) -> None:
        assert self._long_lived is not None and self._policy is not None
        self._long_lived.still_valid(principal)
        if isinstance(principal, InternalCaller) and principal.acting_user_id is not None:
            await authorize(self._policy, principal, request, self._servicer, self._memberships)


class _Undecodable:
    """A request whose bytes did not decode: refused as INVALID_ARGUMENT by the guard (gRPC itself
    would answer UNKNOWN with the exception's class in the message)."""

    __slots__ = ("problem",)

    def __init__(self, problem: str):
        self.problem = problem


def _checking_requests(behavior: Callable[..., Any]) -> Callable[..., Any]:
    """The handler of a streaming request, fed only messages that decoded."""

    async def checked(requests: Any) -> Any:
        async for request in requests:
            if isinstance(request, _Undecodable):
                raise InvalidArgument(FieldViolation("request", f"is not a valid message of this method: {request.problem}"))
            yield request

    def call(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        return behavior(checked(requests), context)

    return call


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - any decode failure is the caller's bad input
            return _Undecodable(type(exc).__name__ if not str(exc) else str(exc)[:200])

    return decode


def _plain_status(code: grpc.StatusCode, message: str) -> grpc.Status:
    return _Status(code, message, ())


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata
