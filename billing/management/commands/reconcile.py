from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import sync
from billing.errors import BillingError
from billing.models import BillingCustomer


class Command(BaseCommand):
    help = (
        "Re-read customers from Stripe and make the local mirror match (one by email or Stripe id, or --all)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("customer", nargs="?", help="email or Stripe customer id (cus_...)")
        parser.add_argument("--all", action="store_true", help="every customer known to Stripe")

    def handle(self, *args: Any, **options: Any) -> None:
        who = options["customer"]
        if bool(who) == bool(options["all"]):
            raise CommandError("Give one customer (email or cus_...) or --all.")
        customers = BillingCustomer.objects.exclude(stripe_customer_id=None)
        if who:
            field = "stripe_customer_id" if who.startswith("cus_") else "email__iexact"
            customers = customers.filter(**{field: who})
            if not customers.exists():
                raise CommandError(f"No customer {who!r} with a Stripe id.")
        failed = 0
        done = 0
        for customer in customers.order_by("pk").iterator():
            try:
                sync.reconcile_customer(customer_id=customer.pk)
                done += 1
            except BillingError as exc:
                failed += 1
                self.stderr.write(f"{customer.stripe_customer_id}: {exc.code}: {exc.message}")
        self.stdout.write(f"reconciled {done} customer(s), {failed} failed")
        if failed:
            raise CommandError(f"{failed} customer(s) could not be reconciled")
