"""More time to pay: a customer's request for a later payment date, how it was decided (at once by
the policy, or by staff with a reason) and how it ended.  The rows are the audit of every
decision: who, when, why."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models.changes import BillingChange
from billing.models.customers import BillingCustomer
from billing.models.recovery import RecoveryCase


class Extension(models.Model):
    class Kind(models.TextChoices):
        AFTER_FAILURE = "after_failure", _("after a failed payment")
        BEFORE_RENEWAL = "before_renewal", _("before a renewal")

    class Status(models.TextChoices):
        # Waiting in the staff queue.
        REQUESTED = "requested", _("waiting for review")
        # Running: the charge is tried on the agreed date.
        APPROVED = "approved", _("approved")
        DENIED = "denied", _("denied")
        # The charge on the agreed date paid.
        PAID = "paid", _("paid on the agreed date")
        # The charge on the agreed date failed: the recovery went on.
        FAILED = "failed", _("failed on the agreed date")
        # Over before its date: paid another way, or its subscription or case ended.
        CLOSED = "closed", _("closed before the date")

    RUNNING = (Status.REQUESTED, Status.APPROVED)

    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="extensions")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    subscription_stripe_id = models.CharField(max_length=255)
    # The failed invoice (after a failure), its case, and the amount owed or to be charged.
    case = models.ForeignKey(
        RecoveryCase, on_delete=models.SET_NULL, null=True, blank=True, related_name="extensions"
    )
    invoice_stripe_id = models.CharField(max_length=255, blank=True)
    amount = models.IntegerField()
    currency = models.CharField(max_length=3)
    # When the payment was due (the failure, or the renewal), the date the customer picked (in
    # their calendar) and when the charge is tried then (UTC).
    due_at = models.DateTimeField()
    until = models.DateField()
    charge_at = models.DateTimeField()
    # In the customer's own words, optional.
    reason = models.TextField(blank=True, max_length=500)
    # Why it went to staff (billing.extensions.Review values); empty when approved at once.
    review: models.JSONField[list[str]] = models.JSONField(default=list, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # None with a decision: the policy approved it at once.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    # The changes that carried it to Stripe: holding the payment, then charging it on the date.
    grant = models.ForeignKey(
        BillingChange, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    charge = models.ForeignKey(
        BillingChange, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            # One request at a time on a subscription, however fast the double click.
            models.UniqueConstraint(
                fields=["subscription_stripe_id"],
                condition=Q(status__in=["requested", "approved"]),
                name="one_running_extension_per_subscription",
            )
        ]
        indexes = [
            # The due-date job reads approved extensions by date; the queue, requests by age.
            models.Index(fields=["charge_at"], condition=Q(status="approved"), name="extension_due"),
            models.Index(fields=["requested_at"], condition=Q(status="requested"), name="extension_queue"),
            models.Index(fields=["customer", "requested_at"]),
        ]

    def __str__(self) -> str:
        return f"extension {self.pk} until {self.until} ({self.status})"
