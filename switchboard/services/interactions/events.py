"""Event streams: names, validation, subscriber limits (no I/O). Who may use which stream is
declared on the EventService methods (a worker: its own agent's streams only)."""

from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from collections.abc import Iterator

from switchboard.shared.authz import Access
from switchboard.shared.errors import ResourceExhausted
from switchboard.shared.validation import Violations

STREAM = re.compile(r"^[A-Za-z0-9_.:-](?:[A-Za-z0-9_.:/-]{0,198}[A-Za-z0-9_.:-])?\Z")
TYPE = re.compile(r"^[A-Za-z0-9._-]{1,100}\Z")
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


class SubscriberLimits:
    """Concurrent subscriptions on this replica, bounded so that no caller and no tenant can take
    the capacity of the others: per (caller, stream), per worker's agent (its sub-streams count
    toward it), per acting user across organisations, per organisation, and per process. Counted per replica: the cluster-wide bound is
    the replica count times these (README, "Fair shares")."""

    def __init__(
        self,
        per_process: int,
        per_stream: int,
        per_organization: int | None = None,
        per_agent: int | None = None,
        per_user: int | None = None,
    ):
        self._bounds = {
            "per_process": per_process,
            "per_stream": per_stream,
            "per_organization": per_organization or per_process,
            "per_agent": per_agent or per_process,
            "per_user": per_user or per_process,
        }
        self._counts: Counter[tuple[str, ...]] = Counter()

    @contextmanager
    def slot(self, access: Access, organization_id: str, stream: str) -> Iterator[None]:
        """Hold one subscription slot; RESOURCE_EXHAUSTED naming the limit when none is free."""
        keys = [
            (("per_stream", _caller(access), organization_id, stream), "concurrent subscriptions per stream and caller"),
            (("per_organization", organization_id), f"concurrent subscriptions of organization {organization_id} on this replica"),
            (("per_process",), "subscriptions on this replica; retry or use another replica"),
        ]
        if access.kind == "worker":
            agent = access.principal.agent_id  # type: ignore[union-attr]
            keys.insert(1, (("per_agent", agent), f"concurrent subscriptions of agent {agent} (its sub-streams included)"))
        elif access.kind == "user":
            # Across all the organisations a user is in (creating organisations is free).
            keys.insert(1, (("per_user", access.user_id or ""), "concurrent subscriptions of one user, in all organisations"))
        for key, what in keys:
            bound = self._bounds[key[0]]
            if self._counts[key] >= bound:
                raise ResourceExhausted(
                    f"at most {bound} {what}",
                    reason="TOO_MANY_SUBSCRIBERS" if key[0] == "per_process" else "TOO_MANY_SUBSCRIPTIONS",
                    metadata={"limit": key[0], "max": str(bound)},
                )
        for key, _ in keys:
            self._counts[key] += 1
        try:
            yield
        finally:
            for key, _ in keys:
                self._counts[key] -= 1
                if not self._counts[key]:
                    del self._counts[key]


def _caller(access: Access) -> str:
    if access.kind == "worker":
        return f"worker:{access.principal.agent_id}"  # type: ignore[union-attr]
    return f"{access.kind}:{access.user_id or ''}"
