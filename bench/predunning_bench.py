"""Benchmark the nightly pre-dunning scan on PostgreSQL at 10k, 100k and 1M subscriptions.

Run with ``make bench`` (or ``.venv/bin/python bench/predunning_bench.py --help``).
``PREDUNNING_BENCH_DATABASE_URL`` or ``--database-url`` (default
``postgres://postgres@127.0.0.1:5432/portal_predunning_bench``; not DATABASE_URL, which ``make
bench`` gives the portal bench) names a database the bench owns: created when missing, migrated, and its customers, cards and subscriptions replaced at each
size, so its name must contain "bench".

Each size is generated in PostgreSQL itself (INSERT ... SELECT generate_series, no rows through
Python): one customer, one login, one default card and one subscription per number, a realistic
mix: 80 % monthly, 12 % quarterly, 8 % yearly; 2 % paused, 1 % cancelled, 1 % past due, 1 % set to
cancel at the period end; 3 % of the cards expire the month before their subscription's next
charge, a tenth of those with a newer second card and a tenth refreshed by the card updater; the
next charges spread over the interval.

Measured: the scan's selection exactly as the job runs it (`billing.services.predunning`: the
slices of primary keys and each slice's query), without writing the reminders (the outbox's
writes are per reminder, a few thousand a night at a million subscriptions, and measured by the
tests' standards elsewhere): wall time, the rows picked (card reminders, renewal reminders),
Python's tracemalloc peak and the growth of the process's max RSS.  Goal: 1M in under 30 s and
300 MB, growing linearly.  Results: bench/results/predunning-latest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import resource
import sys
import time
import tracemalloc
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.emulator_bench import git_commit  # noqa: E402
from bench.portal_bench import prepare_database  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "predunning-latest.json"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/portal_predunning_bench"
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ.setdefault("BILLING_LOG_LEVEL", "WARNING")

TABLES = ("billing_subscription", "billing_paymentmethod", "billing_billingcustomer", "auth_user")


def _filler(cursor: Any, table: str) -> dict[str, str]:
    """A value for every NOT NULL column without a default (Django keeps defaults in Python)."""
    cursor.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = %s AND is_nullable = 'NO' AND column_default IS NULL",
        [table],
    )
    values = {}
    for column, kind in cursor.fetchall():
        if kind in ("character varying", "text"):
            values[column] = "''"
        elif kind == "boolean":
            values[column] = "false"
        elif kind.startswith("timestamp"):
            values[column] = "now()"
        elif kind == "date":
            values[column] = "current_date"
        elif kind in ("jsonb", "json"):
            values[column] = "'[]'"
        else:
            values[column] = "0"
    return values


def _insert(cursor: Any, table: str, count: int, given: dict[str, str]) -> None:
    values = {**_filler(cursor, table), **given}
    values.pop("id", None)
    columns = ", ".join(values)
    cursor.execute(
        f"INSERT INTO {table} ({columns}) SELECT {', '.join(values.values())} "
        f"FROM generate_series(1, {count}) AS i"
    )


def generate(*, size: int, now: dt.datetime) -> dict[str, int]:
    from django.db import connection

    from billing.models import Price, Tier

    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {', '.join(TABLES)}, billing_delivery, billing_jobcursor RESTART IDENTITY CASCADE"
        )
        if not Price.objects.exists():
            tier = Tier.objects.create(key="standard", name="Standard", rank=2)
            for interval, amount in (("month", 1900), ("quarter", 5400), ("year", 19000)):
                Price.objects.create(
                    tier=tier, interval=interval, currency="eur", unit_amount=amount,
                    lookup_key=f"standard_{interval}_eur", stripe_price_id=f"price_{interval}",
                )  # fmt: skip
        prices = dict(Price.objects.values_list("interval", "pk"))
        started = time.perf_counter()
        _insert(cursor, "auth_user", size, {"username": "'u' || i", "email": "'u' || i || '@example.com'",
                                            "is_active": "true", "date_joined": "now()"})  # fmt: skip
        _insert(cursor, "billing_billingcustomer", size, {
            "user_id": "i", "stripe_customer_id": "'cus_' || i", "email": "'u' || i || '@example.com'",
            "language": "'en'", "currency": "'eur'", "default_payment_method_id": "'pm_' || i",
        })  # fmt: skip
        # The interval and the next charge of subscription i, as SQL over i.
        interval = "(CASE WHEN i % 25 < 20 THEN 'month' WHEN i % 25 < 23 THEN 'quarter' ELSE 'year' END)"
        days = "(CASE WHEN i % 25 < 20 THEN 30 WHEN i % 25 < 23 THEN 91 ELSE 365 END)"
        charge = (
            f"('{now.isoformat()}'::timestamptz + ((i::bigint * 7919) % ({days} * 24)) * interval '1 hour')"
        )
        month_before = f"({charge} AT TIME ZONE 'UTC' - interval '1 month')"
        expiring = "(i % 100 < 3)"
        cursor.execute(
            "INSERT INTO billing_paymentmethod (stripe_id, customer_id, brand, last4, exp_month, exp_year, funding,"
            " country, created, stripe_state_at, updated_automatically_at)"
            f" SELECT 'pm_' || i, i, 'visa', '4242',"
            f" CASE WHEN {expiring} THEN extract(month FROM {month_before}) ELSE 12 END,"
            f" CASE WHEN {expiring} THEN extract(year FROM {month_before}) ELSE 2031 END,"
            " 'credit', 'SE', now(), now(),"
            f" CASE WHEN {expiring} AND i % 1000 < 3 THEN now() END"
            f" FROM generate_series(1, {size}) AS i",
        )
        cursor.execute(
            "INSERT INTO billing_paymentmethod (stripe_id, customer_id, brand, last4, exp_month, exp_year, funding,"
            " country, created, stripe_state_at)"
            " SELECT 'pm_new_' || i, i, 'mastercard', '4444', 5, 2032, 'credit', 'SE', now(), now()"
            f" FROM generate_series(1, {size}) AS i WHERE i % 100 < 3 AND i % 1000 >= 997",
        )
        status = (
            "(CASE WHEN i % 100 = 97 THEN 'paused' WHEN i % 100 = 98 THEN 'canceled'"
            " WHEN i % 100 = 99 THEN 'past_due' WHEN i % 100 = 96 THEN 'paused' ELSE 'active' END)"
        )
        sub_values = {
            **_filler(cursor, "billing_subscription"),
            "stripe_id": "'sub_' || i", "customer_id": "i", "status": status,
            "price_id": f"(CASE {interval} WHEN 'month' THEN {prices['month']} WHEN 'quarter' THEN "
                        f"{prices['quarter']} ELSE {prices['year']} END)",
            "currency": "'eur'", "quantity": "1",
            "unit_amount": f"(CASE {interval} WHEN 'month' THEN 1900 WHEN 'quarter' THEN 5400 ELSE 19000 END)",
            "current_period_start": "now()", "current_period_end": charge,
            "cancel_at_period_end": "(i % 100 = 95)",
        }  # fmt: skip
        sub_values.pop("id", None)
        cursor.execute(
            f"INSERT INTO billing_subscription ({', '.join(sub_values)}) SELECT {', '.join(sub_values.values())}"
            f" FROM generate_series(1, {size}) AS i",
        )
        cursor.execute(f"ANALYZE {', '.join(TABLES)}")
        generated = time.perf_counter() - started
    return {"generate_seconds": round(generated, 1)}


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scan(*, now: dt.datetime) -> dict[str, Any]:
    """The job's selection, slice after slice, as billing.services.predunning.run walks it."""
    from django.db import reset_queries

    from billing import policy
    from billing.predunning import Kind
    from billing.services import predunning

    rules = policy.current().predunning
    rss_before = _max_rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    picked = {Kind.CARD_EXPIRING: 0, Kind.RENEWAL: 0}
    slices = 0
    for after, upto in predunning.slices(size=rules.batch):
        for candidate in predunning.due_in_slice(after=after, upto=upto, now=now, rules=rules):
            picked[candidate.kind] += 1
        slices += 1
        reset_queries()
    wall = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "seconds": round(wall, 2),
        "slices": slices,
        "card_reminders": picked[Kind.CARD_EXPIRING],
        "renewal_reminders": picked[Kind.RENEWAL],
        "tracemalloc_peak_mb": round(peak / 2**20, 2),
        "max_rss_growth_mb": round(_max_rss_mb() - rss_before, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated subscription counts")
    parser.add_argument("--allow-any-database", action="store_true")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PREDUNNING_BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="PostgreSQL database the bench owns (PREDUNNING_BENCH_DATABASE_URL; its name must contain 'bench')",
    )
    args = parser.parse_args()
    # Not DATABASE_URL: `make bench` may point that at the portal bench's database.
    url = args.database_url
    name = prepare_database(url=url, allow_any=args.allow_any_database)
    os.environ["DATABASE_URL"] = url
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    from billing import policy

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        row: dict[str, Any] = {"subscriptions": size, **generate(size=size, now=now), **scan(now=now)}
        row["per_million_seconds"] = round(row["seconds"] * 1_000_000 / size, 1)
        rows.append(row)
        print(
            f"{size:>9,} subs  generated {row['generate_seconds']:>6.1f} s  scan {row['seconds']:>6.2f} s"
            f" ({row['per_million_seconds']:>5.1f} s/M)  slices {row['slices']:>4}"
            f"  picked {row['card_reminders']:>6,} card + {row['renewal_reminders']:>6,} renewal"
            f"  tracemalloc peak {row['tracemalloc_peak_mb']:>6.2f} MB  max RSS +{row['max_rss_growth_mb']:>6.1f} MB",
            flush=True,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "commit": git_commit(),
                "database": name,
                "batch": policy.current().predunning.batch,
                "measured_at": now.isoformat(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"-> {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
