"""Benchmarks: Switchboard side by side with the raw limits and its peers, in one run.

Not part of the test suite. ``./scripts/bench`` runs them all on an embedded PostgreSQL and writes
bench/RESULTS.md.
"""
