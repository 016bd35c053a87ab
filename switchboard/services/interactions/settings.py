"""The interactions service's own settings: event streams' retention, polling and fair shares."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.shared.settings import EnvSettings, Prefix, integer, seconds, setting


@dataclass(frozen=True)
class InteractionsSettings(EnvSettings):
    PREFIXES = (Prefix("SWITCHBOARD_EVENTS_"),)

    events_retention_count: int = setting("SWITCHBOARD_EVENTS_RETENTION_COUNT", integer(1, 10_000_000), 10_000)
    events_retention_seconds: float = setting("SWITCHBOARD_EVENTS_RETENTION_SECONDS", seconds(1, 365 * 86400), 86400.0)
    events_poll_seconds: float = setting("SWITCHBOARD_EVENTS_POLL_SECONDS", seconds(0.05, 60), 1.0)
    # How far (in events) a live subscriber may fall behind its stream's head before it is ended
    # with the position to resume from.
    events_max_lag: int = setting("SWITCHBOARD_EVENTS_MAX_LAG", integer(1, 1_000_000), 1000)
    events_max_subscribers: int = setting("SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS", integer(1, 1_000_000), 1000)
    events_max_subscribers_per_stream: int = setting("SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_STREAM", integer(1, 10_000), 16)
    # Fair shares on each replica: one organisation, or one agent's streams together, cannot take
    # the capacity of the others.
    events_max_subscribers_per_organization: int = setting(
        "SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_ORGANIZATION", integer(1, 1_000_000), 200
    )
    events_max_subscribers_per_agent: int = setting("SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_AGENT", integer(1, 1_000_000), 64)
    events_max_subscribers_per_user: int = setting("SWITCHBOARD_EVENTS_MAX_SUBSCRIBERS_PER_USER", integer(1, 1_000_000), 64)
