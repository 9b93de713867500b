"""How fast a job writes to Stripe, as the emulator sees it.

`measure_writes` runs a callable that makes Stripe writes through the portal's gateway (inside
`gateway.paced()` unless told otherwise), records the moment each write reaches an in-process
emulator, and returns the peak number of writes in any window of one second and the mean rate.
Used by benchmarks of bulk jobs (e.g. the payment extensions' due-date job) and by
tests/billing/test_ratelimit.py.  Django must be set up by the caller (the gateway reads its
settings), and the gateway must point at the emulator given.

    from bench.stripe_rate import measure_writes
    figures = measure_writes(emulator=emulator, writes=lambda: run_due_date_job())
    print(figures.writes, figures.peak_per_window, figures.mean_rate)
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# Requests that Stripe would not count as a job's writes: the clock the tests move, and the
# preview the gateway makes as a read.
NOT_WRITES = ("/v1/test_helpers/", "/v1/invoices/create_preview")


@dataclasses.dataclass(frozen=True)
class RateFigures:
    writes: int
    peak_per_window: int  # most writes that arrived within any `window` seconds
    window: float
    mean_rate: float  # writes a second between the first and the last (0 for fewer than two)
    elapsed: float  # seconds the callable ran
    arrivals: tuple[float, ...] = dataclasses.field(repr=False)  # time.monotonic() of each write

    def as_dict(self) -> dict[str, Any]:
        return {
            "writes": self.writes,
            "peak_per_window": self.peak_per_window,
            "window_s": self.window,
            "mean_rate_per_s": round(self.mean_rate, 2),
            "elapsed_s": round(self.elapsed, 3),
        }


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


def is_write(method: str, path: str) -> bool:
    return method in ("POST", "DELETE") and not path.startswith(NOT_WRITES)


@contextlib.contextmanager
def recording_writes(emulator: Any) -> Iterator[list[float]]:
    """The arrival time of every write the emulator receives within the block (appended as they
    come).  Composes with other handler wrappers (e.g. portal_bench's RequestCounter)."""
    server = emulator.server
    if server is None:
        raise RuntimeError("the emulator is not serving")
    # The handler class itself is patched, not replaced: a keep-alive connection opened before the
    # block keeps its handler object, and its writes count too.
    handler_class = server.RequestHandlerClass
    own = "_api" in vars(handler_class)
    original = handler_class._api
    arrivals: list[float] = []
    lock = threading.Lock()

    def recording_api(handler: Any, method: str, path: str, query: str, raw: bytes) -> None:
        if is_write(method, path):
            with lock:
                arrivals.append(time.monotonic())
        original(handler, method, path, query, raw)

    handler_class._api = recording_api
    try:
        yield arrivals
    finally:
        if own:
            handler_class._api = original
        else:
            del handler_class._api


def measure_writes(
    *, emulator: Any, writes: Callable[[], object], paced: bool = True, window: float = 1.0
) -> RateFigures:
    """Run `writes` (inside gateway.paced() unless paced=False) and report how its Stripe writes
    arrived at `emulator`."""
    from billing import gateway

    with recording_writes(emulator) as arrivals:
        pacing = gateway.paced() if paced else contextlib.nullcontext()
        started = time.monotonic()
        with pacing:
            writes()
        elapsed = time.monotonic() - started
    stamps = tuple(arrivals)
    return RateFigures(
        writes=len(stamps),
        peak_per_window=peak_in_window(stamps, window=window),
        window=window,
        mean_rate=mean_rate(stamps),
        elapsed=elapsed,
        arrivals=stamps,
    )
