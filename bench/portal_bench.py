"""Benchmark the portal on PostgreSQL: customer pages, webhook ingestion and plan previews.

Run with ``make bench`` (or ``.venv/bin/python bench/portal_bench.py --help``).  It needs
PostgreSQL: ``DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/portal_bench``) names a
database the bench owns: it is created when missing, migrated and then *flushed*, so the name must
contain "bench" (``--allow-any-database`` overrides that guard).  Settings are ``tests.settings``
(DEBUG off, test keys, eager Celery); REDIS_URL and CELERY_BROKER_URL are ignored, so no task
of (1)-(3) reaches a real broker or worker.  Only the recovery burst (4) runs a real ``celery
worker``, with Redis as its broker: ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``; Celery's
keys there are deleted before and after).  A Stripe emulator runs in this process on a free port.

Everything goes through Django's test client, in this process, from one thread: the full
middleware stack and views, no HTTP server or socket in front.  The test client keeps one
PostgreSQL connection open for the whole run (as ``CONN_MAX_AGE > 0`` would in production).

Seeded data (all through the emulator, then mirrored by the portal itself):

* the page customer: on a test clock, a monthly Standard subscription billed for two years
  (24 paid invoices), then a renewal declined on the new default card (1 open invoice, subscription
  past due), 3 cards, a backup card set through a BillingChange, and the deliveries (in-app lines
  and emails) that the webhooks of all that history produced (receipts, change confirmations);
* ``--customers`` other customers (default 10), each with a card and a subscription that was
  updated once; their real events feed the webhook measurement;
* ``--preview-customers`` more (default 20), each with a card and an active Standard monthly
  subscription in EUR, for the plan previews (the page customer is past due: the rules leave it
  only the moves that cost less).

(1) Pages: ``/``, ``/cards/``, ``/cards/add/``, the change page and the Plan page ``/plan/``,
    ``--requests`` GETs each (default 300, after ``--warmup``), as the logged-in page customer.
    Reported: req/s, p50/p95 latency, SQL queries per page (CaptureQueriesContext, one extra
    request) and the number of requests the emulator received meanwhile, which must be 0: pages
    read the local mirror only.
    Measured alike, in the same run: a bare view (bench/bare_urls.py: login required, the site's
    middleware, one small template), and each page's throughput as a ratio to it.  The bare view
    and the pages take turns, one request each, so that load from elsewhere on the machine falls
    on all of them alike.

(2) Webhooks: ``--events`` signed POSTs (default 500) of the other customers' real events, each
    with a new event id, signed as Stripe signs them.
      end to end  verify → store → process in the request (eager Celery: the handler re-reads the
                  object from the emulator and updates the mirror);
      store only  verify → store → enqueue to Celery's in-memory broker (processing deferred);
      drain       then processing those stored events one by one, as a worker would.

(3) Plan previews: ``GET /plan/preview/?price=<lookup key>&when=now|renewal`` with
    ``HX-Request: true``, as the Plan page's htmx asks for them; each answer must be the preview
    fragment with its confirm button (not a refusal, nor "we can't show the exact amount").  A
    preview asks the emulator (the subscription, then ``/v1/invoices/create_preview``) and is
    cached for 10 minutes per subscription state, target and timing.
      cold            ``--previews`` (default 50), the cache cleared before each, over every
                      choice the rules allow from Standard monthly, customer after customer;
      click sequence  the cache cleared once, each preview customer opens the Plan page and
                      clicks through CLICKS (8 choices, 3 of them seen before).
    Reported: p50/p95 latency, SQL queries per preview (from Stripe and from the cache) and the
    cache hit rate, counted at the emulator: 1 - ``create_preview`` requests / previews
    requested (against 3/8 if every repeat is a hit), with the latencies of hits and misses apart.
    Cold previews that did not all reach the emulator fail the bench.  The cache is Django's
    local-memory cache here (REDIS_URL is ignored): a hit costs no round trip to Redis.

(4) Recovery burst: ``--failures`` customers (default 1000) on ONE test clock, each with a monthly
    subscription whose card then declines (the emulator's control, insufficient_funds); one
    advance of the clock fails every renewal at once.  All the events of that burst (about 10 per
    failure: invoice.created ... invoice.payment_failed, customer.subscription.updated, and the
    payment intent, charge and clock events the portal ignores) are posted in the emulator's
    order, signed, from one client as fast as it goes, while ONE ``celery -A portal worker``
    process (prefork, concurrency 1; bench/worker_settings.py: tasks from Redis, the local-memory
    email backend, quiet hours off) processes them and sends the day-0 emails through the outbox.
    Reported, per failed invoice: its invoice.payment_failed's arrival (StripeEvent.received_at)
    to its case's first email's sent_at, p50/p95/max against the goal (p95 < 60 s); the time from
    the first event received to the last first email sent; how long the event's task and the send
    task waited in the queue; Stripe requests by path; and the worker's own account of each task
    (wall, CPU and SQL per run, by event type: bench/results/recovery-tasks.jsonl, its log
    bench/results/recovery-worker.log).  Fails if a case got no email or an event was not done.

(5) Pages with an open case: SQL queries of ``/``, ``/fix/<case>/`` and ``/messages/`` for a burst
    customer with its open case (and its day-0 email and in-app line) plus 1 closed case and 1 old
    message, and for one with 20 closed cases and 200 old messages (added in bulk).  Fails unless
    the counts are equal.

Prints a table and writes ``bench/results/portal-latest.json``.  Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import pathlib
import platform
import re
import statistics
import sys
import textwrap
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the project's packages (portal, billing, tests)

from bench.emulator_bench import git_commit  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "portal-latest.json"
# The bare view's label (bench/bare_urls.py) in the pages table.
BARE = "bare view"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/portal_bench"
DAY = 24 * 60 * 60
# A renewal invoice is drafted at the period end and finalized and charged an hour later (the
# emulator's finalize_after_seconds, as at Stripe); advancing two hours past it settles the charge.
RENEWAL_SETTLED = 2 * 60 * 60

# Everything below that imports Django runs after configure(); these are set before.
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ.setdefault("BILLING_LOG_LEVEL", "WARNING")
# WhiteNoise notes that collectstatic has not run; pages are measured without static files.
warnings.filterwarnings("ignore", message="No directory at")
# The recovery burst's worker, alone among the measurements, takes its tasks from Redis: kept
# aside for it before the variables go (see bench_recovery_burst).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BURST_REDIS_URL = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "DJANGO_DEBUG"):
    os.environ.pop(name, None)


# --------------------------------------------------------------------------- database


def prepare_database(*, url: str, allow_any: bool) -> str:
    """Create the bench database if it is missing; returns its name.  Only the server's
    maintenance database `postgres` is connected to besides, and only to create this one."""
    import environ
    import psycopg
    from psycopg import sql

    config = environ.Env.db_url_config(url)
    if "postgresql" not in config["ENGINE"]:
        raise SystemExit(f"portal bench: DATABASE_URL must be PostgreSQL, not {config['ENGINE']}")
    name = str(config["NAME"])
    if "bench" not in name and not allow_any:
        raise SystemExit(
            f"portal bench: refusing to flush database {name!r}: its name does not contain 'bench' "
            "(pass --allow-any-database if it really is a scratch database)"
        )
    try:
        with psycopg.connect(
            dbname="postgres",
            host=str(config.get("HOST") or "127.0.0.1"),
            port=int(config.get("PORT") or 5432),
            user=str(config.get("USER") or "postgres"),
            password=str(config.get("PASSWORD") or ""),
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise SystemExit(f"portal bench: PostgreSQL is not reachable ({exc}).") from exc
    return name


def setup_django(*, url: str) -> None:
    os.environ["DATABASE_URL"] = url
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)


# --------------------------------------------------------------------------- emulator


class RequestCounter:
    """How many API requests the emulator has parsed, in all and by path: a Stripe call from a
    page shows up here, and so does every invoice preview that was not served from the cache."""

    def __init__(self) -> None:
        self.count = 0
        self.paths: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def install(self, emulator: Any) -> None:
        from stripe_emulator.server import Handler

        counter = self

        class CountingHandler(Handler):
            def parse_request(self) -> bool:
                ok = super().parse_request()
                if ok:
                    with counter.lock:
                        counter.count += 1
                        counter.paths[urllib.parse.urlsplit(self.path).path] += 1
                return ok

        emulator.server.RequestHandlerClass = CountingHandler

    def value(self, path: str | None = None) -> int:
        """Requests so far: all of them, or those to one path (e.g. ``/v1/invoices/create_preview``)."""
        with self.lock:
            return self.count if path is None else self.paths[path]


# --------------------------------------------------------------------------- timing


def latency_summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
        "max_ms": round(1000 * ordered[-1], 2),
    }


def timed_loop(count: int, call: Callable[[int], object]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    start = time.perf_counter()
    for n in range(count):
        t0 = time.perf_counter()
        call(n)
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - start, latencies


def queries_during(call: Callable[[], Any]) -> list[str]:
    """The SQL one call runs.  Read at once: the next request's request_started resets the log."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        call()
    return [query["sql"] for query in ctx.captured_queries]


# --------------------------------------------------------------------------- seeding


def api() -> Any:
    from tests.portal_support import stripe_client

    return stripe_client()


def advance_clock(*, clock_id: str, to: int) -> None:
    client = api()
    client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": to})
    deadline = time.monotonic() + 60
    while (status := client.v1.test_helpers.test_clocks.retrieve(clock_id).status) != "ready":
        if status == "internal_failure" or time.monotonic() > deadline:
            raise RuntimeError(f"test clock {clock_id} ended {status!r}")
        time.sleep(0.01)


def seed_page_customer(*, email: str) -> dict[str, Any]:
    """Two years on the Standard plan, then a declined renewal: the busiest dashboard there is."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.test import Client

    from billing import sync
    from billing.models import BillingChange, BillingCustomer, Delivery, Invoice, PaymentMethod, Price
    from billing.services.cards import card_set_backup
    from billing.services.customers import customer_create
    from tests.portal_support import PASSWORD, deliver_events, emulator_events

    client = api()
    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    customer = customer_create(user=user, email=email, language="en")

    start = int(time.time()) - 740 * DAY  # so that 24 monthly periods end just before today
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": start, "name": "bench"})
    stripe_customer = client.v1.customers.create(
        params={
            "email": email,
            "preferred_locales": ["en"],
            "test_clock": clock.id,
            "metadata": {"portal_customer": str(customer.pk)},
        }
    )
    BillingCustomer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer.id)
    first = client.v1.payment_methods.attach("pm_card_visa", params={"customer": stripe_customer.id})
    client.v1.customers.update(
        stripe_customer.id, params={"invoice_settings": {"default_payment_method": first.id}}
    )
    price_id = Price.objects.get(lookup_key="standard_month_eur").stripe_price_id
    subscription = client.v1.subscriptions.create(
        params={"customer": stripe_customer.id, "items": [{"price": price_id}]}
    )
    for _month in range(23):
        period_end = client.v1.subscriptions.retrieve(subscription.id)["items"]["data"][0][
            "current_period_end"
        ]
        advance_clock(clock_id=clock.id, to=period_end + RENEWAL_SETTLED)
    # A second card kept as backup, and a new default whose first charge is declined.
    backup = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": stripe_customer.id})
    failing = client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": stripe_customer.id}
    )
    client.v1.customers.update(
        stripe_customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    period_end = client.v1.subscriptions.retrieve(subscription.id)["items"]["data"][0]["current_period_end"]
    advance_clock(clock_id=clock.id, to=period_end + RENEWAL_SETTLED)

    # The portal learns all of it as it would in production: webhooks, then a reconcile.
    delivered = deliver_events(Client())
    sync.reconcile_customer(customer_id=customer.pk)
    customer.refresh_from_db()
    card = PaymentMethod.objects.get(customer=customer, stripe_id=backup.id)
    change = card_set_backup(customer=customer, card=card, consent=True, requested_by=user)
    change.refresh_from_db()
    if change.status != BillingChange.Status.APPLIED:
        raise RuntimeError(f"seeding: the backup card change ended {change.status}: {change.error_message}")

    invoices = collections.Counter(Invoice.objects.filter(customer=customer).values_list("status", flat=True))
    seeded = {
        "email": email,
        "subscription_status": customer.subscriptions.get().status,
        "cards": PaymentMethod.objects.filter(customer=customer).count(),
        "invoices": dict(sorted(invoices.items())),
        "deliveries": dict(
            sorted(
                collections.Counter(
                    Delivery.objects.filter(customer=customer).values_list("channel", flat=True)
                ).items()
            )
        ),
        "webhook_events_delivered": len(delivered),
        "emulator_events": len(emulator_events()),
        "change_id": str(change.pk),
    }
    if seeded["cards"] != 3 or invoices.get("paid") != 24 or invoices.get("open") != 1:
        raise RuntimeError(f"seeding: unexpected page customer {seeded}")
    return seeded


def seed_webhook_customers(*, count: int) -> list[str]:
    """Customers whose real events the webhook measurement replays; returns their Stripe ids."""
    from tests.portal_support import make_customer

    client = api()
    ids = []
    for n in range(count):
        customer = make_customer(
            email=f"hook{n}@example.com", card="pm_card_visa" if n % 2 else "pm_card_mastercard"
        )
        assert customer.stripe_customer_id
        sub = customer.subscriptions.get()
        client.v1.subscriptions.update(sub.stripe_id, params={"metadata": {"bench": str(n)}})
        ids.append(customer.stripe_customer_id)
    return ids


def seed_preview_customers(*, count: int) -> list[str]:
    """Active customers on Standard monthly in EUR, each with a card; returns their emails.  (The
    page customer is past due, so the rules allow it only moves that cost less.)"""
    from tests.portal_support import make_customer

    emails = []
    for n in range(count):
        customer = make_customer(email=f"plan{n}@example.com", price=PREVIEW_CUSTOMER_PRICE)
        sub = customer.subscriptions.get()
        if sub.status != "active" or sub.price is None or sub.price.lookup_key != PREVIEW_CUSTOMER_PRICE:
            raise RuntimeError(f"seeding: preview customer {n} is {sub.status} on {sub.price}")
        emails.append(customer.email)
    return emails


# --------------------------------------------------------------------------- (1) pages


def bench_pages(
    *, email: str, change_id: str, requests: int, warmup: int, counter: RequestCounter
) -> dict[str, Any]:
    """The bare view and every page, measured alike and in turns, one request each: a burst of
    other work on the machine then falls on all of them alike, and the ratios to the bare view
    hold even when the absolute figures move."""
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings

    from bench import bare_urls

    client = Client()
    client.force_login(get_user_model().objects.get(email=email))
    targets = {
        BARE: bare_urls.PATH,
        "dashboard": "/",
        "cards": "/cards/",
        "card add": "/cards/add/",
        "change": f"/changes/{change_id}/",
        "plan": "/plan/",
        "invoices": "/invoices/",
    }

    def get(path: str) -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")

    latencies: dict[str, list[float]] = {label: [] for label in targets}
    stripe_requests = dict.fromkeys(targets, 0)
    queries: dict[str, list[str]] = {}
    stripe_before = counter.value()
    with override_settings(ROOT_URLCONF=bare_urls.__name__):
        for label, path in targets.items():
            for _n in range(warmup):
                get(path)
            queries[label] = queries_during(lambda path=path: get(path))
        for _n in range(requests):
            for label, path in targets.items():
                before = counter.value()
                t0 = time.perf_counter()
                get(path)
                latencies[label].append(time.perf_counter() - t0)
                stripe_requests[label] += counter.value() - before
        sizes = {label: len(client.get(path).content) for label, path in targets.items()}

    rows: dict[str, Any] = {}
    for label, path in targets.items():
        seconds = sum(latencies[label])
        rows[label] = {
            "path": path,
            "requests": requests,
            "seconds": round(seconds, 3),
            "requests_per_second": round(requests / seconds, 1),
            "sql_queries": len(queries[label]),
            "sql": [query[:300] for query in queries[label]],
            "stripe_requests": stripe_requests[label],
            "bytes": sizes[label],
            **latency_summary(latencies[label]),
        }
    bare = rows.pop(BARE)
    bare_seconds = sum(latencies[BARE])
    for label, row in rows.items():
        # Throughput as a share of the bare view's: as many requests each, so a ratio of times.
        row["ratio_to_bare"] = round(bare_seconds / sum(latencies[label]), 3)
    return {"bare_view": bare, "pages": rows, "stripe_requests": counter.value() - stripe_before}


# --------------------------------------------------------------------------- (2) webhooks


def event_customer(event: dict[str, Any]) -> str:
    obj = event["data"]["object"]
    if obj.get("object") == "customer":
        return str(obj.get("id") or "")
    ref = obj.get("customer")
    return str((ref.get("id") if isinstance(ref, dict) else ref) or "")


def event_templates(*, customers: list[str]) -> list[dict[str, Any]]:
    """The emulator's own events for these customers, of the types the portal acts on."""
    from billing.handlers import HANDLERS
    from tests.portal_support import emulator_events

    wanted = set(customers)
    return [event for event in emulator_events(types=set(HANDLERS)) if event_customer(event) in wanted]


def post_events(
    *, templates: list[dict[str, Any]], count: int, prefix: str
) -> tuple[float, list[float], list[str]]:
    from django.test import Client

    from tests.portal_support import WEBHOOK_URL, signature_header

    client = Client()
    payloads = []
    for n in range(count):
        event = dict(templates[n % len(templates)])
        event["id"] = f"evt_{prefix}_{n:06d}"
        payloads.append(json.dumps(event).encode())
    errors: list[str] = []

    def post(n: int) -> None:
        payload = payloads[n]
        response = client.post(
            WEBHOOK_URL,
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature_header(payload),
        )
        if response.status_code != 200:
            errors.append(f"{response.status_code}: {response.content[:200]!r}")

    seconds, latencies = timed_loop(count, post)
    return seconds, latencies, errors


def event_statuses(prefix: str) -> dict[str, int]:
    from billing.models import StripeEvent

    rows = StripeEvent.objects.filter(stripe_id__startswith=f"evt_{prefix}_").values_list("status", flat=True)
    return dict(sorted(collections.Counter(rows).items()))


def queries_for_one_event(template: dict[str, Any], event_id: str) -> int:
    from django.test import Client

    from tests.portal_support import post_event

    event = {**template, "id": event_id}

    def post() -> None:
        response = post_event(Client(), event)
        if response.status_code != 200:
            raise RuntimeError(f"webhook answered {response.status_code}")

    return len(queries_during(post))


def bench_webhooks(*, customers: list[str], events: int, counter: RequestCounter) -> dict[str, Any]:
    from billing import handlers
    from billing.models import StripeEvent
    from portal.celery import app as celery_app

    templates = event_templates(customers=customers)
    if not templates:
        raise RuntimeError("no events to replay: the emulator emitted none for the webhook customers")
    types = collections.Counter(t["type"] for t in templates)
    result: dict[str, Any] = {
        "distinct_real_events": len(templates),
        "event_types": dict(sorted(types.items())),
    }

    # End to end: eager Celery runs the handler inside the request, after the row commits.
    celery_app.conf.task_always_eager = True
    queries_e2e = queries_for_one_event(templates[0], "evt_warm_e2e")
    stripe_before = counter.value()
    seconds, latencies, errors = post_events(templates=templates, count=events, prefix="e2e")
    result["end_to_end"] = {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds, 1),
        "sql_queries_per_event": queries_e2e,
        "sql_counted_for": templates[0]["type"],
        "stripe_requests_per_event": round((counter.value() - stripe_before) / events, 2),
        "statuses": event_statuses("e2e"),
        "errors": len(errors),
        "first_errors": errors[:5],
        **latency_summary(latencies),
    }

    # Store only: the task goes to Celery's in-memory broker and nobody consumes it.
    celery_app.conf.task_always_eager = False
    try:
        queries_store = queries_for_one_event(templates[0], "evt_warm_store")
        stripe_before = counter.value()
        seconds, latencies, errors = post_events(templates=templates, count=events, prefix="store")
        result["store_only"] = {
            "events": events,
            "seconds": round(seconds, 3),
            "events_per_second": round(events / seconds, 1),
            "sql_queries_per_event": queries_store,
            "sql_counted_for": templates[0]["type"],
            "stripe_requests_per_event": round((counter.value() - stripe_before) / events, 2),
            "statuses": event_statuses("store"),
            "errors": len(errors),
            "first_errors": errors[:5],
            **latency_summary(latencies),
        }
    finally:
        celery_app.conf.task_always_eager = True

    # Drain: what the worker does with that backlog (billing.tasks.process_event's body).
    pending = list(
        StripeEvent.objects.filter(stripe_id__startswith="evt_store_", status=StripeEvent.Status.PENDING)
        .order_by("received_at")
        .values_list("pk", flat=True)
    )
    stripe_before = counter.value()
    seconds, latencies = timed_loop(len(pending), lambda n: handlers.process(event_pk=pending[n]))
    result["drain"] = {
        "events": len(pending),
        "seconds": round(seconds, 3),
        "events_per_second": round(len(pending) / seconds, 1) if seconds else None,
        "stripe_requests_per_event": round((counter.value() - stripe_before) / max(1, len(pending)), 2),
        "statuses": event_statuses("store"),
        **(latency_summary(latencies) if latencies else {}),
    }
    return result


# --------------------------------------------------------------------------- (3) plan previews

# The Plan page's previews are asked of Stripe: the counter counts these requests by path.
CREATE_PREVIEW = "/v1/invoices/create_preview"
# The preview customers' plan, and every choice the rules (billing/plans.py) allow from it: the
# same tier on another interval now or at the renewal, an upgrade now, a downgrade at the renewal.
PREVIEW_CUSTOMER_PRICE = "standard_month_eur"
PREVIEW_CHOICES: tuple[tuple[str, str], ...] = (
    ("standard_year_eur", "now"),
    ("standard_year_eur", "renewal"),
    ("standard_quarter_eur", "now"),
    ("standard_quarter_eur", "renewal"),
    ("pro_month_eur", "now"),
    ("pro_quarter_eur", "now"),
    ("pro_year_eur", "now"),
    ("basic_month_eur", "renewal"),
    ("basic_quarter_eur", "renewal"),
    ("basic_year_eur", "renewal"),
)
# What one customer clicks through on the Plan page, going back to choices already seen.
CLICKS: tuple[tuple[str, str], ...] = (
    ("standard_year_eur", "now"),
    ("standard_year_eur", "renewal"),
    ("pro_month_eur", "now"),
    ("standard_year_eur", "now"),
    ("basic_month_eur", "renewal"),
    ("pro_year_eur", "now"),
    ("standard_year_eur", "now"),
    ("pro_month_eur", "now"),
)


def bench_previews(*, emails: list[str], cold: int, counter: RequestCounter) -> dict[str, Any]:
    """Previews as htmx asks for them: cold (the cache cleared before each, so each one reaches
    Stripe) and in a click sequence per customer (the cache as it is).  Every answer must be the
    preview fragment with its confirm button: a refusal or "can't show" would fail the bench."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse

    path = reverse("portal:plan_preview")
    plan_path = reverse("portal:plan")
    users = get_user_model().objects.in_bulk(emails, field_name="username")
    clients = []
    for email in emails:
        client = Client()
        client.force_login(users[email])
        clients.append(client)

    def preview(client: Client, price: str, when: str) -> None:
        response = client.get(path, {"price": price, "when": when}, HTTP_HX_REQUEST="true")
        body = response.content
        if (
            response.status_code != 200
            or b'data-test="confirm"' not in body
            or b'data-test="preview-charge"' not in body
            or b"<html" in body  # the fragment, not the page without JavaScript
        ):
            raise RuntimeError(
                f"preview {price} {when} answered {response.status_code}, not the preview: {body[:600]!r}"
            )

    def timed(client: Client, price: str, when: str) -> tuple[float, int, int]:
        """Seconds, and the requests the emulator received meanwhile: invoice previews, all."""
        previews, stripe = counter.value(CREATE_PREVIEW), counter.value()
        t0 = time.perf_counter()
        preview(client, price, when)
        seconds = time.perf_counter() - t0
        return seconds, counter.value(CREATE_PREVIEW) - previews, counter.value() - stripe

    # Warm up every choice once (templates, the Stripe client's connection), then count the SQL
    # of one preview made with Stripe and of the same one again, from the cache.
    for price, when in PREVIEW_CHOICES:
        cache.clear()
        preview(clients[0], price, when)
    cache.clear()
    sql_cold = queries_during(lambda: preview(clients[0], *PREVIEW_CHOICES[0]))
    sql_cached = queries_during(lambda: preview(clients[0], *PREVIEW_CHOICES[0]))

    # (a) Cold: every choice in turn, customer by customer, the cache cleared first (not timed).
    latencies: list[float] = []
    stripe_previews = stripe_requests = 0
    for n in range(cold):
        cache.clear()
        seconds, previews, stripe = timed(
            clients[n % len(clients)], *PREVIEW_CHOICES[n % len(PREVIEW_CHOICES)]
        )
        latencies.append(seconds)
        stripe_previews += previews
        stripe_requests += stripe
    cold_row = {
        "requests": cold,
        "choices": [f"{price} {when}" for price, when in PREVIEW_CHOICES],
        "stripe_previews": stripe_previews,
        "stripe_requests_per_preview": round(stripe_requests / max(1, cold), 2),
        "sql_queries": len(sql_cold),
        **latency_summary(latencies),
    }

    # (b) Clicks: each customer opens the Plan page (not timed) and clicks through CLICKS, back to
    # choices already seen; a preview Stripe was not asked for came from the cache.
    cache.clear()
    latencies, hits, misses = [], [], []
    stripe_previews = stripe_requests = 0
    for client in clients:
        page = client.get(plan_path)
        if page.status_code != 200:
            raise RuntimeError(f"GET {plan_path} answered {page.status_code}")
        for price, when in CLICKS:
            if f"?price={price}&amp;when={when}".encode() not in page.content:
                raise RuntimeError(f"the Plan page offers no {price} {when} to {client}")
        for price, when in CLICKS:
            seconds, previews, stripe = timed(client, price, when)
            latencies.append(seconds)
            (misses if previews else hits).append(seconds)
            stripe_previews += previews
            stripe_requests += stripe
    requested = len(latencies)
    distinct = len(set(CLICKS))
    clicks_row = {
        "customers": len(clients),
        "clicks_per_customer": len(CLICKS),
        "clicks": [f"{price} {when}" for price, when in CLICKS],
        "requests": requested,
        "stripe_previews": stripe_previews,
        "stripe_requests": stripe_requests,
        # Counted at the emulator: a preview requested that did not reach it was served from the cache.
        "cache_hit_rate": round(1 - stripe_previews / requested, 3),
        # What a cache keeping every answer for the whole sequence would give: repeats / clicks.
        "expected_hit_rate": round(1 - distinct / len(CLICKS), 3),
        "sql_queries_cached": len(sql_cached),
        **latency_summary(latencies),
        "hits": latency_summary(hits) if hits else {"count": 0},
        "misses": latency_summary(misses) if misses else {"count": 0},
    }
    return {
        "path": path,
        "customers": len(clients),
        "customer_plan": PREVIEW_CUSTOMER_PRICE,
        "cold": cold_row,
        "click_sequence": clicks_row,
    }


# --------------------------------------------------------------------------- (4) recovery burst

# Quiet hours off (start == end: no hour is quiet), so that no day-0 message waits for the morning.
NO_QUIET_HOURS = {"quiet_hours": {"start_hour": 0, "end_hour": 0}}
PAYMENT_FAILED = "invoice.payment_failed"
# The first message of a case must be sent within this long of its invoice.payment_failed.
BURST_GOAL_P95_SECONDS = 60.0
WORKER_LOG = ROOT / "bench" / "results" / "recovery-worker.log"
TASK_PROFILE = ROOT / "bench" / "results" / "recovery-tasks.jsonl"
STRIPE_ID = re.compile(r"/(?:[a-z]+_)+[A-Za-z0-9]{6,}")


def emulator_post(path: str, body: dict[str, Any]) -> dict[str, Any]:
    import requests
    from django.conf import settings

    response = requests.post(f"{settings.STRIPE_API_BASE}{path}", json=body, timeout=600)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def seed_failing_renewals(*, count: int) -> dict[str, Any]:
    """`count` customers on ONE test clock, each with a monthly Standard subscription whose first
    month was paid and whose card then starts declining (insufficient_funds); mirrored by the
    portal (a reconcile each).  The clock starts 33 days ago, so that the renewal falls before
    today and the cases open on real time.  Returns the clock, the period end and the customers."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from billing import sync
    from billing.models import BillingCustomer, Price
    from billing.services.customers import customer_create
    from tests.portal_support import PASSWORD

    client = api()
    start = int(time.time()) - 33 * DAY
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": start, "name": "recovery burst"})
    price_id = Price.objects.get(lookup_key="standard_month_eur").stripe_price_id
    user_model = get_user_model()
    customers: list[int] = []
    cards: list[str] = []
    subscription_id = ""
    for n in range(count):
        email = f"burst{n}@example.com"
        user = user_model.objects.create_user(username=email, email=email, password=PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        customer = customer_create(user=user, email=email, language="en")
        on_clock = client.v1.customers.create(
            params={
                "email": email,
                "preferred_locales": ["en"],
                "test_clock": clock.id,
                "metadata": {"portal_customer": str(customer.pk)},
            }
        )
        BillingCustomer.objects.filter(pk=customer.pk).update(stripe_customer_id=on_clock.id)
        card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": on_clock.id}).id
        client.v1.customers.update(on_clock.id, params={"invoice_settings": {"default_payment_method": card}})
        subscription_id = client.v1.subscriptions.create(
            params={"customer": on_clock.id, "items": [{"price": price_id}]}
        ).id
        emulator_post(f"/_emulator/payment_methods/{card}/decline", {"decline_code": "insufficient_funds"})
        sync.reconcile_customer(customer_id=customer.pk)
        customers.append(customer.pk)
        cards.append(card)
    period_end = client.v1.subscriptions.retrieve(subscription_id)["items"]["data"][0]["current_period_end"]
    return {"clock": clock.id, "start": start, "period_end": period_end, "customers": customers}


@contextlib.contextmanager
def celery_broker(url: str) -> Any:
    """This process publishes its tasks to `url` (not run eagerly, not to the in-memory broker the
    other measurements use) until the block ends; Celery's pools are dropped both ways, as after
    a fork, so that no connection to the other broker is reused."""
    from portal.celery import app

    def drop_pools() -> None:
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None

    saved = (app.conf.broker_url, app.conf.task_always_eager)
    drop_pools()
    app.conf.broker_url, app.conf.task_always_eager = url, False
    try:
        with app.connection_for_write() as conn:
            if conn.as_uri(include_password=False).split("://")[0] != url.split("://")[0]:
                raise RuntimeError(f"Celery publishes to {conn.as_uri()}, not {url}")
        yield app
    finally:
        drop_pools()
        app.conf.broker_url, app.conf.task_always_eager = saved


def forget_queued_tasks(url: str) -> None:
    """Celery's keys only (queued tasks, unacked ones), as tests/integration/conftest.py does."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for pattern in ("celery*", "unacked*"):
            keys = list(client.scan_iter(match=pattern))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def seconds_summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "max_s": round(ordered[-1], 3),
    }


def task_profile(*, path: pathlib.Path, types: dict[int, str], wall: float) -> dict[str, Any]:
    """Per task (and per event type for process_event): runs, time, SQL, from the worker's lines."""
    rows: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for line in lines:
        key = line["task"]
        if key == "process_event":
            key = f"process_event {types.get(int(line['arg']), '?')}"
        rows[key].append(line)
    table: dict[str, Any] = {}
    for key, runs in sorted(rows.items(), key=lambda item: -sum(r["end"] - r["start"] for r in item[1])):
        busy = [r["end"] - r["start"] for r in runs]
        table[key] = {
            "runs": len(runs),
            "seconds": round(sum(busy), 2),
            "share_of_burst": round(sum(busy) / wall, 3) if wall else None,
            "mean_ms": round(1000 * statistics.mean(busy), 2),
            "p95_ms": round(1000 * sorted(busy)[max(0, int(len(busy) * 0.95) - 1)], 2),
            "cpu_ms_mean": round(1000 * statistics.mean(r["cpu_seconds"] for r in runs), 2),
            "sql_per_run": round(statistics.mean(r["sql"] for r in runs), 1),
            "sql_ms_mean": round(1000 * statistics.mean(r["sql_seconds"] for r in runs), 2),
        }
    busy_total = sum(line["end"] - line["start"] for line in lines)
    return {
        "tasks": len(lines),
        "busy_seconds": round(busy_total, 2),
        "busy_share": round(busy_total / wall, 3) if wall else None,
        "by_task": table,
    }


def bench_recovery_burst(
    *, failures: int, counter: RequestCounter, database_url: str, redis_url: str
) -> tuple[dict[str, Any], list[int]]:
    """`failures` renewals fail together on one test clock; every event of that burst is posted,
    signed and in order, as fast as one client posts, to the webhook endpoint, while ONE real
    `celery worker` (concurrency 1, tasks from Redis) processes them and sends the messages.
    Measured per failed invoice: its invoice.payment_failed's arrival (StripeEvent.received_at)
    to the first recovery email's sent_at.  Returns the results and the customers (their pks)."""
    from django.conf import settings
    from django.db.models import Max, Min

    from billing.models import Delivery, RecoveryCase, StripeEvent
    from tests.integration.support import Worker
    from tests.portal_support import emulator_events

    t0 = time.perf_counter()
    seeded = seed_failing_renewals(count=failures)
    seed_seconds = time.perf_counter() - t0
    before = {event["id"] for event in emulator_events()}

    # One advance: every renewal is drafted, finalized an hour later and declined.
    t0 = time.perf_counter()
    client = api()
    client.v1.test_helpers.test_clocks.advance(
        seeded["clock"], params={"frozen_time": seeded["period_end"] + RENEWAL_SETTLED}
    )
    emulator_post(f"/_emulator/test_clocks/{seeded['clock']}/wait", {"timeout": 600})
    advance_seconds = time.perf_counter() - t0
    burst = [event for event in emulator_events() if event["id"] not in before]
    types = collections.Counter(event["type"] for event in burst)
    failed_invoices = {
        event["data"]["object"]["id"]: event["id"] for event in burst if event["type"] == PAYMENT_FAILED
    }
    if len(failed_invoices) != failures:
        raise RuntimeError(f"recovery burst: {len(failed_invoices)} renewals failed, not {failures}: {types}")

    forget_queued_tasks(redis_url)
    WORKER_LOG.parent.mkdir(parents=True, exist_ok=True)
    TASK_PROFILE.unlink(missing_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.worker_settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "STRIPE_API_BASE": settings.STRIPE_API_BASE,
        "BILLING_POLICY": json.dumps(NO_QUIET_HOURS),
        "BILLING_LOG_LEVEL": "INFO",
        "BENCH_TASK_PROFILE": str(TASK_PROFILE),
    }
    posted: list[float] = []
    errors: list[str] = []
    with celery_broker(redis_url) as app:
        worker = Worker(env=env, log_path=WORKER_LOG)
        try:
            worker.wait_ready(app=app, timeout=60)
            from django.test import Client

            from tests.portal_support import WEBHOOK_URL, signature_header

            web = Client()
            payloads = [json.dumps(event).encode() for event in burst]
            stripe_before = dict(counter.paths)
            started = time.time()
            for payload in payloads:
                t = time.perf_counter()
                response = web.post(
                    WEBHOOK_URL,
                    data=payload,
                    content_type="application/json",
                    HTTP_STRIPE_SIGNATURE=signature_header(payload),
                )
                posted.append(time.perf_counter() - t)
                if response.status_code != 200:
                    errors.append(f"{response.status_code}: {response.content[:200]!r}")
            post_seconds = time.time() - started

            burst_ids = [event["id"] for event in burst]
            emails = Delivery.objects.filter(
                case__invoice_stripe_id__in=list(failed_invoices),
                channel=Delivery.Channel.EMAIL,
                sent_at__isnull=False,
            )
            unfinished = StripeEvent.objects.filter(stripe_id__in=burst_ids).exclude(
                status__in=(StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED)
            )
            deadline = time.monotonic() + max(600.0, 0.5 * len(burst))
            while time.monotonic() < deadline and worker.alive:
                if emails.values("case_id").distinct().count() >= failures and not unfinished.exists():
                    break
                time.sleep(0.25)
            finished = time.time()
        finally:
            worker.stop()
            forget_queued_tasks(redis_url)

    events = dict(
        StripeEvent.objects.filter(stripe_id__in=list(failed_invoices.values())).values_list(
            "object_id", "received_at"
        )
    )
    firsts = dict(
        emails.values("case__invoice_stripe_id")
        .annotate(first=Min("sent_at"))
        .values_list("case__invoice_stripe_id", "first")
    )
    latencies = [(firsts[inv] - events[inv]).total_seconds() for inv in events if inv in firsts]
    received = StripeEvent.objects.filter(stripe_id__in=[e["id"] for e in burst])
    first_received = min(received.values_list("received_at", flat=True))
    last_sent = max(firsts.values()) if firsts else None
    last_processed = received.aggregate(last=Max("processed_at"))["last"]
    pk_types = dict(received.values_list("pk", "type"))
    wall = finished - started
    profile = task_profile(path=TASK_PROFILE, types=pk_types, wall=wall) if TASK_PROFILE.exists() else {}

    # Where a first message waited: for its event to be processed, then for its send task.
    waits_event: list[float] = []
    waits_send: list[float] = []
    if TASK_PROFILE.exists():
        starts: dict[tuple[str, int], float] = {}
        for line in TASK_PROFILE.read_text().splitlines():
            row = json.loads(line)
            starts.setdefault((row["task"], int(row["arg"])), row["start"])
        pf_pks = dict(received.filter(type=PAYMENT_FAILED).values_list("object_id", "pk"))
        for inv, at in events.items():
            run = starts.get(("process_event", pf_pks[inv]))
            if run is not None:
                waits_event.append(run - at.timestamp())
        for pk, created in Delivery.objects.filter(
            case__invoice_stripe_id__in=list(failed_invoices), channel=Delivery.Channel.EMAIL
        ).values_list("pk", "created_at"):
            run = starts.get(("send_delivery", pk))
            if run is not None:
                waits_send.append(run - created.timestamp())

    after = counter.paths
    stripe_paths: collections.Counter[str] = collections.Counter()
    for path, n in after.items():
        if n - stripe_before.get(path, 0) > 0:
            stripe_paths[STRIPE_ID.sub("/{id}", path)] += n - stripe_before.get(path, 0)
    stripe_total = sum(stripe_paths.values())
    statuses = dict(sorted(collections.Counter(received.values_list("status", flat=True)).items()))
    cases = RecoveryCase.objects.filter(invoice_stripe_id__in=list(failed_invoices)).count()
    return {
        "failures": failures,
        "worker": "1 celery worker process (prefork, concurrency 1), tasks from Redis; email: locmem backend",
        "quiet_hours": "off (BILLING_POLICY quiet_hours start_hour = end_hour = 0)",
        "seed_seconds": round(seed_seconds, 1),
        "advance_seconds": round(advance_seconds, 1),
        "events": len(burst),
        "event_types": dict(sorted(types.items())),
        "post": {
            "seconds": round(post_seconds, 2),
            "events_per_second": round(len(burst) / post_seconds, 1),
            "errors": len(errors),
            "first_errors": errors[:5],
            **latency_summary(posted),
        },
        "statuses": statuses,
        "cases_opened": cases,
        "first_messages_sent": len(firsts),
        "payment_failed_to_first_email": seconds_summary(latencies) if latencies else {"count": 0},
        "goal_p95_s": BURST_GOAL_P95_SECONDS,
        "total_seconds": round((last_sent - first_received).total_seconds(), 2) if last_sent else None,
        "all_processed_seconds": round((last_processed - first_received).total_seconds(), 2)
        if last_processed
        else None,
        "wait_for_event_processing": seconds_summary(waits_event) if waits_event else {"count": 0},
        "wait_for_send_task": seconds_summary(waits_send) if waits_send else {"count": 0},
        "stripe_requests": stripe_total,
        "stripe_requests_per_event": round(stripe_total / max(1, len(burst)), 2),
        "stripe_requests_by_path": dict(stripe_paths.most_common()),
        "worker_profile": profile,
        "worker_log": str(WORKER_LOG.relative_to(ROOT)),
    }, seeded["customers"]


# --------------------------------------------------------------------------- (5) pages with a case

# Pages a customer with an open case sees, with what stands for the case's id in the path.
CASE_PAGES = {"dashboard": "/", "fix": "/fix/{case}/", "messages": "/messages/"}
OLD_DELIVERIES = 200
CLOSED_CASES = 20


def add_history(*, customer_id: int, deliveries: int, closed_cases: int) -> None:
    """Years of history for one customer, in bulk: `closed_cases` cases recovered long ago and
    `deliveries` old messages (copies of its open case's day-0 email and in-app line, half of the
    in-app ones unread), spread over those cases."""
    from billing.models import Delivery, RecoveryCase

    case = RecoveryCase.objects.get(customer_id=customer_id, status=RecoveryCase.Status.OPEN)
    long_ago = case.opened_at - dt.timedelta(days=400)
    closed = RecoveryCase.objects.bulk_create(
        [
            RecoveryCase(
                customer_id=customer_id,
                invoice_stripe_id=f"in_bench_old_{customer_id}_{n}",
                subscription_stripe_id=case.subscription_stripe_id,
                amount=case.amount,
                currency=case.currency,
                decline_codes=case.decline_codes,
                family=case.family,
                hard=case.hard,
                action=case.action,
                payment_method_id=case.payment_method_id,
                policy_id=case.policy_id,
                status=RecoveryCase.Status.RECOVERED,
                outcome=RecoveryCase.Outcome.RETRY,
                opened_at=long_ago + dt.timedelta(days=15 * n),
                closed_at=long_ago + dt.timedelta(days=15 * n + 2),
                grace_ends_at=long_ago + dt.timedelta(days=15 * n + 14),
                next_step=1,
            )
            for n in range(closed_cases)
        ]
    )
    templates = list(Delivery.objects.filter(case=case).exclude(channel=Delivery.Channel.SMS))
    rows = []
    for n in range(deliveries):
        template = templates[n % len(templates)]
        old_case = closed[n % len(closed)] if closed else None
        at = long_ago + dt.timedelta(hours=n)
        rows.append(
            Delivery(
                customer_id=customer_id,
                message=template.message,
                category=template.category,
                channel=template.channel,
                about=f"invoice:{old_case.invoice_stripe_id if old_case else 'old'}",
                dedupe_key=f"bench-old-{customer_id}-{n}",
                context={**template.context, **({"case_id": old_case.pk} if old_case else {})},
                case=old_case,
                status=Delivery.Status.SENT,
                send_after=at,
                created_at=at,
                sent_at=at,
                attempts=1,
                read_at=at if n % 4 else None,
            )
        )
    Delivery.objects.bulk_create(rows)


def bench_case_pages(*, customers: list[int]) -> dict[str, Any]:
    """SQL per page for a customer with an open case, with little history (1 old message, 1 closed
    case) and with a lot (OLD_DELIVERIES old messages, CLOSED_CASES closed cases): the counts must
    be equal."""
    from django.test import Client

    from billing.models import BillingCustomer, Delivery, RecoveryCase

    if len(customers) < 2:
        raise RuntimeError("pages with a case: needs two customers with an open case (--failures 2 or more)")
    few, many = customers[0], customers[1]
    add_history(customer_id=few, deliveries=1, closed_cases=1)
    add_history(customer_id=many, deliveries=OLD_DELIVERIES, closed_cases=CLOSED_CASES)
    result: dict[str, Any] = {"pages": {}, "customers": {}}
    counts: dict[str, dict[str, int]] = {}
    for label, pk in (("few", few), ("many", many)):
        customer = BillingCustomer.objects.select_related("user").get(pk=pk)
        case = RecoveryCase.objects.get(customer_id=pk, status=RecoveryCase.Status.OPEN)
        client = Client()
        client.force_login(customer.user)
        result["customers"][label] = {
            "cases": RecoveryCase.objects.filter(customer_id=pk).count(),
            "open_cases": 1,
            "closed_cases": RecoveryCase.objects.filter(customer_id=pk)
            .exclude(status=RecoveryCase.Status.OPEN)
            .count(),
            "deliveries": Delivery.objects.filter(customer_id=pk).count(),
        }
        counts[label] = {}
        for page, pattern in CASE_PAGES.items():
            path = pattern.format(case=case.pk)

            def get(path: str = path, client: Client = client) -> None:
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path} answered {response.status_code}")

            get()  # warm: templates, the compiled reads of this connection
            counts[label][page] = len(queries_during(get))
    for page in CASE_PAGES:
        result["pages"][page] = {
            "sql_few": counts["few"][page],
            "sql_many": counts["many"][page],
            "equal": counts["few"][page] == counts["many"][page],
        }
    return result


# --------------------------------------------------------------------------- report


def print_table(results: dict[str, Any]) -> None:
    print()
    print(f"Portal benchmark  (PostgreSQL {results['postgres']}, database {results['database']})")
    print(f"  {results['mode']}")
    load = results["load_average_1min"]
    print(f"  {results['machine']}; load average {load['start']:.1f} at start, {load['end']:.1f} at end")
    seeded = results["seeded"]
    print(
        f"  page customer: subscription {seeded['subscription_status']}, {seeded['cards']} cards, "
        f"invoices {seeded['invoices']}, deliveries {seeded['deliveries']}"
    )
    print()
    pages = results["pages"]
    print(
        f"{'page':<14}{'requests':>9}{'req/s':>9}{'ratio':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
        f"{'SQL':>6}{'Stripe':>8}"
    )
    for label, row in ((BARE, pages["bare_view"]), *pages["pages"].items()):
        ratio = f"{row.get('ratio_to_bare', 1):.2f}"
        print(
            f"{label:<14}{row['requests']:>9}{row['requests_per_second']:>9.0f}{ratio:>7}{row['p50_ms']:>9.2f}"
            f"{row['p95_ms']:>9.2f}{row['max_ms']:>9.2f}{row['sql_queries']:>6}{row['stripe_requests']:>8}"
        )
    print("  (ratio = req/s as a share of the bare view's: login required, the same middleware, one small")
    print("   template; it and the pages take turns, one request each)")
    print("  (SQL = queries for one request; Stripe = requests the emulator received; must be 0)")
    print()
    hooks = results["webhooks"]
    print(
        f"webhooks: {hooks['distinct_real_events']} real events of "
        f"{len(hooks['event_types'])} types, replayed under new ids"
    )
    print(
        f"{'mode':<14}{'events':>9}{'ev/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'SQL':>6}{'Stripe':>8}"
    )
    for label, key in (("end to end", "end_to_end"), ("store only", "store_only"), ("drain", "drain")):
        row = hooks.get(key)
        if not row or not row.get("events"):
            continue
        sql = row.get("sql_queries_per_event")
        print(
            f"{label:<14}{row['events']:>9}{row['events_per_second']:>9.0f}{row['p50_ms']:>9.2f}"
            f"{row['p95_ms']:>9.2f}{row['max_ms']:>9.2f}{(sql if sql is not None else '-'):>6}"
            f"{row['stripe_requests_per_event']:>8.2f}"
        )
        for message in row.get("first_errors", []):
            print(f"  error ({label}): {message}")
    print("  (end to end = verify+store+process in the request; store only = processing deferred;")
    print("   drain = processing that deferred backlog; SQL per event; Stripe = emulator requests/event)")
    for label, key in (("end to end", "end_to_end"), ("after drain", "drain")):
        if key in hooks:
            print(f"  statuses {label}: {hooks[key]['statuses']}")
    print()
    previews = results["previews"]
    cold, clicks = previews["cold"], previews["click_sequence"]
    print(
        f"plan previews: GET {previews['path']} (htmx) by {previews['customers']} active customers on "
        f"{previews['customer_plan']}"
    )
    print(
        f"{'mode':<16}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'SQL':>6}{'Stripe':>8}"
        f"{'hit rate':>10}"
    )
    print(
        f"{'cold':<16}{cold['requests']:>9}{cold['p50_ms']:>9.2f}{cold['p95_ms']:>9.2f}{cold['max_ms']:>9.2f}"
        f"{cold['sql_queries']:>6}{cold['stripe_previews']:>8}{1 - cold['stripe_previews'] / cold['requests']:>10.0%}"
    )
    print(
        f"{'click sequence':<16}{clicks['requests']:>9}{clicks['p50_ms']:>9.2f}{clicks['p95_ms']:>9.2f}"
        f"{clicks['max_ms']:>9.2f}{clicks['sql_queries_cached']:>6}{clicks['stripe_previews']:>8}"
        f"{clicks['cache_hit_rate']:>10.1%}"
    )
    for label in ("hits", "misses"):
        row = clicks[label]
        if row["count"]:
            print(
                f"{'  ' + label:<16}{row['count']:>9}{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}"
                f"{row['max_ms']:>9.2f}"
            )
    print(f"  (cold = the cache cleared before each; {len(cold['choices'])} allowed choices in turn)")
    print(
        textwrap.fill(
            f"(click sequence = each customer clicks: {', '.join(clicks['clicks'])})",
            width=100,
            initial_indent="  ",
            subsequent_indent="   ",
        )
    )
    print(
        textwrap.fill(
            f"(SQL = queries for one preview, cold / from the cache; Stripe = {CREATE_PREVIEW} requests"
            " the emulator received; hit rate = 1 - those / previews requested,"
            f" {clicks['expected_hit_rate']:.1%} if every repeat is a hit)",
            width=100,
            initial_indent="  ",
            subsequent_indent="   ",
        )
    )
    print()


def print_recovery(burst: dict[str, Any], case_pages: dict[str, Any]) -> None:
    if burst:
        post, lat = burst["post"], burst["payment_failed_to_first_email"]
        print(
            f"recovery burst: {burst['failures']} renewals declined together (one test clock), "
            f"{burst['events']} events posted in order; {burst['worker']}"
        )
        print(
            f"  posted in {post['seconds']:.1f}s ({post['events_per_second']:.0f} ev/s); "
            f"cases opened {burst['cases_opened']}, first emails sent {burst['first_messages_sent']}; "
            f"statuses {burst['statuses']}"
        )
        if lat.get("count"):
            verdict = "met" if lat["p95_s"] < burst["goal_p95_s"] else "MISSED"
            print(
                f"  invoice.payment_failed received -> first email sent: p50 {lat['p50_s']:.1f}s  "
                f"p95 {lat['p95_s']:.1f}s  max {lat['max_s']:.1f}s  (goal p95 < {burst['goal_p95_s']:.0f}s: {verdict})"
            )
        print(
            f"  first event received -> last first email sent: {burst['total_seconds']}s; "
            f"-> every event processed: {burst['all_processed_seconds']}s"
        )
        for label, key in (
            ("its event's task", "wait_for_event_processing"),
            ("its send task", "wait_for_send_task"),
        ):
            row = burst[key]
            if row.get("count"):
                print(
                    f"  waited for {label} to start: p50 {row['p50_s']:.1f}s  p95 {row['p95_s']:.1f}s  max {row['max_s']:.1f}s"
                )
        print(
            f"  Stripe requests: {burst['stripe_requests']} ({burst['stripe_requests_per_event']:.2f}/event): "
            + ", ".join(f"{path} {n}" for path, n in list(burst["stripe_requests_by_path"].items())[:6])
        )
        profile = burst.get("worker_profile") or {}
        if profile:
            print(
                f"  worker: {profile['tasks']} tasks, busy {profile['busy_seconds']}s "
                f"({profile['busy_share']:.0%} of the burst)"
            )
            print(
                f"  {'task':<44}{'runs':>6}{'s':>8}{'mean ms':>9}{'p95 ms':>9}{'cpu ms':>8}{'SQL':>6}{'SQL ms':>8}"
            )
            for name, row in profile["by_task"].items():
                print(
                    f"  {name:<44}{row['runs']:>6}{row['seconds']:>8.1f}{row['mean_ms']:>9.1f}{row['p95_ms']:>9.1f}"
                    f"{row['cpu_ms_mean']:>8.1f}{row['sql_per_run']:>6.1f}{row['sql_ms_mean']:>8.1f}"
                )
        print()
    if case_pages:
        few, many = case_pages["customers"]["few"], case_pages["customers"]["many"]
        print(
            f"pages with an open case: SQL queries with {few['closed_cases']} closed case(s) and "
            f"{few['deliveries']} messages / with {many['closed_cases']} closed cases and {many['deliveries']} messages"
        )
        for page, row in case_pages["pages"].items():
            print(
                f"  {page:<12}{row['sql_few']:>4} / {row['sql_many']:<4}{'' if row['equal'] else '  NOT EQUAL'}"
            )
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed GETs per page (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed GETs per page first (default 20)")
    parser.add_argument("--events", type=int, default=500, help="webhook POSTs per mode (default 500)")
    parser.add_argument("--customers", type=int, default=10, help="customers whose events are replayed")
    parser.add_argument("--previews", type=int, default=50, help="cold plan previews timed (default 50)")
    parser.add_argument(
        "--preview-customers", type=int, default=20, help="customers clicking through previews (default 20)"
    )
    parser.add_argument(
        "--failures",
        type=int,
        default=1000,
        help="renewals failing together for the recovery burst (default 1000; 0 skips it and the case pages)",
    )
    parser.add_argument(
        "--allow-any-database", action="store_true", help="flush DATABASE_URL's database even without 'bench'"
    )
    parser.add_argument("--output", type=pathlib.Path, default=RESULTS, help=f"default {RESULTS}")
    args = parser.parse_args(argv)
    if args.previews < 1 or args.preview_customers < 1:
        parser.error("--previews and --preview-customers must be at least 1")
    if args.failures == 1 or args.failures < 0:
        parser.error("--failures must be 0 (skip) or at least 2 (the case pages compare two customers)")

    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    database = prepare_database(url=url, allow_any=args.allow_any_database)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    setup_django(url=url)

    import stripe
    from django.conf import settings
    from django.db import connection

    from billing.catalog_sync import sync_catalog
    from stripe_emulator.app import Emulator

    emulator = Emulator("127.0.0.1", 0).start()
    try:
        settings.STRIPE_API_BASE = emulator.url
        counter = RequestCounter()
        counter.install(emulator)
        sync_catalog()
        t0 = time.perf_counter()
        seeded = seed_page_customer(email="bench@example.com")
        hook_customers = seed_webhook_customers(count=args.customers)
        preview_customers = seed_preview_customers(count=args.preview_customers)
        seed_seconds = time.perf_counter() - t0
        pages = bench_pages(
            email="bench@example.com",
            change_id=seeded["change_id"],
            requests=args.requests,
            warmup=args.warmup,
            counter=counter,
        )
        webhooks = bench_webhooks(customers=hook_customers, events=args.events, counter=counter)
        previews = bench_previews(emails=preview_customers, cold=args.previews, counter=counter)
        burst: dict[str, Any] = {}
        case_pages: dict[str, Any] = {}
        if args.failures:
            burst, burst_customers = bench_recovery_burst(
                failures=args.failures, counter=counter, database_url=url, redis_url=BURST_REDIS_URL
            )
            case_pages = bench_case_pages(customers=burst_customers)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            postgres = cursor.fetchone()[0]
    finally:
        emulator.stop()

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_commit(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "stripe_python": stripe.VERSION,
        "postgres": postgres,
        "database": database,
        "settings": os.environ["DJANGO_SETTINGS_MODULE"],
        "debug": settings.DEBUG,
        "mode": "Django test client, in process, 1 thread, persistent DB connection; emulator in process",
        "parameters": {
            "requests_per_page": args.requests,
            "warmup_per_page": args.warmup,
            "events_per_mode": args.events,
            "webhook_customers": args.customers,
            "cold_previews": args.previews,
            "preview_customers": args.preview_customers,
            "failures": args.failures,
        },
        "seeded": seeded,
        "seed_seconds": round(seed_seconds, 2),
        "pages": pages,
        "webhooks": webhooks,
        "previews": previews,
        "recovery_burst": burst,
        "case_pages": case_pages,
        "total_seconds": round(time.perf_counter() - started, 1),
        # Other work on the machine skews every figure; a load above the CPU count means contention.
        "load_average_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
    }

    print_table(results)
    print_recovery(burst, case_pages)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"wrote {shown}  ({results['total_seconds']:.0f}s in all, seeding {seed_seconds:.1f}s)")

    problems = []
    if pages["stripe_requests"]:
        problems.append(
            f"pages made {pages['stripe_requests']} Stripe requests; they must read the mirror only"
        )
    for key in ("end_to_end", "store_only"):
        if webhooks[key]["errors"]:
            problems.append(f"webhooks ({key}): {webhooks[key]['errors']} requests were not answered 200")
    for key in ("end_to_end", "drain"):
        unfinished = {s: n for s, n in webhooks[key]["statuses"].items() if s != "processed"}
        if unfinished:
            problems.append(f"webhooks ({key}): events not processed: {unfinished}")
    if webhooks["store_only"]["stripe_requests_per_event"]:
        problems.append("webhooks (store only): Stripe was called although processing was deferred")
    cold = previews["cold"]
    if cold["stripe_previews"] != cold["requests"]:
        problems.append(
            f"previews (cold): {cold['requests']} requested with the cache cleared, but Stripe was asked "
            f"for {cold['stripe_previews']}"
        )
    if burst:
        if burst["post"]["errors"]:
            problems.append(f"recovery burst: {burst['post']['errors']} webhook posts were not answered 200")
        if burst["first_messages_sent"] != burst["failures"]:
            problems.append(
                f"recovery burst: {burst['failures']} renewals failed, but only {burst['first_messages_sent']}"
                " first emails were sent"
            )
        unfinished = {s: n for s, n in burst["statuses"].items() if s not in ("processed", "ignored")}
        if unfinished:
            problems.append(f"recovery burst: events not processed: {unfinished}")
    for page, row in case_pages.get("pages", {}).items():
        if not row["equal"]:
            problems.append(
                f"pages with a case: {page} runs {row['sql_few']} queries with little history but "
                f"{row['sql_many']} with {OLD_DELIVERIES} old messages and {CLOSED_CASES} closed cases"
            )
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
