"""Real Celery worker processes for the integration tests, and polling with a deadline."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
# The interpreter running the tests, so the worker runs the same venv whatever its path.
CELERY = [sys.executable, "-m", "celery"]
ARTIFACTS = REPO / "artifacts" / "integration"
# Short, so that a task whose worker was killed comes back within a test (production: 600 s).
VISIBILITY_TIMEOUT_SECONDS = 5
# The workers' retry policy (BILLING_POLICY): the same rules, shorter waits.
FAST_RETRIES = {
    name: {"backoff": {"delays_seconds": [1, 2, 4], "max_seconds": 4}}
    for name in ("changes", "events", "messages")
}


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    workers: list[Worker] | None = None,
    interval: float = 0.1,
) -> T:
    """Poll until `predicate` returns something truthy and return it; fail after `timeout` seconds,
    showing the end of every worker's log (the usual place to see why)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(w.describe() for w in workers or [])
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(interval)


class Worker:
    """One `celery worker`: the main process (it takes messages from Redis and acknowledges them)
    and one pool process that runs the tasks, as in production.  With the solo pool an early
    acknowledgement only reaches Redis after the task, so a test killing a solo worker could
    not tell late acks from early ones."""

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.hostname = f"itest-{uuid.uuid4().hex[:10]}@localhost"
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                *CELERY,
                "-A",
                "portal",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--loglevel=INFO",
                f"--hostname={self.hostname}",
                # Alone on its broker: nothing to synchronise with at start-up.
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=REPO,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Its own process group, so that killing it never reaches pytest.
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, *, timeout: float = 10.0) -> re.Match[str]:
        """The first match of `pattern` in the log, once it is there: a task's outcome is logged
        by the pool process a moment after its transaction committed."""
        return wait_until(
            lambda: re.search(pattern, self.log()),
            timeout=timeout,
            what=f"/{pattern}/ in the log",
            workers=[self],
        )

    def describe(self) -> str:
        state = "running" if self.alive else f"exited {self.process.returncode}"
        tail = "\n".join(self.log().splitlines()[-40:])
        return f"--- worker {self.hostname} ({state}), log {self.log_path}:\n{tail}"

    def wait_ready(self, *, app: Any, timeout: float = 30.0) -> None:
        """Ready when it answers a ping over the broker (it then consumes the task queue too)."""

        def answered() -> bool:
            if not self.alive:
                raise AssertionError(f"the worker exited while starting\n{self.describe()}")
            return bool(app.control.ping(destination=[self.hostname], timeout=0.5))

        wait_until(answered, timeout=timeout, what=f"worker {self.hostname} to answer a ping", workers=[self])

    def pool_processes(self, *, app: Any) -> list[int]:
        stats = app.control.inspect(destination=[self.hostname], timeout=5).stats() or {}
        return [int(pid) for pid in stats[self.hostname]["pool"]["processes"]]

    def kill(self) -> int:
        """SIGKILL to the main and pool processes: no warm shutdown, no chance to ack or requeue."""
        if self.alive:
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    def stop(self) -> None:
        """At the end of a test: SIGKILL, as a lost machine would.  Nothing of it is needed any
        more (the broker is emptied after the test; PostgreSQL rolls back what it left open when
        its connections drop), and a warm or cold shutdown only waits on the pool (~1.5 s)."""
        self.kill()
        self._log_file.close()


class Workers:
    """Starts worker processes on demand; whatever is still running is stopped at teardown."""

    def __init__(self, *, env: dict[str, str], name: str) -> None:
        self.env = env
        self.name = name
        self.started: list[Worker] = []

    def start(self) -> Worker:
        from portal.celery import app

        log_path = ARTIFACTS / f"{self.name}-worker{len(self.started) + 1}.log"
        worker = Worker(env=self.env, log_path=log_path)
        self.started.append(worker)
        worker.wait_ready(app=app)
        return worker

    def stop_all(self) -> None:
        errors = []
        for worker in self.started:
            try:
                worker.stop()
            except Exception as exc:  # stop the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]
