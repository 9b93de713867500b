"""Mirrors of Stripe's objects, written only by billing.sync from what Stripe says.

Each carries `stripe_state_at`, the moment the Stripe state it holds was read, so a stale copy
is never written over a newer one.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from billing.models.catalog import Price
from billing.models.customers import BillingCustomer


class Subscription(models.Model):
    class Status(models.TextChoices):
        INCOMPLETE = "incomplete", _("incomplete")
        INCOMPLETE_EXPIRED = "incomplete_expired", _("expired")
        TRIALING = "trialing", _("trial")
        ACTIVE = "active", _("active")
        PAST_DUE = "past_due", _("payment failed")
        CANCELED = "canceled", _("canceled")
        UNPAID = "unpaid", _("unpaid")
        PAUSED = "paused", _("paused")

    stripe_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="subscriptions")
    status = models.CharField(max_length=20, choices=Status.choices)
    price = models.ForeignKey(Price, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    stripe_price_id = models.CharField(max_length=255, blank=True)
    quantity = models.PositiveIntegerField(default=1)
    currency = models.CharField(max_length=3)
    unit_amount = models.PositiveIntegerField(default=0)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    cancel_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    pause_behavior = models.CharField(max_length=30, blank=True)
    pause_resumes_at = models.DateTimeField(null=True, blank=True)
    default_payment_method_id = models.CharField(max_length=255, blank=True)
    latest_invoice_id = models.CharField(max_length=255, blank=True)
    # A plan change scheduled for the renewal (a Stripe subscription schedule's next phase).
    schedule_id = models.CharField(max_length=255, blank=True)
    scheduled_price = models.ForeignKey(
        Price, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # An upgrade Stripe applies once its invoice is paid (payment_behavior=pending_if_incomplete).
    pending_price = models.ForeignKey(
        Price, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    pending_expires_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField()
    stripe_state_at = models.DateTimeField()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.stripe_id


class PaymentMethod(models.Model):
    stripe_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="payment_methods")
    brand = models.CharField(max_length=30)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    funding = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True)
    # When the card updater last gave Stripe a new expiry or number for it
    # (payment_method.automatically_updated): pre-dunning never reminds about such a card.
    updated_automatically_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField()
    stripe_state_at = models.DateTimeField()

    class Meta:
        ordering = ["-created"]
        # Pre-dunning asks, per customer, whether another card is valid past a charge.
        indexes = [
            models.Index(fields=["customer", "exp_year", "exp_month"], name="billing_pm_customer_expiry")
        ]

    def __str__(self) -> str:
        return f"{self.brand} •••• {self.last4}"


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        OPEN = "open", _("open")
        PAID = "paid", _("paid")
        UNCOLLECTIBLE = "uncollectible", _("uncollectible")
        VOID = "void", _("void")

    stripe_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="invoices")
    subscription_stripe_id = models.CharField(max_length=255, blank=True)
    number = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    currency = models.CharField(max_length=3)
    total = models.IntegerField(default=0)
    amount_due = models.IntegerField(default=0)
    amount_paid = models.IntegerField(default=0)
    amount_remaining = models.IntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    next_payment_attempt = models.DateTimeField(null=True, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    due_date = models.DateTimeField(null=True, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    invoice_pdf = models.URLField(max_length=1000, blank=True)
    created = models.DateTimeField()
    stripe_state_at = models.DateTimeField()

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["customer", "status"])]

    def __str__(self) -> str:
        return self.number or self.stripe_id
