"""Bounds on concurrent subscriptions, shared by whoever holds them for a caller: the interactions
service (its Subscribe calls) and the edge (SSE clients fed from its one upstream per stream)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from switchboard.shared.authz import Access
from switchboard.shared.errors import ResourceExhausted


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

    def _keys(self, access: Access, organization_id: str, stream: str) -> list[tuple[tuple[str, ...], str]]:
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
        return keys

    def refusal(self, access: Access, organization_id: str, stream: str) -> ResourceExhausted | None:
        """The RESOURCE_EXHAUSTED (naming the limit) that ``slot`` would raise now, or None."""
        for key, what in self._keys(access, organization_id, stream):
            bound = self._bounds[key[0]]
            if self._counts[key] >= bound:
                return ResourceExhausted(
                    f"at most {bound} {what}",
                    reason="TOO_MANY_SUBSCRIBERS" if key[0] == "per_process" else "TOO_MANY_SUBSCRIPTIONS",
                    metadata={"limit": key[0], "max": str(bound)},
                )
        return None

    @contextmanager
    def slot(self, access: Access, organization_id: str, stream: str) -> Iterator[None]:
        """Hold one subscription slot; RESOURCE_EXHAUSTED naming the limit when none is free."""
        refused = self.refusal(access, organization_id, stream)
        if refused is not None:
            raise refused
        keys = self._keys(access, organization_id, stream)
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
