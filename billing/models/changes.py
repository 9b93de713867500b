"""A change the customer (or staff, or a job) asked for: a row before it is a request to Stripe."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models.customers import BillingCustomer


class BillingChange(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        APPLIED = "applied", _("applied")
        FAILED = "failed", _("failed")
        ACTION_REQUIRED = "action_required", _("needs your approval")
        SUPERSEDED = "superseded", _("replaced by a newer change")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="changes")
    # A name in the change registry (billing.changes); what it means is declared there, once.
    kind = models.CharField(max_length=40)
    # The kind's Params, validated when the change was recorded, as JSON.
    params: models.JSONField[dict[str, Any]] = models.JSONField(default=dict)
    # What makes a second submit the same change (a form's one-time token, a SetupIntent id).
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # Why it failed or waits: the code is translated for the customer at render time; the message
    # is for staff (Stripe's words, or the exception of a bug).
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    # The bank's reason when a card was declined (insufficient_funds, ...).
    decline_code = models.CharField(max_length=100, blank=True)
    # The kind's Result, as JSON (facts only: ids, amounts, outcomes; never a secret).
    result: models.JSONField[dict[str, Any]] = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    superseded_by = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind", "dedupe_key"],
                condition=models.Q(dedupe_key__isnull=False),
                name="one_change_per_dedupe_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    def idempotency_key(self, step: str) -> str:
        return f"change-{self.id}-{step}"
