"""Celery tasks: each one is safe to run twice (late acks deliver a task again if its worker dies)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import current_app, shared_task
from django.db import transaction
from django.utils import timezone

from billing import handlers, notify, services, sync
from billing.errors import StripeUnavailable
from billing.models import BillingChange, BillingCustomer, Notification, StripeEvent

logger = logging.getLogger(__name__)


@shared_task(bind=True, autoretry_for=(Exception,), retry_backoff=2, retry_backoff_max=600, max_retries=8)
def process_event(self: Any, event_pk: int) -> str:
    return handlers.process(event_pk=event_pk)


@shared_task(bind=True, max_retries=None)
def apply_change(self: Any, change_id: str) -> str:
    services.apply_change(change_id=change_id)
    change = BillingChange.objects.get(pk=change_id)
    if change.status == BillingChange.Status.PENDING and change.next_attempt_at and not self.request.is_eager:
        # Stripe was unreachable: come back when the policy says (the beat job is the safety net).
        delay = max(1.0, (change.next_attempt_at - timezone.now()).total_seconds())
        if _within_visibility(delay):
            raise self.retry(countdown=delay)
        # Longer waits are left to `apply_pending_changes`: Redis hands a message held past the
        # visibility timeout to a worker again, and every copy would schedule its own retry.
    return change.status


def _within_visibility(delay: float) -> bool:
    """Whether a task may wait `delay` seconds in a worker (countdown) without the broker
    delivering it a second time meanwhile."""
    options = current_app.conf.broker_transport_options or {}
    return delay <= float(options.get("visibility_timeout", 3600)) / 2


def enqueue_change(*, change: BillingChange) -> None:
    """Send a pending change to the worker once the row that records it is committed.  Without a
    worker (eager mode: the demo) the periodic `apply_pending_changes` picks it up instead."""
    if current_app.conf.task_always_eager:
        return
    delay = 0.0
    if change.next_attempt_at:
        delay = max(0.0, (change.next_attempt_at - timezone.now()).total_seconds())
    change_id = str(change.pk)
    transaction.on_commit(lambda: apply_change.apply_async(args=(change_id,), countdown=delay))


# The longest backoff stays under the broker's visibility timeout (600 s), so a waiting retry is not delivered twice.
@shared_task(bind=True, autoretry_for=(OSError,), retry_backoff=5, retry_backoff_max=300, max_retries=10)
def send_notification(self: Any, notification_id: int) -> bool:
    return notify.send(notification_id=notification_id)


@shared_task
def apply_pending_changes() -> int:
    return services.apply_due_changes()


@shared_task
def process_pending_events() -> int:
    """Events stored but never processed (a lost enqueue) or failed, oldest first."""
    stale = timezone.now() - dt.timedelta(minutes=1)
    ids = list(
        StripeEvent.objects.filter(
            status__in=[StripeEvent.Status.PENDING, StripeEvent.Status.FAILED], received_at__lt=stale
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:500]
    )
    for pk in ids:
        process_event.delay(pk)
    return len(ids)


@shared_task
def send_pending_notifications() -> int:
    stale = timezone.now() - dt.timedelta(minutes=1)
    ids = list(
        Notification.objects.filter(status=Notification.Status.PENDING, created_at__lt=stale).values_list(
            "pk", flat=True
        )[:500]
    )
    for pk in ids:
        send_notification.delay(pk)
    return len(ids)


@shared_task(autoretry_for=(StripeUnavailable,), retry_backoff=30, max_retries=5)
def reconcile_customer(customer_pk: int) -> None:
    sync.reconcile_customer(customer_id=customer_pk)


@shared_task
def reconcile_all_customers() -> int:
    ids = list(BillingCustomer.objects.exclude(stripe_customer_id=None).values_list("pk", flat=True))
    for pk in ids:
        reconcile_customer.delay(pk)
    return len(ids)
