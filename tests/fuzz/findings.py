"""Every failing call of a fuzz run, appended as a JSON line to ``SWITCHBOARD_FUZZ_FINDINGS`` when
that names a file: the raw material for grouping a run's failures (each with its smallest input),
beyond the one example per failure that Hypothesis prints."""

from __future__ import annotations

import json
import os
from typing import Any

_PATH = os.environ.get("SWITCHBOARD_FUZZ_FINDINGS")


def record(target: str, outcome: str, details: str, request: Any) -> None:
    if not _PATH:
        return
    line = {"target": target, "outcome": outcome, "details": details[:1500], "request": repr(request)[:3000]}
    with open(_PATH, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
