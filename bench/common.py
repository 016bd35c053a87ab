"""What every benchmark shares: the machine, repetitions with medians and spread, the results table."""

from __future__ import annotations

import os
import platform
import statistics
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from switchboard.shared.embedded_pg import create_database


@dataclass
class Measurement:
    """Repeated samples of one figure (higher_is_better decides the ratio's direction)."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the range between the lowest and highest sample, relative to the median."""
        if len(self.samples) < 2 or not self.median:
            return 0.0
        return (max(self.samples) - min(self.samples)) / 2 / self.median


@dataclass
class Row:
    figure: str
    unit: str
    value: Measurement
    baseline_name: str
    baseline: Measurement | None
    higher_is_better: bool = True
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.median or not self.value.median:
            return None
        if self.higher_is_better:
            return self.value.median / self.baseline.median
        return self.baseline.median / self.value.median


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def repeat(times: int, once: Callable[[], Awaitable[float]], *, warmup: int = 1) -> Measurement:
    """Run ``once`` ``warmup`` times unmeasured, then ``times`` times measured."""
    for _ in range(warmup):
        await once()
    return Measurement([await once() for _ in range(times)])


async def fresh_database(admin_dsn: str) -> str:
    return await create_database(admin_dsn, f"bench_{uuid.uuid4().hex[:12]}")


def machine() -> str:
    memory = "?"
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
            memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {memory} memory, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def render(rows: list[Row], notes: list[str], *, seconds: float) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}. Whole run: {seconds:.0f} s. Each figure is the median of its",
        "repetitions after a warm-up; ± is half the range of the repetitions, relative to the median.",
        "The ratio says how many times better Switchboard is than the baseline (above 1: better).",
        "",
        "| figure | Switchboard | baseline | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        value = f"{_number(row.value.median)} {row.unit} ±{row.value.spread:.0%}"
        baseline = (
            f"{row.baseline_name}: {_number(row.baseline.median)} {row.unit} ±{row.baseline.spread:.0%}"
            if row.baseline is not None
            else row.baseline_name
        )
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None else "–"
        lines.append(f"| {row.figure} | {value} | {baseline} | {ratio} | {row.goal} |")
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"


RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
