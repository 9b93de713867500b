"""The price catalog as the database holds it (declared in billing/catalog.py, synced to Stripe)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Interval(models.TextChoices):
    MONTH = "month", _("monthly")
    QUARTER = "quarter", _("quarterly")
    YEAR = "year", _("yearly")


class Tier(models.Model):
    key = models.SlugField(unique=True)
    name = models.CharField(max_length=80)
    rank = models.PositiveSmallIntegerField(help_text="Higher is a bigger plan; orders upgrades.")
    stripe_product_id = models.CharField(max_length=255, unique=True, null=True, blank=True)

    class Meta:
        ordering = ["rank"]

    def __str__(self) -> str:
        return self.name


class Price(models.Model):
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="prices")
    interval = models.CharField(max_length=10, choices=Interval.choices)
    currency = models.CharField(max_length=3, help_text="ISO 4217, lower case as Stripe writes it.")
    unit_amount = models.PositiveIntegerField(help_text="Minor units per interval.")
    lookup_key = models.CharField(max_length=200, unique=True)
    stripe_price_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tier", "interval", "currency"],
                condition=models.Q(active=True),
                name="one_active_price_per_tier_interval_currency",
            )
        ]

    def __str__(self) -> str:
        return self.lookup_key
