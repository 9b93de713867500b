from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.catalog_sync import sync_catalog


class Command(BaseCommand):
    help = "Create or update the declared price catalog (billing/catalog.py) in Stripe and in the database."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = sync_catalog()
        self.stdout.write(
            f"catalog: {counts['products_created']} products created, {counts['prices_created']} prices created, "
            f"{counts['prices_unchanged']} unchanged"
        )
