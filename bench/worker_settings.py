"""Settings for the `celery worker` that bench/portal_bench.py starts for the recovery burst.

The test settings (test keys, the local-memory email backend: messages still go through the
outbox's claim → transmit → sent path) with tasks published to Redis, and Stripe at the emulator
the bench runs.  Quiet hours, the broker and the database come from the environment the bench
gives the worker.

With ``BENCH_TASK_PROFILE`` set, every task the worker runs appends one JSON line to that file:
its name, first argument, start and end (epoch seconds) and the SQL it ran (count and seconds),
so that the bench can say where a burst's time went (queue wait, event processing, sending).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery.signals import task_postrun, task_prerun

from tests.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
STRIPE_API_BASE = os.environ["STRIPE_API_BASE"]

_PROFILE = os.environ.get("BENCH_TASK_PROFILE", "")
_running: dict[str, dict[str, Any]] = {}


class _SqlClock:
    """A connection execute wrapper: counts the statements a task runs and the time they take."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - t0


@task_prerun.connect
def _started(task_id: str, task: Any, args: Any = None, **kwargs: Any) -> None:
    if not _PROFILE:
        return
    from django.db import connection

    clock = _SqlClock()
    wrapper = connection.execute_wrapper(clock)
    wrapper.__enter__()
    _running[task_id] = {"clock": clock, "wrapper": wrapper, "start": time.time(), "cpu": time.process_time()}


@task_postrun.connect
def _finished(task_id: str, task: Any, args: Any = None, retval: Any = None, **kwargs: Any) -> None:
    run = _running.pop(task_id, None)
    if run is None:
        return
    run["wrapper"].__exit__(None, None, None)
    clock: _SqlClock = run["clock"]
    line = {
        "task": task.name.rsplit(".", 1)[-1],
        "arg": (list(args or []) or [None])[0],
        "start": run["start"],
        "end": time.time(),
        "cpu_seconds": round(time.process_time() - run["cpu"], 6),
        "sql": clock.count,
        "sql_seconds": round(clock.seconds, 6),
        "result": str(retval),
    }
    with open(_PROFILE, "a") as out:
        out.write(json.dumps(line) + "\n")
