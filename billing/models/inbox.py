"""The webhook inbox: a Stripe event is a row before it is an effect."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone


class StripeEvent(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        # An attempt failed; it is tried again at next_attempt_at.
        RETRYING = "retrying", "retrying"
        PROCESSED = "processed", "processed"
        IGNORED = "ignored", "ignored"
        # Given up after the policy's attempts: only `manage.py replay_events` tries it again.
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
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-stripe_created"]
        indexes = [
            models.Index(fields=["status", "received_at"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"
