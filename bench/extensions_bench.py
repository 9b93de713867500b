"""Benchmark the payment extensions' due-date job: how fast its Stripe writes go out, and that they
never go faster than the configured write rate.

Run with ``make bench`` (or ``.venv/bin/python bench/extensions_bench.py --help``).  It needs
PostgreSQL: ``DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/portal_extensions_bench``)
names a database the bench owns: created when missing, migrated and then *flushed*, so its name must
contain "bench".  ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) is where the write budget is
shared (billing.ratelimit), as in production; ``--no-redis`` measures the in-process limiter.  A
Stripe emulator runs in this process on a free port.

Seeded through the emulator: ``--extensions`` customers (default 150), each with a Visa, an open
invoice of €19.00 that Stripe does not collect by itself (a subscription's first invoice, left
incomplete), its recovery case and an approved
extension whose date has come.  Then the job (billing.services.extensions.charge_due, what the beat
task ``extensions_due`` runs) charges them all, in batches as the task would, with the write rate
set to ``--rate`` (default 10/s, the setting's default).  Reported: writes that reached the
emulator, the most in any one second (must not exceed ``rate + burst``), the mean rate, the rate
after the opening burst (the long-run rate, at most ``rate``), the time taken, and SQL queries per
extension charged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import sys
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from portal_bench import prepare_database, setup_django

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "extensions-latest.json"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/portal_extensions_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def seed(*, count: int) -> list[int]:
    """Customers whose agreed date has come, each with an open invoice at the emulator."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from billing.models import BillingCustomer, Extension, Price, RecoveryCase
    from billing.services import extensions, recovery
    from tests.portal_support import stripe_client

    api = stripe_client()
    policy = recovery.active_policy()
    price = Price.objects.get(lookup_key="standard_month_eur").stripe_price_id
    now = timezone.now()
    ids = []
    for n in range(count):
        email = f"ext{n}@bench.example.com"
        cus = api.v1.customers.create(params={"email": email})
        card = api.v1.payment_methods.attach("pm_card_visa", params={"customer": cus.id}).id
        api.v1.customers.update(cus.id, params={"invoice_settings": {"default_payment_method": card}})
        # A first invoice left open and uncollected (the emulator, like Stripe, makes one this way).
        sub = api.v1.subscriptions.create(
            params={"customer": cus.id, "items": [{"price": price}], "payment_behavior": "default_incomplete"}
        )
        invoice = api.v1.invoices.retrieve(str(sub.latest_invoice))
        assert invoice.status == "open", invoice.status
        user = get_user_model().objects.create_user(username=email, email=email, password="x")
        customer = BillingCustomer.objects.create(
            user=user, email=email, stripe_customer_id=cus.id, default_payment_method_id=card
        )
        due = now - dt.timedelta(days=5)
        case = RecoveryCase.objects.create(
            customer=customer,
            invoice_stripe_id=invoice.id,
            subscription_stripe_id=f"sub_bench_{n}",
            amount=1900,
            currency="eur",
            decline_codes=["insufficient_funds"],
            family="insufficient_funds",
            action="pay_now",
            policy=policy,
            opened_at=due,
            grace_ends_at=due + dt.timedelta(days=14),
            held_since=due,
            extended_until=now,
        )
        extension = Extension.objects.create(
            customer=customer,
            kind="after_failure",
            status="approved",
            subscription_stripe_id=f"sub_bench_{n}",
            case=case,
            invoice_stripe_id=invoice.id,
            amount=1900,
            currency="eur",
            due_at=due,
            until=now.date(),
            charge_at=now - dt.timedelta(minutes=1),
            decided_at=due,
        )
        # Granted as the request would have been: Stripe stopped collecting the invoice then.
        extensions._grant(extension, requested_by=None)
        ids.append(extension.pk)
    return ids


def run(*, emulator: Any, rate: float, batch: int) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from stripe_rate import measure_writes

    from billing import ratelimit
    from billing.models import Extension
    from billing.services import extensions

    settings.BILLING_STRIPE_WRITE_RATE = rate
    settings.BILLING_STRIPE_WRITE_BURST = None
    limit = ratelimit.configured_limit()
    runs = 0

    def job() -> None:
        nonlocal runs
        # As the beat task: a full batch is followed at once by the next.
        while extensions.charge_due(now=timezone.now(), limit=batch) >= batch:
            runs += 1
        runs += 1

    with CaptureQueriesContext(connection) as queries:
        figures = measure_writes(emulator=emulator, writes=job, paced=False)
    paid = Extension.objects.filter(status="paid").count()
    arrivals = sorted(figures.arrivals)
    from stripe_rate import mean_rate

    return {
        **figures.as_dict(),
        "rate_limit_per_s": limit.rate,
        "burst": limit.burst,
        # The long-run rate: from the first write after the opening burst to the last.
        "steady_rate_per_s": round(mean_rate(arrivals[int(limit.burst) :]), 2),
        "limiter": "redis" if ratelimit.redis_url() else "in-process",
        "extensions_paid": paid,
        "job_runs": runs,
        "sql_per_extension": round(len(queries) / max(paid, 1), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--extensions", type=int, default=150, help="extensions due together (default 150)")
    parser.add_argument(
        "--rate", type=float, default=10.0, help="Stripe writes a second allowed (default 10)"
    )
    parser.add_argument(
        "--batch", type=int, default=500, help="extensions a run of the job takes (default 500)"
    )
    parser.add_argument("--no-redis", action="store_true", help="the in-process limiter instead of Redis")
    parser.add_argument(
        "--allow-any-database", action="store_true", help="flush DATABASE_URL even without 'bench'"
    )
    parser.add_argument("--output", type=pathlib.Path, default=RESULTS, help=f"default {RESULTS}")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    os.environ["REDIS_URL"] = "" if args.no_redis else (os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    prepare_database(url=url, allow_any=args.allow_any_database)
    setup_django(url=url)

    from django.conf import settings

    from billing.catalog_sync import sync_catalog
    from stripe_emulator.app import Emulator

    settings.REDIS_URL = os.environ["REDIS_URL"]
    emulator = Emulator("127.0.0.1", 0).start()
    try:
        settings.STRIPE_API_BASE = emulator.url
        sync_catalog()
        t0 = time.perf_counter()
        seed(count=args.extensions)
        seeded = time.perf_counter() - t0
        figures = run(emulator=emulator, rate=args.rate, batch=args.batch)
    finally:
        emulator.stop()
    figures["seed_s"] = round(seeded, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2))
    print("payment extensions: the due-date job against the emulator")
    print(
        f"  {figures['extensions_paid']} of {args.extensions} extensions charged and paid in "
        f"{figures['elapsed_s']} s ({figures['job_runs']} run(s) of the job, {figures['sql_per_extension']} SQL each)"
    )
    print(
        f"  Stripe writes: {figures['writes']}, mean {figures['mean_rate_per_s']}/s; most in any 1 s: "
        f"{figures['peak_per_window']} (limit {figures['rate_limit_per_s']}/s, burst {figures['burst']}); "
        f"after the opening burst {figures['steady_rate_per_s']}/s; limiter: {figures['limiter']}"
    )
    over = figures["peak_per_window"] > figures["rate_limit_per_s"] + figures["burst"]
    if over or figures["extensions_paid"] != args.extensions:
        print("  FAILED: over the limit, or not every extension was paid")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
