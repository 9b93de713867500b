"""Payment recovery: the escalation policy staff edit (a new version each time), one case per
failed invoice with every attempt on it, and what customers did with the links they were sent.

These rows are what staff and the analytics read: when a case opened, why the bank declined,
which messages went out and which were clicked, and how it ended.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models.changes import BillingChange
from billing.models.customers import BillingCustomer
from billing.models.outbox import Delivery


def _default_extensions() -> dict[str, Any]:
    from billing.extensions import DEFAULT

    return DEFAULT.model_dump(mode="json")


class RecoveryPolicy(models.Model):
    """One version of the escalation policy.  A saved version is never edited: staff save a new
    one, and a case keeps the version that opened it to its end (billing.recovery validates)."""

    class EndAction(models.TextChoices):
        RESTRICT = "restrict", _("restrict access and keep the account")
        CANCEL = "cancel", _("cancel the subscription")

    version = models.PositiveIntegerField(unique=True)
    # [{"name": "friendly", "day": 0, "tone": "friendly", "channels": ["email", "in_app"],
    #   "condition": "always"}, ...]; the schema is billing.recovery.Step.
    steps: models.JSONField[list[dict[str, Any]]] = models.JSONField(default=list)
    # Access continues this many days after the first failed payment, then end_action happens.
    grace_days = models.PositiveSmallIntegerField(default=14)
    end_action = models.CharField(max_length=20, choices=EndAction.choices, default=EndAction.RESTRICT)
    # At most this many recovery messages a customer receives in 24 hours (all their cases).
    daily_cap = models.PositiveSmallIntegerField(default=1)
    # A reminder due this close before Stripe's next automatic retry waits until after it.
    retry_hold_hours = models.PositiveSmallIntegerField(default=12)
    # How long the links in a message work.
    link_days = models.PositiveSmallIntegerField(default=14)
    # More time to pay: the limits and what is approved at once (billing.extensions.Rules).
    extensions: models.JSONField[dict[str, Any]] = models.JSONField(default=_default_extensions, blank=True)
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        verbose_name_plural = "recovery policies"

    def __str__(self) -> str:
        return f"recovery policy v{self.version}"


class RecoveryCase(models.Model):
    """One failure episode: an invoice whose payment failed, from the first failure until it is
    paid or written off."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        RECOVERED = "recovered", _("recovered")
        LOST = "lost", _("lost")

    class Outcome(models.TextChoices):
        # Paid by one of Stripe's automatic retries.
        RETRY = "retry", _("recovered by Stripe's retry")
        CARD_UPDATE = "card_update", _("recovered by a card update")
        PAY_NOW = "pay_now", _("recovered by paying now")
        # Paid by the customer's backup card (charged with their consent after the default failed).
        BACKUP_CARD = "backup_card", _("recovered by the backup card")
        # Voided, marked uncollectible, or its subscription canceled.
        WRITTEN_OFF = "written_off", _("written off")
        CANCELED = "canceled", _("canceled at the end of the recovery")
        # Paid on the date the customer was given to pay (billing.services.extensions).
        EXTENSION = "extension", _("recovered on the agreed date")

    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="recovery_cases")
    # One case per invoice, however many events and attempts tell of it.
    invoice_stripe_id = models.CharField(max_length=255, unique=True)
    subscription_stripe_id = models.CharField(max_length=255, blank=True)
    amount = models.IntegerField()
    currency = models.CharField(max_length=3)
    # Every decline code seen, oldest first; `family` and `hard` are the latest decline's.
    decline_codes: models.JSONField[list[str]] = models.JSONField(default=list)
    family = models.CharField(max_length=40)
    hard = models.BooleanField(default=False)
    # The one action that fixes it (billing.declines.Action): what its links and pages offer.
    action = models.CharField(max_length=20)
    # The card the latest failed attempt was made on (a Stripe id).
    payment_method_id = models.CharField(max_length=255, blank=True)
    policy = models.ForeignKey(RecoveryPolicy, on_delete=models.PROTECT, related_name="cases")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Access continues until then (policy.grace_days after opening); then the end action.
    grace_ends_at = models.DateTimeField()
    # When the end action was carried out (access restricted, or the subscription canceled).
    ended_at = models.DateTimeField(null=True, blank=True)
    # The next step of the policy to send (an index into its steps) and when it is due; None
    # when none is left.
    next_step = models.PositiveSmallIntegerField(default=0)
    next_step_at = models.DateTimeField(null=True, blank=True)
    # Automatic retries stopped (the invoice no longer auto-advances) and why: a hard decline, or
    # the card reached the networks' limits.  Collection resumes when a new card arrives.
    retries_stopped_at = models.DateTimeField(null=True, blank=True)
    retries_stopped_reason = models.CharField(max_length=40, blank=True)
    # While the customer has more time to pay (billing.services.extensions): until when (the
    # agreed charge), and since when the case's reminders and end wait.  `held_for` is all the
    # time it waited, so the steps still to come keep their distance from one another.
    extended_until = models.DateTimeField(null=True, blank=True)
    held_since = models.DateTimeField(null=True, blank=True)
    held_for = models.DurationField(default=dt.timedelta)
    # The customer's backup card (a Stripe id), charged once for this invoice at `backup_due_at`
    # if they agreed to it (billing.backup); `backup_tried_at` is set when it was charged, so it
    # never is twice.
    backup_payment_method_id = models.CharField(max_length=255, blank=True)
    backup_due_at = models.DateTimeField(null=True, blank=True)
    backup_tried_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [
            models.Index(fields=["status", "next_step_at"]),
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["status", "backup_due_at"]),
        ]

    def __str__(self) -> str:
        return f"case {self.pk} ({self.invoice_stripe_id}, {self.status})"


class PaymentAttempt(models.Model):
    """One attempt to collect a payment on a card, Stripe's or ours: a Charge, or a payment that
    waited for the customer's 3-D Secure approval.  Counted per card by the guardrail (at most 15
    attempts in 30 days; none after a decline the networks forbid retrying)."""

    case = models.ForeignKey(
        RecoveryCase, on_delete=models.CASCADE, null=True, blank=True, related_name="attempts"
    )
    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="+")
    # The Charge's id, or "<payment intent>:auth:<attempt>" for an approval request: unique, so the
    # same attempt told twice is one row.
    stripe_id = models.CharField(max_length=255, unique=True)
    invoice_stripe_id = models.CharField(max_length=255)
    payment_method_id = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField()
    succeeded = models.BooleanField(default=False)
    decline_code = models.CharField(max_length=100, blank=True)
    advice_code = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["payment_method_id", "at"])]

    def __str__(self) -> str:
        return self.stripe_id


class LinkEvent(models.Model):
    """A customer clicked through a message's deep link (`opened`: the page's button, a POST, never
    the GET a mail scanner makes) or did what it was for (`used`)."""

    class Kind(models.TextChoices):
        OPENED = "opened", _("opened")
        USED = "used", _("used")

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="link_events")
    case = models.ForeignKey(
        RecoveryCase, on_delete=models.CASCADE, null=True, blank=True, related_name="link_events"
    )
    purpose = models.CharField(max_length=30)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    change = models.ForeignKey(
        BillingChange, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at"]
        constraints = [
            # A link does its action once.
            models.UniqueConstraint(
                fields=["delivery", "purpose"], condition=models.Q(kind="used"), name="link_used_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.purpose} ({self.delivery_id})"
