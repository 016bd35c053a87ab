"""Every PostgreSQL advisory-lock key Switchboard takes, with its owner, in one registry.

All services share one database, and advisory locks live in one key space per database, not per
schema: two owners that picked the same key would exclude each other for no reason. Keys are
bigint constants; a store passes one as ``pg_try_advisory_xact_lock($1)``. A key never changes
once shipped: during a rolling upgrade the old and the new replicas must still exclude each other.
tests/unit/test_locks.py checks the keys are distinct and that no other module defines one.
"""

from __future__ import annotations

# switchboard/shared/migrate.py: one migration run at a time, for every schema (a single key cannot deadlock
# with itself, and migrations are quick).
MIGRATIONS = 0x5357_4D49_4752  # "SWMIGR"
# switchboard/services/interactions/retention.py: one replica trims the event streams at a time.
INTERACTIONS_RETENTION = 0x5357_5245_544E  # "SWRETN"
# switchboard/services/interactions/sweeper.py: one replica sweeps stale pending questions at a time.
INTERACTIONS_SWEEP = 0x5357_5357_4550  # "SWSWEP"
# switchboard/services/runs/reaper.py: one replica reaps stale runs at a time.
RUNS_REAPER = 0x5357_5245_4150  # "SWREAP"
# switchboard/services/secretproxy/retention.py: one replica trims the audit log and failed lookups at a time.
# The value of hashtext('secretproxy.maintenance'), the key this lock was first taken under
# (tests/platform/test_locks.py checks that PostgreSQL still computes it).
SECRETPROXY_MAINTENANCE = 40938520

KEYS: dict[str, int] = {
    "MIGRATIONS": MIGRATIONS,
    "INTERACTIONS_RETENTION": INTERACTIONS_RETENTION,
    "INTERACTIONS_SWEEP": INTERACTIONS_SWEEP,
    "RUNS_REAPER": RUNS_REAPER,
    "SECRETPROXY_MAINTENANCE": SECRETPROXY_MAINTENANCE,
}
"""Every key by name (for the registry's own test)."""
