"""All emulator state: objects, ids, time, the job schedule, settings and events.

One re-entrant lock guards everything; handlers run under it, so each API request is
atomic, as it is at Stripe. Objects are stored as the JSON Stripe would return for them
(references as ids); keys starting with ``_`` are the emulator's own and never leave.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import secrets
import string
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import NotFound

API_VERSION = "2026-10-28.endive"
_ALPHABET = string.ascii_letters + string.digits

#: Emulator behaviour that Stripe keeps in its dashboard; ``/_emulator/settings`` changes it.
DEFAULT_SETTINGS: dict[str, Any] = {
    # Smart-Retries-like schedule: days after the first failed attempt (4 retries, 2 weeks).
    "retry_schedule_days": [1, 3, 7, 14],
    # After the last retry fails: "cancel" the subscription, mark it "unpaid", or leave it "past_due".
    "after_final_failure": "cancel",
    # What happens to the invoice then: "leave_open" or "mark_uncollectible".
    "invoice_after_final_failure": "leave_open",
    # Renewal invoices are finalized and charged this long after they are created.
    "finalize_after_seconds": 3600,
    # invoice.upcoming is sent this many days before a renewal.
    "upcoming_days_before": 7,
    # How long a pending_update waits for its invoice to be paid.
    "pending_update_seconds": 23 * 3600,
    # Webhook delivery: first retry after this many seconds, doubling, at most this many attempts.
    "webhook_retry_base_seconds": 0.5,
    "webhook_max_attempts": 8,
    "webhook_timeout_seconds": 10.0,
    # Chaos mode for reliability tests: probability of a duplicate delivery, shuffling of
    # deliveries within a window, and an extra random delay.
    "chaos": {"duplicate_rate": 0.0, "shuffle_window": 0, "max_delay_seconds": 0.0, "seed": None},
}


@dataclass(order=True)
class Job:
    due: int
    seq: int
    kind: str = field(compare=False)
    target: str = field(compare=False)
    data: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass
class RequestContext:
    request_id: str | None = None
    idempotency_key: str | None = None
    #: Stripe.js calls with a publishable key and proves access with the intent's client secret.
    publishable: bool = False
    client_secret: str | None = None


class State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: Notified (under ``lock``) whenever a test clock settles, is deleted, or everything is
        #: reset, so that a caller can wait for a clock instead of polling it.
        self.clocks_changed = threading.Condition(self.lock)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.objects: dict[str, dict[str, Any]] = {}
            self.by_type: dict[str, list[str]] = defaultdict(list)
            self.jobs: dict[str | None, list[Job]] = defaultdict(list)
            self.settings: dict[str, Any] = copy.deepcopy(DEFAULT_SETTINGS)
            self.idempotency: dict[tuple[str, str], tuple[str, int, bytes, dict[str, str]]] = {}
            self.faults: list[dict[str, Any]] = []
            self.counters = itertools.count(1)
            self.request = threading.local()
            self.event_listeners: list[Callable[[dict[str, Any]], None]] = []
            self.deliveries: list[dict[str, Any]] = []
            self.clocks_changed.notify_all()

    # ids and time -------------------------------------------------------------------

    def new_id(self, prefix: str, length: int = 24) -> str:
        return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"

    def now(self, clock: str | None = None) -> int:
        if clock:
            return int(self.objects[clock]["frozen_time"])
        return int(time.time())

    def clock_of(self, obj: dict[str, Any]) -> str | None:
        """The test clock governing an object: its own, or its customer's."""
        clock = obj.get("test_clock")
        if clock is None and isinstance(obj.get("customer"), str):
            customer = self.objects.get(obj["customer"])
            clock = customer.get("test_clock") if customer else None
        return clock if isinstance(clock, str) else None

    def now_for(self, obj: dict[str, Any]) -> int:
        return self.now(self.clock_of(obj))

    # objects ---------------------------------------------------------------------------

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        self.by_type[obj["object"]].append(obj["id"])
        return obj

    def get(self, kind: str, ident: Any, *, param: str = "id", label: str | None = None) -> dict[str, Any]:
        obj = self.objects.get(ident) if isinstance(ident, str) else None
        if obj is None or obj.get("object") != kind or obj.get("_deleted"):
            raise NotFound(label or kind.split(".")[-1].replace("_", " "), str(ident), param=param)
        return obj

    def find(self, ident: Any) -> dict[str, Any] | None:
        return self.objects.get(ident) if isinstance(ident, str) else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for i in self.by_type[kind] if not (o := self.objects[i]).get("_deleted")]

    def delete(self, obj: dict[str, Any]) -> None:
        obj["_deleted"] = True

    # scheduled work -------------------------------------------------------------------

    def schedule(self, *, clock: str | None, due: int, kind: str, target: str, **data: Any) -> None:
        heapq.heappush(self.jobs[clock], Job(due, next(self.counters), kind, target, data))

    def pop_due(self, clock: str | None, until: int) -> Job | None:
        heap = self.jobs.get(clock)
        if heap and heap[0].due <= until:
            return heapq.heappop(heap)
        return None

    # the request being served, for events' ``request`` field ---------------------------

    @property
    def context(self) -> RequestContext:
        ctx = getattr(self.request, "ctx", None)
        return ctx if ctx is not None else RequestContext()

    def set_context(self, ctx: RequestContext | None) -> None:
        self.request.ctx = ctx


def strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_private(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [strip_private(v) for v in value]
    return value
