"""Exact statistics over sorted durations. Percentiles use the nearest-rank definition: the p-th percentile
of n sorted values is the value at 1-based rank ceil(p * n / 100), so every figure is an observed duration
(p50 of 1, 2, 3, 4 is 2; p95 of 20 values is the 19th)."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass


def nearest_rank(ordered: Sequence[int], percent: int) -> int | None:
    """The nearest-rank percentile of ascending values; None for no values. Integer arithmetic: no rounding."""
    if not ordered:
        return None
    rank = (percent * len(ordered) + 99) // 100  # ceil(percent * n / 100)
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True, slots=True)
class DurationStats:
    """p50, p95 and max in milliseconds, and how many durations were within the target."""

    count: int
    p50_ms: int | None
    p95_ms: int | None
    max_ms: int | None
    within_target: int


def summarise(ordered: Sequence[int], target_ms: int) -> DurationStats:
    return DurationStats(
        count=len(ordered),
        p50_ms=nearest_rank(ordered, 50),
        p95_ms=nearest_rank(ordered, 95),
        max_ms=ordered[-1] if ordered else None,
        within_target=bisect.bisect_right(ordered, target_ms),
    )


def histogram(ordered: Sequence[int], edges: Sequence[int]) -> list[int]:
    """Counts in [0, e1), [e1, e2), ..., [e_last, inf) of ascending values: len(edges) + 1 numbers."""
    cuts = [0, *(bisect.bisect_left(ordered, edge) for edge in edges), len(ordered)]
    return [high - low for low, high in itertools.pairwise(cuts)]
