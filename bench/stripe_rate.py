"""How fast calls went: the peak in any window and the mean rate of a list of timestamps."""

from __future__ import annotations

from collections.abc import Sequence


def peak_in_window(timestamps: Sequence[float], *, window: float = 1.0) -> int:
    """The most timestamps in any half-open window [t, t + window)."""
    ordered = sorted(timestamps)
    peak = 0
    first = 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - window:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def mean_rate(timestamps: Sequence[float]) -> float:
    if len(timestamps) < 2:
        return 0.0
    span = max(timestamps) - min(timestamps)
    return (len(timestamps) - 1) / span if span > 0 else float("inf")
