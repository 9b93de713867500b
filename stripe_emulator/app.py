"""The emulator as an object: state, HTTP server, clock ticker and webhook dispatcher.

Start it in a thread (tests) or as ``python -m stripe_emulator`` (demo, CI)."""

from __future__ import annotations

import itertools
import json
import pathlib
import threading
import time
from typing import Any

from . import (
    billing,
    emulator_api,
    resources,  # noqa: F401  (registers routes)
)
from .server import Server
from .state import Job, State
from .webhooks import Dispatcher


class Emulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, snapshot: str | None = None) -> None:
        self.host = host
        self.port = port
        self.state = State()
        self.dispatcher = Dispatcher(self.state)
        self.snapshot = pathlib.Path(snapshot) if snapshot else None
        self.server: Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._in_flight: set[tuple[str, str]] = set()
        self._idem_lock = threading.Lock()
        # API requests being served, for `requests_idle` (a request goes on after its client gave up).
        self._serving = 0
        self._served = threading.Condition()

    # lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Emulator:
        if self.snapshot and self.snapshot.exists():
            self.load(self.snapshot)
        self.server = Server((self.host, self.port), self)
        self.port = self.server.server_address[1]
        self.state.settings["public_url"] = self.url
        self._stop.clear()
        self._spawn(self.server.serve_forever, "http")
        self._spawn(self._tick, "clock")
        self.dispatcher.start()
        return self

    def stop(self) -> None:
        """Close the listening socket (clients then get "connection refused"); state is kept,
        and ``start()`` again resumes on the same port."""
        self._stop.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.close_connections()
            self.server.server_close()
            self.server = None
        self.dispatcher.stop()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []
        if self.snapshot:
            self.save(self.snapshot)

    def reset(self) -> None:
        public_url = self.state.settings.get("public_url")
        self.dispatcher.clear()
        self.state.reset()
        self.state.event_listeners.append(self.dispatcher.on_event)
        self.state.settings["public_url"] = public_url
        with self._idem_lock:
            self._in_flight.clear()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=f"stripe-emulator-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _tick(self) -> None:
        """Run what is due for objects on real time (those without a test clock)."""
        while not self._stop.wait(0.25):
            billing.run_due(self.state, clock=None, until=int(time.time()))

    # snapshots (demo) -------------------------------------------------------------------

    def save(self, path: pathlib.Path) -> None:
        with self.state.lock:
            data = {
                "objects": self.state.objects,
                "jobs": {k or "": [vars(j) for j in v] for k, v in self.state.jobs.items()},
                "settings": self.state.settings,
            }
            path.write_text(json.dumps(data))

    def load(self, path: pathlib.Path) -> None:
        data = json.loads(path.read_text())
        with self.state.lock:
            self.state.reset()
            self.state.event_listeners.append(self.dispatcher.on_event)
            for obj in sorted(data["objects"].values(), key=lambda o: o.get("_seq", 0)):
                self.state.add(obj)
            for clock, jobs in data["jobs"].items():
                for job in jobs:
                    self.state.jobs[clock or None].append(Job(**job))
            self.state.settings.update(data["settings"])
            # Go on numbering after the restored objects, so list order stays creation order.
            self.state.counters = itertools.count(
                max((o.get("_seq", 0) for o in self.state.objects.values()), default=0) + 1
            )

    def requests_idle(self, timeout: float) -> bool:
        """Wait until no API request is being served (one a client stopped waiting for included);
        False if that took longer than `timeout` seconds."""
        with self._served:
            return self._served.wait_for(lambda: self._serving == 0, timeout=timeout)

    def key_in_use(self, idempotency_key: str, timeout: float, api_key: str = "sk_test_emulator") -> bool:
        """Wait until a request holding this idempotency key is being served."""
        with self._served:
            return self._served.wait_for(lambda: (api_key, idempotency_key) in self._in_flight, timeout=timeout)

    # used by the HTTP layer -------------------------------------------------------------

    def serving(self, delta: int) -> None:
        with self._served:
            self._serving += delta
            self._served.notify_all()

    def take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        with self.state.lock:
            for fault in self.state.faults:
                if fault.get("method") not in (None, method):
                    continue
                if not path.startswith(fault.get("path_prefix", "/v1/")):
                    continue
                fault["count"] = int(fault.get("count", 1)) - 1
                if fault["count"] <= 0:
                    self.state.faults.remove(fault)
                return fault
        return None

    def idempotent_lookup(self, key: str, idem: str, fingerprint: str) -> tuple[int, bytes, dict[str, str]] | None:
        from .errors import IdempotencyError

        with self._idem_lock:
            saved = self.state.idempotency.get((key, idem))
            if saved is None:
                if (key, idem) in self._in_flight:
                    raise IdempotencyError(
                        "There is currently another in-progress request using this Idempotent Key "
                        "(that probably means you submitted twice, and the other request is still "
                        "going through). Please try again later.", status=409,
                    )
                self._in_flight.add((key, idem))
                with self._served:  # wakes key_in_use()
                    self._served.notify_all()
                return None
        stored_fingerprint, status, body, headers = saved
        if stored_fingerprint != fingerprint:
            raise IdempotencyError(
                "Keys for idempotent requests can only be used with the same parameters they were "
                f"first used with. Try using a key other than '{idem}' if you meant to execute a "
                "different request.", status=400,
            )
        return status, body, headers

    def idempotent_save(self, slot: tuple[str, str], fingerprint: str, status: int, body: bytes,
                        headers: dict[str, str]) -> None:
        with self._idem_lock:
            self.state.idempotency[slot] = (fingerprint, status, body, dict(headers))

    def idempotent_release(self, slot: tuple[str, str]) -> None:
        with self._idem_lock:
            self._in_flight.discard(slot)

    def serve_other(self, method: str, path: str, query: str, raw: bytes,
                    headers: dict[str, str]) -> tuple[int, str, bytes] | None:
        return emulator_api.serve(self, method, path, query, raw, headers)
