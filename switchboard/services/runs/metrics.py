"""Prometheus metrics of the runs service: transitions by lane and status, active runs, claim
latency, reaped runs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RunMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.transitions = Counter(
            "switchboard_runs_transitions",
            "Runs that entered a status (on this replica), by lane and status.",
            ["lane", "status"],
            registry=registry,
        )
        self.active = Gauge(
            "switchboard_runs_active",
            "Active runs by lane and status, as of the last reaper sweep (any replica).",
            ["lane", "status"],
            registry=registry,
        )
        self.claim_seconds = Histogram(
            "switchboard_runs_claim_seconds",
            "Time ClaimRun spent finding and claiming a run.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=registry,
        )
        self.reaped = Counter("switchboard_runs_reaped", "Runs the reaper timed out (on this replica).", registry=registry)
        self.outcome_flushes = Counter(
            "switchboard_runs_outcome_flushes",
            "Statements that recorded worker sessions' outcomes (on this replica): each covers a batch.",
            registry=registry,
        )
        self.outcomes = Counter(
            "switchboard_runs_session_outcomes",
            "Outcomes (complete, fail, release) worker sessions reported (on this replica), by kind.",
            ["kind"],
            registry=registry,
        )
        self.sweeps = Counter(
            "switchboard_runs_reaper_sweeps", "Reaper sweeps, by whether this replica held the lock.", ["acquired"], registry=registry
        )

        self._entered: dict[tuple[str, str], object] = {}

    def entered(self, lane: str, status: str, count: int = 1) -> None:
        # The labelled child, cached: sessions count a transition per run, thousands a second.
        child = self._entered.get((lane, status))
        if child is None:
            child = self._entered[(lane, status)] = self.transitions.labels(lane, status)
        child.inc(count)  # type: ignore[attr-defined]
