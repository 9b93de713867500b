"""The billing engine's tables: the catalog, the customer, mirrors of Stripe, and the three
durable records (changes sent to Stripe, events received from it, messages to customers).

Money is integer minor units with an ISO currency; datetimes are aware and stored in UTC.
Mirrors carry `stripe_state_at`, the moment the Stripe state they hold was read, so a
stale copy is never written over a newer one.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
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


class Language(models.TextChoices):
    EN = "en", "English"
    SV = "sv", "Svenska"
    NL = "nl", "Nederlands"


class BillingCustomer(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing")
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=5, choices=Language.choices, default=Language.EN)
    currency = models.CharField(max_length=3, default="eur")
    # Stripe ids, not foreign keys: the card mirror may arrive after the customer's own update.
    default_payment_method_id = models.CharField(max_length=255, blank=True)
    backup_payment_method_id = models.CharField(max_length=255, blank=True)
    backup_consent_at = models.DateTimeField(null=True, blank=True)
    delinquent = models.BooleanField(default=False)
    stripe_state_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.email or str(self.user)


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
    created = models.DateTimeField()
    stripe_state_at = models.DateTimeField()

    class Meta:
        ordering = ["-created"]

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


class BillingChange(models.Model):
    """A change the customer (or staff) asked for: a row before it is a request to Stripe."""

    class Kind(models.TextChoices):
        CARD_ADD = "card_add", _("add a card")
        CARD_SET_DEFAULT = "card_set_default", _("set the default card")
        CARD_SET_BACKUP = "card_set_backup", _("set the backup card")
        CARD_REMOVE = "card_remove", _("remove a card")

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        APPLIED = "applied", _("applied")
        FAILED = "failed", _("failed")
        ACTION_REQUIRED = "action_required", _("needs your approval")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField(max_length=40, choices=Kind.choices)
    params: models.JSONField[dict[str, Any]] = models.JSONField(default=dict)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # What Stripe said, for the customer (translated at render time from the code) and for staff.
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    result: models.JSONField[dict[str, Any]] = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    def idempotency_key(self, step: str) -> str:
        return f"change-{self.id}-{step}"


class StripeEvent(models.Model):
    """The webhook inbox: a row before it is an effect."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        PROCESSED = "processed", "processed"
        IGNORED = "ignored", "ignored"
        FAILED = "failed", "failed"

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    api_version = models.CharField(max_length=50, blank=True)
    livemode = models.BooleanField(default=False)
    object_id = models.CharField(max_length=255, blank=True)
    customer_stripe_id = models.CharField(max_length=255, blank=True, db_index=True)
    payload: models.JSONField[dict[str, Any]] = models.JSONField()
    stripe_created = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-stripe_created"]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"


class Notification(models.Model):
    """The outbox: a message is a row before it is sent, and its dedupe key is never sent twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"

    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="notifications")
    template = models.CharField(max_length=60)
    dedupe_key = models.CharField(max_length=255, unique=True)
    channel = models.CharField(max_length=20, default="email")
    context: models.JSONField[dict[str, Any]] = models.JSONField(default=dict)
    change = models.ForeignKey(
        BillingChange, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.dedupe_key
