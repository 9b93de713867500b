"""The shared Stripe write limit (billing.ratelimit), through Redis across processes and in-process
across threads, and its use by the gateway's paced writes.

Times are measured, not slept: each worker records when each acquisition returned, and the
tests check the spacing a limit of `rate` a second with a burst of `burst` allows.  A token
bucket lets at most `burst + rate * W` calls start in any window of W seconds.  What is observed
is when a caller runs again, and a busy machine wakes one late now and then, next to the caller
after it: no limiter can prevent that, so windows allow for LATE_WAKE of it."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import stripe

from bench.stripe_rate import measure_writes, peak_in_window
from billing import gateway, ratelimit
from billing.errors import StripeUnavailable
from stripe_emulator.app import Emulator

LATE_WAKE = 0.15  # seconds

BACKENDS = [
    pytest.param("local", id="in-process"),
    pytest.param("redis", id="redis", marks=pytest.mark.services),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, settings: Any) -> str:
    """Where the bucket lives: settings.REDIS_URL decides, as in production."""
    if request.param == "local":
        settings.REDIS_URL = ""
        ratelimit.local_reset()
    else:
        settings.REDIS_URL = os.environ["REDIS_URL"]
    return str(request.param)


def fresh_bucket() -> str:
    return f"test-{uuid.uuid4().hex}"


def _acquire_many(results: Any, count: int, kwargs: dict[str, Any]) -> None:
    stamps = []
    for _ in range(count):
        ratelimit.acquire(**kwargs)
        stamps.append(time.monotonic())
    results.put(stamps)


def acquire_concurrently(
    *, backend: str, workers: int, each: int, **kwargs: Any
) -> tuple[float, list[float]]:
    """`workers` processes (Redis: the limit is shared between processes) or threads (in-process)
    each acquire `each` times; the start and when every acquisition returned (time.monotonic is
    one clock for every process on Linux)."""
    started = time.monotonic()
    if backend == "redis":
        context = multiprocessing.get_context("fork")
        queue: Any = context.Queue()
        runners: list[Any] = [
            context.Process(target=_acquire_many, args=(queue, each, kwargs)) for _ in range(workers)
        ]
    else:
        import queue as queue_module

        queue = queue_module.Queue()
        runners = [threading.Thread(target=_acquire_many, args=(queue, each, kwargs)) for _ in range(workers)]
    for runner in runners:
        runner.start()
    stamps = [stamp for _ in runners for stamp in queue.get(timeout=30)]
    for runner in runners:
        runner.join(timeout=30)
    if backend == "redis":
        assert all(runner.exitcode == 0 for runner in runners)
    return started, stamps


def test_thirty_calls_at_100_a_second_take_the_time_the_rate_allows(backend: str) -> None:
    started, stamps = acquire_concurrently(
        backend=backend, workers=2, each=15, bucket=fresh_bucket(), rate=100.0, burst=1.0
    )
    assert len(stamps) == 30
    # The first goes at once, each next one 10 ms after the one before: 29 intervals.
    assert max(stamps) - started >= 0.28


def test_no_one_second_window_holds_more_than_the_limit(backend: str) -> None:
    started, stamps = acquire_concurrently(
        backend=backend, workers=3, each=20, bucket=fresh_bucket(), rate=40.0, burst=1.0
    )
    assert len(stamps) == 60
    assert max(stamps) - started >= 59 / 40 - 0.01
    for window in (1.0, 0.5):
        assert peak_in_window(stamps, window=window) <= 1 + 40 * (window + LATE_WAKE)


def test_buckets_do_not_share_their_budget(backend: str) -> None:
    first, second = fresh_bucket(), fresh_bucket()
    started = time.monotonic()
    # A shared budget would have held the second call back half a second.
    assert ratelimit.acquire(bucket=first, rate=2.0, burst=1.0) == 0.0
    assert ratelimit.acquire(bucket=second, rate=2.0, burst=1.0) == 0.0
    assert ratelimit.acquire(bucket=first, rate=2.0, burst=1.0) > 0.0
    assert time.monotonic() - started >= 0.45


def test_a_burst_goes_at_once_then_the_rate_holds(backend: str) -> None:
    bucket = fresh_bucket()
    started = time.monotonic()
    # Without the burst these five would wait 0.8 s in all.
    waits = [ratelimit.acquire(bucket=bucket, rate=5.0, burst=5.0) for _ in range(5)]
    assert waits == [0.0] * 5
    assert ratelimit.acquire(bucket=bucket, rate=5.0, burst=5.0) > 0.0
    assert time.monotonic() - started >= 0.19


@pytest.mark.services
def test_the_bucket_key_in_redis_expires_soon_after_its_last_reservation(settings: Any) -> None:
    settings.REDIS_URL = os.environ["REDIS_URL"]
    bucket = fresh_bucket()
    for _ in range(3):
        ratelimit.acquire(bucket=bucket, rate=10.0, burst=1.0)
    ttl_ms = redis.Redis.from_url(settings.REDIS_URL).pttl(ratelimit.key_for(bucket))
    # The last reservation reaches at most 0.3 s ahead; the key outlives it by a second.
    assert 0 < ttl_ms <= 300 + ratelimit.KEY_MARGIN_MS


# --------------------------------------------------------------------------- the rule itself


def test_the_rule_lets_a_burst_go_at_once_and_spaces_the_rest() -> None:
    limit = ratelimit.Limit(rate=10.0, burst=3.0)
    tat: float | None = None
    waits = []
    for _ in range(5):
        tat, wait = ratelimit.reserve(tat=tat, now=100.0, limit=limit, cost=1)
        waits.append(round(wait, 6))
    assert waits == [0.0, 0.0, 0.0, 0.1, 0.2]


def test_the_rule_gives_no_credit_for_idle_time_beyond_the_burst() -> None:
    limit = ratelimit.Limit(rate=10.0, burst=2.0)
    tat, _ = ratelimit.reserve(tat=None, now=0.0, limit=limit, cost=1)
    waits = []
    for _ in range(4):
        tat, wait = ratelimit.reserve(tat=tat, now=60.0, limit=limit, cost=1)
        waits.append(round(wait, 6))
    assert waits == [0.0, 0.0, 0.1, 0.2]


def test_a_costly_call_takes_that_many_turns() -> None:
    limit = ratelimit.Limit(rate=10.0, burst=1.0)
    tat, first = ratelimit.reserve(tat=None, now=0.0, limit=limit, cost=3)
    _, after = ratelimit.reserve(tat=tat, now=0.0, limit=limit, cost=1)
    assert (round(first, 6), round(after, 6)) == (0.2, 0.3)


def test_the_default_limit_comes_from_the_settings(settings: Any) -> None:
    settings.BILLING_STRIPE_WRITE_RATE = 8.0
    settings.BILLING_STRIPE_WRITE_BURST = None
    assert ratelimit.configured_limit() == ratelimit.Limit(rate=8.0, burst=8.0)
    settings.BILLING_STRIPE_WRITE_BURST = 2.0
    assert ratelimit.configured_limit() == ratelimit.Limit(rate=8.0, burst=2.0)
    with pytest.raises(ValueError):
        ratelimit.configured_limit(rate=0.0)


# --------------------------------------------------------------------------- the gateway


@pytest.fixture()
def write_bucket(settings: Any) -> Iterator[None]:
    """The gateway's bucket, empty: no reservation left by an earlier test holds these back."""
    ratelimit.local_reset()
    url = ratelimit.redis_url()
    if url:
        redis.Redis.from_url(url).delete(ratelimit.key_for(ratelimit.DEFAULT_BUCKET))
    yield


def make_customers(client: stripe.StripeClient, count: int) -> list[str]:
    return [client.v1.customers.create(params={"email": f"c{n}@example.com"}).id for n in range(count)]


def update_metadata(customer_ids: list[str], tag: str) -> None:
    for n, customer_id in enumerate(customer_ids):
        gateway.customer_update_metadata(
            customer_id=customer_id, metadata={"batch": tag}, idempotency_key=f"rate-{tag}-{n}"
        )


def test_paced_writes_arrive_at_stripe_no_faster_than_the_rate(
    stripe_emulated: Emulator, client: stripe.StripeClient, settings: Any, write_bucket: None
) -> None:
    settings.BILLING_STRIPE_WRITE_RATE = 50.0
    settings.BILLING_STRIPE_WRITE_BURST = 1.0
    customers = make_customers(client, 20)

    figures = measure_writes(emulator=stripe_emulated, writes=lambda: update_metadata(customers, "paced"))

    assert figures.writes == 20
    assert figures.peak_per_window <= 50
    assert figures.elapsed >= 19 / 50 - 0.01
    assert figures.arrivals[-1] - figures.arrivals[0] >= 19 / 50 - LATE_WAKE
    assert {client.v1.customers.retrieve(c).metadata["batch"] for c in customers} == {"paced"}


def test_writes_outside_paced_never_wait(
    stripe_emulated: Emulator, client: stripe.StripeClient, settings: Any, write_bucket: None
) -> None:
    settings.BILLING_STRIPE_WRITE_RATE = 1.0
    settings.BILLING_STRIPE_WRITE_BURST = 1.0
    customers = make_customers(client, 3)

    figures = measure_writes(
        emulator=stripe_emulated, writes=lambda: update_metadata(customers, "now"), paced=False
    )

    # Paced at one a second, these three would have booked the bucket two seconds ahead: nothing
    # was booked, so a paced call now goes at once.
    assert figures.writes == 3
    assert ratelimit.acquire(rate=1.0, burst=1.0) == 0.0


def test_a_paced_write_is_not_sent_while_the_shared_bucket_is_unreachable(
    stripe_emulated: Emulator, client: stripe.StripeClient, settings: Any
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    customers = make_customers(client, 1)

    with pytest.raises(StripeUnavailable) as raised:
        measure_writes(emulator=stripe_emulated, writes=lambda: update_metadata(customers, "down"))

    # Treated like Stripe's own 429: the change waits and is tried again.
    assert raised.value.code == "rate_limited"
    assert "batch" not in client.v1.customers.retrieve(customers[0]).metadata


def test_the_peak_counts_the_fullest_window() -> None:
    assert peak_in_window([0.0, 0.5, 0.99, 1.0, 1.2, 3.0], window=1.0) == 4
    assert peak_in_window([], window=1.0) == 0
