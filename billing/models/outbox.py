"""The outbox: one row per message, customer, subject and channel, before anything is sent.

Its dedupe key is unique, so the same message about the same thing never goes out twice on one
channel, however often it is asked for (duplicate webhooks, task retries).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from billing.models.changes import BillingChange
from billing.models.customers import BillingCustomer


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        # Handed to the transport by a worker, not yet confirmed sent (billing.outbox.send).
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        # Given up after the policy's attempts.
        FAILED = "failed", "failed"
        # Deliberately not sent (opted out, no address for the channel); the reason says which.
        SUPPRESSED = "suppressed", "suppressed"

    class Channel(models.TextChoices):
        EMAIL = "email", "email"
        SMS = "sms", "SMS"
        IN_APP = "in_app", "in-app"

    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="deliveries")
    # A name in the message registry (billing.messages), with its category at the time.
    message = models.CharField(max_length=60)
    category = models.CharField(max_length=30)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # What the message is about ("invoice:in_…", "change:<uuid>") and at which step ("paid").
    about = models.CharField(max_length=255)
    dedupe_key = models.CharField(max_length=255, unique=True)
    # The message's facts (validated by its declared model): ids, amounts, codes, never secrets.
    context: models.JSONField[dict[str, Any]] = models.JSONField(default=dict)
    change = models.ForeignKey(
        BillingChange, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The recovery case a reminder belongs to (billing.recovery), for staff and the analytics.
    case = models.ForeignKey(
        "billing.RecoveryCase", on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    suppressed_reason = models.CharField(max_length=40, blank=True)
    # Not sent before this moment: quiet hours in the customer's time zone, or a retry's backoff.
    send_after = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "send_after"]),
            models.Index(fields=["customer", "channel", "-created_at"]),
        ]

    def __str__(self) -> str:
        return self.dedupe_key
