"""Why customers leave: the cancel survey's answer, the alternative offered and whether it was
taken, kept for the recovery analytics (whether or not they then cancelled)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from billing.models.changes import BillingChange
from billing.models.customers import BillingCustomer


class CancellationFeedback(models.Model):
    customer = models.ForeignKey(BillingCustomer, on_delete=models.CASCADE, related_name="cancel_feedback")
    subscription = models.CharField(max_length=255)
    # billing.cancellation.Reason and Offer.
    reason = models.CharField(max_length=40)
    comment = models.TextField(blank=True)
    offer = models.CharField(max_length=40)
    # The offer taken instead of cancelling (the plan change or pause it made), or the cancel.
    offer_taken = models.BooleanField(default=False)
    change = models.ForeignKey(
        BillingChange, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["reason", "created"])]

    def __str__(self) -> str:
        return f"{self.reason} ({'offer taken' if self.offer_taken else self.offer})"
