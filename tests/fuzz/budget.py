"""How much the fuzz suite runs, and a tally of what it ran.

By default a few examples per RPC and per route, derandomized, so that the suite stays within its
share of the test command's time and CI sees the same inputs every run. For a larger run:
``SWITCHBOARD_FUZZ_EXAMPLES=500 ./scripts/test tests/fuzz`` (a random seed each run; Hypothesis
prints the seed and a reproduction blob for any failure, and ``SWITCHBOARD_FUZZ_SEED=<n>`` replays
a seed). ``SWITCHBOARD_FUZZ_FINDINGS=<file>`` records every failing call (see findings.py).
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, Phase, settings

DEFAULT_EXAMPLES = 4  # per RPC and principal; routes weigh theirs with a scale
_RAW = os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "")
EXAMPLES = int(_RAW) if _RAW.isascii() and _RAW.isdigit() and int(_RAW) > 0 else DEFAULT_EXAMPLES
LARGE_RUN = bool(_RAW)
SEED = os.environ.get("SWITCHBOARD_FUZZ_SEED")
# SWITCHBOARD_FUZZ_SHRINK=0: report each failure as found, without shrinking it to a minimal input
# (a quick survey of a run with many failures; shrinking one costs a few dozen calls).
SHRINK = os.environ.get("SWITCHBOARD_FUZZ_SHRINK", "1") != "0"

# Cases run, per "RPC as principal" and per route: printed at the end of the session.
TALLY: Counter[str] = Counter()


def fuzz_settings(scale: float = 1.0) -> settings:
    """Hypothesis settings for one fuzzed RPC or route; ``scale`` weights a target's share."""
    return settings(
        max_examples=max(1, round(EXAMPLES * scale)),
        deadline=None,  # gRPC and HTTP latency vary with the machine's load
        derandomize=not LARGE_RUN and SEED is None,
        database=None,  # no example replayed from an earlier run: a run is its seed, nothing else
        print_blob=True,
        # Every value comes from explicit strategies: big inputs and slow calls are the point.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example, HealthCheck.filter_too_much],
        phases=[Phase.explicit, Phase.generate, Phase.target, *([Phase.shrink, Phase.explain] if SHRINK else [])],
    )
