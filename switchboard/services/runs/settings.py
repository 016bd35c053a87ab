"""The runs service's own settings: the reaper's pace. Each is read as SWITCHBOARD_RUNS_REAPER_…
and, as first documented, as RUNS_REAPER_… (the same value under both is fine, two values are an
error)."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.shared.settings import EnvSettings, Prefix, integer, seconds, setting


@dataclass(frozen=True)
class RunsSettings(EnvSettings):
    # RUNS_ alone is generic enough that other software may use it: there only near misses count.
    PREFIXES = (Prefix("RUNS_REAPER_"), Prefix("RUNS_", shared=True))

    runs_reaper_interval_seconds: float = setting(
        "SWITCHBOARD_RUNS_REAPER_INTERVAL_SECONDS", seconds(0.05, 3600), 30.0, aliases=("RUNS_REAPER_INTERVAL_SECONDS",)
    )
    runs_reaper_stale_after_seconds: float = setting(
        "SWITCHBOARD_RUNS_REAPER_STALE_AFTER_SECONDS", seconds(0.5, 86400), 120.0, aliases=("RUNS_REAPER_STALE_AFTER_SECONDS",)
    )
    runs_reaper_batch_size: int = setting(
        "SWITCHBOARD_RUNS_REAPER_BATCH_SIZE", integer(1, 100_000), 1000, aliases=("RUNS_REAPER_BATCH_SIZE",)
    )
