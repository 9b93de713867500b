"""Making the database and Stripe agree with the declared catalog (billing/catalog.py)."""

from __future__ import annotations

import logging

from django.db import transaction

from billing import gateway
from billing.catalog import STRIPE_RECURRING, TIERS, lookup_key
from billing.models import Price, Tier

logger = logging.getLogger(__name__)


def sync_catalog() -> dict[str, int]:
    """Create what is missing, follow amounts that changed (a new Stripe price takes the lookup
    key), and leave the rest alone.  Safe to run any number of times."""
    counts = {"products_created": 0, "prices_created": 0, "prices_unchanged": 0}
    for spec in TIERS:
        tier, _ = Tier.objects.update_or_create(key=spec.key, defaults={"name": spec.name, "rank": spec.rank})
        if not tier.stripe_product_id:
            product = gateway.product_by_catalog_key(catalog_key=spec.key)
            if product is None:
                product = gateway.product_create(
                    name=spec.name, catalog_key=spec.key, idempotency_key=f"catalog-product-{spec.key}"
                )
                counts["products_created"] += 1
            tier.stripe_product_id = product.id
            tier.save(update_fields=["stripe_product_id"])
        for interval, by_currency in spec.amounts.items():
            stripe_interval, interval_count = STRIPE_RECURRING[interval]
            for currency, amount in by_currency.items():
                key = lookup_key(tier=spec.key, interval=interval, currency=currency)
                remote = gateway.price_by_lookup_key(lookup_key=key)
                if remote is None or remote.unit_amount != amount:
                    remote = gateway.price_create(
                        product_id=tier.stripe_product_id,
                        currency=currency,
                        unit_amount=amount,
                        interval=stripe_interval,
                        interval_count=interval_count,
                        lookup_key=key,
                        idempotency_key=f"catalog-price-{key}-{amount}",
                    )
                    counts["prices_created"] += 1
                else:
                    counts["prices_unchanged"] += 1
                replaced = Price.objects.filter(
                    tier=tier, interval=interval, currency=currency, active=True
                ).exclude(stripe_price_id=remote.id)
                # Archived at Stripe before it is marked here, so a run that stops in between
                # archives it on the next run; subscriptions on it keep it, new ones can't use it.
                for old_price_id in replaced.exclude(stripe_price_id=None).values_list(
                    "stripe_price_id", flat=True
                ):
                    gateway.price_archive(price_id=str(old_price_id))
                with transaction.atomic():
                    replaced.update(active=False, lookup_key=f"{key}@{remote.id}-old")
                    Price.objects.update_or_create(
                        stripe_price_id=remote.id,
                        defaults={
                            "tier": tier,
                            "interval": interval,
                            "currency": currency,
                            "unit_amount": amount,
                            "lookup_key": key,
                            "active": True,
                        },
                    )
    logger.info("catalog synced: %s", counts)
    return counts
