"""Background delivery of events to webhook endpoints, signed as Stripe signs them.

Deliveries are retried with exponential backoff on any non-2xx answer or network error.
Chaos mode (a setting) duplicates, shuffles and delays deliveries, so that a receiver's
idempotency and order-independence can be tested for real.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .resources.events import endpoints_for
from .state import State

MAX_LOGGED_DELIVERIES = 10_000


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    event_id: str = field(compare=False)
    endpoint_id: str = field(compare=False)
    attempt: int = field(compare=False, default=1)


class Dispatcher:
    def __init__(self, state: State) -> None:
        self.state = state
        self.cond = threading.Condition()
        self.queue: list[_Delivery] = []
        self.delivering: list[_Delivery] = []
        self.seq = 0
        self.stopped = False
        self.threads: list[threading.Thread] = []
        self.random = random.Random()
        state.event_listeners.append(self.on_event)

    # producer side ----------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        chaos = self.state.settings["chaos"]
        if chaos.get("seed") is not None and not getattr(self, "_seeded", False):
            self.random.seed(chaos["seed"])
            self._seeded = True
        for endpoint in endpoints_for(self.state, event["type"]):
            copies = 2 if self.random.random() < float(chaos.get("duplicate_rate") or 0) else 1
            for _ in range(copies):
                delay = self.random.uniform(0, float(chaos.get("max_delay_seconds") or 0))
                self._push(event["id"], endpoint["id"], time.monotonic() + delay, 1)

    def _push(self, event_id: str, endpoint_id: str, due: float, attempt: int) -> None:
        with self.cond:
            self.seq += 1
            window = int(self.state.settings["chaos"].get("shuffle_window") or 0)
            if window > 1:
                # Shuffle: hold deliveries briefly so a later event may overtake an earlier one.
                due += self.random.uniform(0, 0.05 * window)
            self.queue.append(_Delivery(due, self.seq, event_id, endpoint_id, attempt))
            self.queue.sort()
            # All: a single wake-up could go to a caller of idle() or settled() instead of a worker.
            self.cond.notify_all()

    # consumer side -----------------------------------------------------------------

    def start(self, workers: int = 2) -> None:
        self.stopped = False
        for n in range(workers):
            thread = threading.Thread(target=self._run, name=f"stripe-emulator-webhooks-{n}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join(timeout=2)
        self.threads = []

    def clear(self) -> None:
        with self.cond:
            self.queue.clear()
            self._seeded = False
            self.cond.notify_all()

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued due now or in flight; retries scheduled later don't count."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                soon = [d for d in self.queue if d.due <= time.monotonic() + 0.25]
                if not soon and not self.delivering:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.05))

    def settled(self, endpoint_id: str, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or in flight for one endpoint, retries scheduled later
        included, so that every event sent to it so far has had its final delivery attempt."""
        with self.cond:
            return self.cond.wait_for(
                lambda: not any(d.endpoint_id == endpoint_id for d in (*self.queue, *self.delivering)), timeout
            )

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopped and (not self.queue or self.queue[0].due > time.monotonic()):
                    wait = self.queue[0].due - time.monotonic() if self.queue else None
                    self.cond.wait(wait if wait is None or wait > 0 else 0.001)
                if self.stopped:
                    return
                delivery = self.queue.pop(0)
                self.delivering.append(delivery)
            try:
                # A retry is queued inside _deliver, before this delivery stops counting as in
                # flight, so settled() never sees a gap between the two.
                self._deliver(delivery)
            finally:
                with self.cond:
                    self.delivering.remove(delivery)
                    self.cond.notify_all()

    def _deliver(self, delivery: _Delivery) -> None:
        state = self.state
        with state.lock:
            event = state.find(delivery.event_id)
            endpoint = state.find(delivery.endpoint_id)
            if event is None or endpoint is None or endpoint.get("_deleted"):
                return
            payload = json.dumps({k: v for k, v in event.items() if not k.startswith("_")}, indent=2).encode()
            url, secret = endpoint["url"], endpoint["_secret"]
            timeout = float(state.settings["webhook_timeout_seconds"])
        timestamp = int(time.time())
        request = urllib.request.Request(
            url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": sign(payload, secret, timestamp),
            },
        )
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            error = str(exc)
        ok = status is not None and 200 <= status < 300
        with state.lock:
            del state.deliveries[:-MAX_LOGGED_DELIVERIES]  # a long demo must not grow without bound
            state.deliveries.append({
                "event": delivery.event_id, "type": event["type"], "endpoint": delivery.endpoint_id,
                "attempt": delivery.attempt, "status": status, "error": error, "ok": ok,
                "at": time.time(),
            })
            if ok:
                event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
            retry = not ok and delivery.attempt < int(state.settings["webhook_max_attempts"])
            base = float(state.settings["webhook_retry_base_seconds"])
        if retry:
            backoff = base * 2 ** (delivery.attempt - 1)
            self._push(delivery.event_id, delivery.endpoint_id, time.monotonic() + backoff, delivery.attempt + 1)
