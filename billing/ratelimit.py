"""A rate limit shared by every process that calls Stripe in bulk.

Stripe answers 429 above 100 writes a second in live mode (25 in test mode), across the whole
account: every Celery worker and process counts together, so the budget lives in Redis.  Jobs that
write in bulk (`with gateway.paced():`) wait here for their turn; a customer's own request never
does.

The rule is GCRA (a token bucket kept as one timestamp, the "theoretical arrival time"): each call
reserves `cost` intervals of 1/rate seconds after the last reservation, and may start `burst`
intervals before its reserved time.  In any window of W seconds at most `burst + rate * W` calls
start, so the long-run rate never exceeds `rate`, however many processes share the bucket.  A
reservation is made and kept in one step (a Lua script in Redis, a lock in-process), so waiting
callers are served in turn and nobody polls.

Without Redis (the demo, the SQLite test runs) the bucket is this process's own: the same rule
under a lock, on the monotonic clock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings

DEFAULT_BUCKET = "stripe_writes"
KEY_PREFIX = "billing:ratelimit:"
# A key outlives the last reservation by this much: long enough that a reservation is never
# forgotten while it still holds anyone back, short enough that an idle bucket leaves nothing.
KEY_MARGIN_MS = 1000


class LimiterUnavailable(Exception):
    """The shared bucket could not be reached: the call must not go (that could exceed the rate)."""


@dataclasses.dataclass(frozen=True)
class Limit:
    rate: float  # calls per second
    burst: float  # calls that may start at once after an idle spell

    @property
    def interval(self) -> float:
        return 1.0 / self.rate


def configured_limit(*, rate: float | None = None, burst: float | None = None) -> Limit:
    """The limit for a call: the given rate and burst, else settings.BILLING_STRIPE_WRITE_RATE and
    BILLING_STRIPE_WRITE_BURST (empty: one second's worth, at least one call)."""
    chosen_rate = float(rate if rate is not None else settings.BILLING_STRIPE_WRITE_RATE)
    if not (chosen_rate > 0 and math.isfinite(chosen_rate)):
        raise ValueError(f"rate must be a positive number of calls per second, not {chosen_rate!r}")
    configured_burst = burst if burst is not None else settings.BILLING_STRIPE_WRITE_BURST
    chosen_burst = float(configured_burst) if configured_burst is not None else max(1.0, chosen_rate)
    if not (chosen_burst >= 1 and math.isfinite(chosen_burst)):
        raise ValueError(f"burst must be at least one call, not {chosen_burst!r}")
    return Limit(rate=chosen_rate, burst=chosen_burst)


def reserve(*, tat: float | None, now: float, limit: Limit, cost: int) -> tuple[float, float]:
    """GCRA: (the bucket's new theoretical arrival time, how long this call waits), in seconds.
    The Lua script in `_REDIS_SCRIPT` is this function, in microseconds."""
    start = now if tat is None or tat < now else tat
    new_tat = start + cost * limit.interval
    wait = new_tat - limit.burst * limit.interval - now
    return new_tat, max(0.0, wait)


# --------------------------------------------------------------------------- Redis

# Redis's own clock, so that processes on different hosts agree on "now".
_REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local wait = new_tat - tolerance - now
if wait < 0 then wait = 0 end
local ttl = math.floor((new_tat - now) / 1000) + tonumber(ARGV[4])
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
return string.format('%.0f', wait)
"""


def redis_url() -> str:
    """The Redis the limit is shared through: settings.REDIS_URL when it is one (else none)."""
    url = str(getattr(settings, "REDIS_URL", "") or "")
    return url if url.startswith(("redis://", "rediss://", "unix://")) else ""


@functools.lru_cache(maxsize=4)
def _script(url: str) -> Any:
    # redis-py's pool notices a fork and opens new connections in the child.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5).register_script(
        _REDIS_SCRIPT
    )


def key_for(bucket: str) -> str:
    return f"{KEY_PREFIX}{bucket}"


def _redis_wait(*, url: str, bucket: str, limit: Limit, cost: int) -> float:
    interval_us = limit.interval * 1_000_000
    try:
        answer = _script(url)(
            keys=[key_for(bucket)],
            args=[repr(interval_us), repr(limit.burst * interval_us), cost, KEY_MARGIN_MS],
        )
    except redis.RedisError as exc:
        raise LimiterUnavailable(f"rate limit bucket {bucket!r}: {exc}") from exc
    return int(answer) / 1_000_000


# --------------------------------------------------------------------------- in-process


_local_lock = threading.Lock()
_local_tats: dict[str, float] = {}


def _local_wait(*, bucket: str, limit: Limit, cost: int) -> float:
    with _local_lock:
        now = time.monotonic()
        new_tat, wait = reserve(tat=_local_tats.get(bucket), now=now, limit=limit, cost=cost)
        _local_tats[bucket] = new_tat
        return wait


def local_reset() -> None:
    """Forget the in-process buckets (tests)."""
    with _local_lock:
        _local_tats.clear()


# --------------------------------------------------------------------------- the API


def acquire(
    *, bucket: str = DEFAULT_BUCKET, cost: int = 1, rate: float | None = None, burst: float | None = None
) -> float:
    """Block until a call of `cost` units may go in `bucket` (rate and burst default to the
    settings), and say how long it waited (seconds).  Shared through Redis when there is one, else
    within this process; LimiterUnavailable when Redis can't be reached (falling back to this
    process alone could exceed the rate)."""
    if cost < 1:
        raise ValueError(f"cost must be at least 1, not {cost!r}")
    limit = configured_limit(rate=rate, burst=burst)
    url = redis_url()
    if url:
        wait = _redis_wait(url=url, bucket=bucket, limit=limit, cost=cost)
    else:
        wait = _local_wait(bucket=bucket, limit=limit, cost=cost)
    if wait > 0:
        time.sleep(wait)
    return wait


@contextlib.contextmanager
def limited(
    *, bucket: str = DEFAULT_BUCKET, cost: int = 1, rate: float | None = None, burst: float | None = None
) -> Iterator[None]:
    """The block starts once `acquire` lets it."""
    acquire(bucket=bucket, cost=cost, rate=rate, burst=burst)
    yield
