"""Event streams: names, validation, who may use which stream, subscriber limits (no I/O)."""

from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from collections.abc import Iterator

from shared.auth import InternalCaller, Principal, WorkerPrincipal
from shared.errors import NotFound, PermissionDenied, ResourceExhausted
from shared.validation import Violations

STREAM = re.compile(r"^[A-Za-z0-9_.:-](?:[A-Za-z0-9_.:/-]{0,198}[A-Za-z0-9_.:-])?$")
TYPE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
MAX_PAYLOAD = 1 << 20
MAX_BATCH = 100
MAX_BATCH_BYTES = 3 << 20


def stream_name(v: Violations, field: str, value: str) -> str:
    if not STREAM.match(value) or "//" in value:
        v.add(field, "must be 1 to 200 letters, digits or -_.:/ with no leading, trailing or double '/'")
    return value


def event_type(v: Violations, field: str, value: str) -> str:
    if not TYPE.match(value):
        v.add(field, "must be 1 to 100 letters, digits or ._-")
    return value


def payload(v: Violations, field: str, value: str) -> str:
    """An event's JSON payload: at most 1 MiB, bounded in depth (empty is refused as not JSON)."""
    if not value:
        v.add(field, "must be valid JSON")
        return value
    v.json(field, value, max_bytes=MAX_PAYLOAD)
    return value


def authorize(principal: Principal, organization_id: str, stream: str) -> None:
    """Workers use their own organisation's streams, and of the agents/… ones only their own."""
    if not isinstance(principal, WorkerPrincipal):
        return
    if principal.organization_id != organization_id:
        raise NotFound(f"stream {stream!r} does not exist", reason="STREAM_NOT_FOUND")
    own = f"agents/{principal.agent_id}"
    if stream.startswith("agents/") and stream != own and not stream.startswith(own + "/"):
        raise PermissionDenied(f"a worker of agent {principal.agent_id} may use {own} but not {stream!r}", reason="OTHER_AGENT")


def principal_key(principal: Principal) -> str:
    if isinstance(principal, WorkerPrincipal):
        return f"worker:{principal.agent_id}"
    assert isinstance(principal, InternalCaller)
    return f"internal:{principal.acting_user_id or ''}"


class SubscriberLimits:
    """Concurrent subscriptions per process, and per (principal, stream)."""

    def __init__(self, per_process: int, per_stream: int):
        self._per_process = per_process
        self._per_stream = per_stream
        self._total = 0
        self._by_stream: Counter[tuple[str, str, str]] = Counter()

    @contextmanager
    def slot(self, principal: Principal, organization_id: str, stream: str) -> Iterator[None]:
        """Hold one subscription slot; RESOURCE_EXHAUSTED when none is free."""
        key = (principal_key(principal), organization_id, stream)
        if self._total >= self._per_process:
            raise ResourceExhausted(
                f"this replica serves its maximum of {self._per_process} subscriptions; retry or use another replica",
                reason="TOO_MANY_SUBSCRIBERS",
            )
        if self._by_stream[key] >= self._per_stream:
            raise ResourceExhausted(
                f"at most {self._per_stream} concurrent subscriptions per stream and caller", reason="TOO_MANY_SUBSCRIPTIONS"
            )
        self._total += 1
        self._by_stream[key] += 1
        try:
            yield
        finally:
            self._total -= 1
            self._by_stream[key] -= 1
            if not self._by_stream[key]:
                del self._by_stream[key]
