"""Celery tasks: each one is safe to run twice (late acks deliver a task again if its worker dies).

The work itself records its failures and decides, by policy, when to try again; a task comes back
on its own only for a transient failure (Stripe or the mail server unreachable) whose next try
falls within the broker's visibility window.  Everything else due later is picked up by the
periodic sweeps, so one failing item never holds up the others.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import current_app, shared_task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import changes, channels, handlers, outbox, sync
from billing.errors import OUTAGE_CODES, StripeUnavailable
from billing.models import BillingChange, BillingCustomer, Delivery, StripeEvent
from billing.services import backup, extensions, pauses, predunning, recovery

logger = logging.getLogger(__name__)

# How many items one run of a sweep takes on; a full batch queues the next run at once.
SWEEP_BATCH = 500

# Events a customer is waiting on (the first message of a failed payment goes within the minute):
# on the queue workers empty first (settings.CELERY_TASK_QUEUES), as are the messages themselves.
URGENT_EVENTS = frozenset({"invoice.payment_failed", "invoice.payment_action_required"})


def queue_for(*, event_type: str) -> str:
    return "urgent" if event_type in URGENT_EVENTS else "celery"


def _come_back(task: Any, when: dt.datetime | None) -> None:
    """Retry this task at `when` if a worker may hold it that long without the broker delivering
    it a second time meanwhile (longer waits are left to the sweeps)."""
    if when is None or task.request.is_eager:
        return
    delay = max(1.0, (when - timezone.now()).total_seconds())
    options = current_app.conf.broker_transport_options or {}
    if delay <= float(options.get("visibility_timeout", 3600)) / 2:
        raise task.retry(countdown=delay)


def _eager() -> bool:
    return bool(current_app.conf.task_always_eager)


# --------------------------------------------------------------------------- changes


@shared_task(bind=True, max_retries=None)
def apply_change(self: Any, change_id: str) -> str:
    changes.apply(change_id=change_id)
    change = BillingChange.objects.filter(pk=change_id).first()
    if change is None:  # gone with its customer
        return "gone"
    if change.status == BillingChange.Status.PENDING and change.error_code in OUTAGE_CODES:
        _come_back(self, change.next_attempt_at)
    return change.status


def enqueue_change(*, change: BillingChange) -> None:
    """Send a pending change to the worker once the row that records it is committed.  Without a
    worker (eager mode: the demo) the periodic `apply_pending_changes` picks it up instead."""
    if _eager():
        return
    delay = 0.0
    if change.next_attempt_at:
        delay = max(0.0, (change.next_attempt_at - timezone.now()).total_seconds())
    change_id = str(change.pk)
    transaction.on_commit(lambda: apply_change.apply_async(args=(change_id,), countdown=delay))


def enqueue_due_changes() -> None:
    if not _eager():
        transaction.on_commit(lambda: apply_pending_changes.delay())


@shared_task
def apply_pending_changes() -> int:
    tried = changes.apply_due(limit=SWEEP_BATCH)
    if tried >= SWEEP_BATCH:
        enqueue_due_changes()
    return tried


@shared_task
def resume_paused_subscriptions() -> int:
    """Pauses whose date has come resume (one change each, however often this runs); those ending
    soon get their reminder (once)."""
    return pauses.resume_due(limit=SWEEP_BATCH)


@shared_task
def recovery_due() -> int:
    """Recovery steps whose day has come, cases whose grace is over, and backup cards due to be
    charged (each once, however often this runs); a full batch queues the next run at once."""
    now = timezone.now()
    sent = recovery.send_due_steps(now=now, limit=SWEEP_BATCH)
    ended = recovery.end_due(now=now, limit=SWEEP_BATCH)
    backed = backup.backup_due(now=now, limit=SWEEP_BATCH)
    if max(sent, ended, backed) >= SWEEP_BATCH and not _eager():
        transaction.on_commit(lambda: recovery_due.delay())
    return sent + ended + backed


@shared_task
def extensions_due() -> int:
    """Payment extensions whose agreed date has come: each charged once (default card, then the
    backup), paced under the Stripe write rate; a full batch queues the next run at once."""
    charged = extensions.charge_due(now=timezone.now(), limit=SWEEP_BATCH)
    if charged >= SWEEP_BATCH and not _eager():
        transaction.on_commit(lambda: extensions_due.delay())
    return charged


@shared_task
def predunning_scan() -> int:
    """The nightly reminders before a charge; a rerun the same night goes on where this one stopped."""
    summary = predunning.run()
    return summary.card_reminders + summary.renewal_reminders


# --------------------------------------------------------------------------- events


@shared_task(bind=True, max_retries=None)
def process_event(self: Any, event_pk: int) -> str:
    status = handlers.process(event_pk=event_pk)
    if status == StripeEvent.Status.RETRYING:
        event = StripeEvent.objects.get(pk=event_pk)
        # Only Stripe being unreachable is worth coming back for at once; a bug waits for the sweep.
        if event.last_error.startswith(StripeUnavailable.__name__):
            _come_back(self, event.next_attempt_at)
    return status


@shared_task
def process_pending_events() -> int:
    """Events stored but never processed (a lost enqueue), and failed ones whose next try is due."""
    now = timezone.now()
    stale = now - dt.timedelta(minutes=1)
    ids = list(
        StripeEvent.objects.filter(
            Q(status=StripeEvent.Status.PENDING, received_at__lt=stale)
            | Q(status=StripeEvent.Status.RETRYING, next_attempt_at__lte=now)
        ).values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for pk in ids:
        process_event.delay(pk)
    return len(ids)


# --------------------------------------------------------------------------- messages


@shared_task(bind=True, max_retries=None)
def send_delivery(self: Any, delivery_id: int) -> bool:
    try:
        return outbox.send(delivery_id=delivery_id)
    except channels.ChannelUnavailable:
        delivery = Delivery.objects.filter(pk=delivery_id).first()
        if delivery is not None and delivery.status == Delivery.Status.PENDING:
            _come_back(self, delivery.send_after)
        return False


# A claimed delivery not confirmed sent after this long had its worker die mid-send.
CLAIM_TIMEOUT = dt.timedelta(minutes=10)


@shared_task
def send_pending_deliveries() -> int:
    outbox.abandoned_claims(now=timezone.now(), older_than=CLAIM_TIMEOUT)
    ids = outbox.due(now=timezone.now(), limit=SWEEP_BATCH)
    for pk in ids:
        send_delivery.delay(pk)
    return len(ids)


# --------------------------------------------------------------------------- reconciliation


@shared_task(autoretry_for=(StripeUnavailable,), retry_backoff=30, max_retries=5)
def reconcile_customer(customer_pk: int) -> None:
    sync.reconcile_customer(customer_id=customer_pk)


@shared_task
def reconcile_all_customers() -> int:
    ids = list(BillingCustomer.objects.exclude(stripe_customer_id=None).values_list("pk", flat=True))
    for pk in ids:
        reconcile_customer.delay(pk)
    return len(ids)
