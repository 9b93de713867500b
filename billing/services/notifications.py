"""The customer's in-app messages: marking them read (the header counts the unread ones)."""

from __future__ import annotations

from django.utils import timezone

from billing.models import BillingCustomer, Delivery


def mark_read(*, customer: BillingCustomer) -> int:
    """Every in-app message of the customer's is read now; returns how many were unread."""
    return Delivery.objects.filter(
        customer=customer, channel=Delivery.Channel.IN_APP, read_at__isnull=True
    ).update(read_at=timezone.now())
