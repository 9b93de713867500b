"""Processing stored Stripe events.

Events are notices, not data: each handler re-reads the object from Stripe while holding
the customer's row lock and writes what it reads into the mirror.  Duplicates, retries and
events arriving in any order therefore all end in the same state.

An event whose processing fails is retried with backoff (policy), then ends `failed`, where staff
see it and `manage.py replay_events` can try it again; it never holds up the events behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone, translation

from billing import gateway, policy, sync
from billing.errors import InvalidRequest, StripeUnavailable
from billing.models import BillingCustomer, StripeEvent
from billing.services import approvals, invoices, plans, recovery

logger = logging.getLogger(__name__)

Handler = Callable[[BillingCustomer, StripeEvent], None]
Status = StripeEvent.Status


def _mirrored(customer: BillingCustomer, subscription_id: str) -> None:
    before = plans.scheduled_before(subscription_id=subscription_id)
    data = gateway.subscription_retrieve(subscription_id=subscription_id)
    sync.subscription_from_stripe(customer=customer, data=data.raw, state_at=timezone.now())
    plans.confirm_scheduled_change(customer=customer, subscription_id=subscription_id, before=before)


def _subscription(customer: BillingCustomer, event: StripeEvent) -> None:
    _mirrored(customer, event.object_id)
    if event.type == "customer.subscription.deleted":
        recovery.subscription_ended(customer=customer, subscription_id=event.object_id)


def _schedule(customer: BillingCustomer, event: StripeEvent) -> None:
    """A schedule's news is its subscription's: what it changes to next, and when."""
    schedule = gateway.schedule_retrieve(schedule_id=event.object_id)
    if schedule.subscription_id:
        _mirrored(customer, schedule.subscription_id)


def _invoice(customer: BillingCustomer, event: StripeEvent) -> None:
    attempts = None
    if event.type in recovery.ATTEMPT_EVENTS:
        # A failed payment: the invoice with its attempts, which its recovery case needs.
        attempts = gateway.invoice_attempts(invoice_id=event.object_id)
        invoice = attempts.invoice
    else:
        invoice = gateway.invoice_retrieve(invoice_id=event.object_id)
    sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
    approvals.settle_paid_invoice(customer=customer, invoice=invoice)
    recovery.invoice_event(customer=customer, invoice=invoice, event_type=event.type, attempts=attempts)
    invoices.invoice_paid(customer=customer, invoice=invoice)


def _payment_method(customer: BillingCustomer, event: StripeEvent) -> None:
    try:
        card = gateway.payment_method_retrieve(payment_method_id=event.object_id)
    except InvalidRequest:
        # Gone from Stripe altogether: it can't be the customer's card any more.
        customer.payment_methods.filter(stripe_id=event.object_id).delete()
        return
    refreshed_at = event.stripe_created if event.type == "payment_method.automatically_updated" else None
    sync.payment_method_from_stripe(
        customer=customer, data=card.raw, state_at=timezone.now(), refreshed_at=refreshed_at
    )


def _customer(customer: BillingCustomer, event: StripeEvent) -> None:
    data = gateway.customer_retrieve(customer_id=event.object_id)
    sync.customer_from_stripe(customer=customer, data=data.raw, state_at=timezone.now())


HANDLERS: dict[str, Handler] = {
    "customer.updated": _customer,
    "customer.subscription.created": _subscription,
    "customer.subscription.updated": _subscription,
    "customer.subscription.deleted": _subscription,
    "customer.subscription.paused": _subscription,
    "customer.subscription.resumed": _subscription,
    "customer.subscription.pending_update_applied": _subscription,
    "customer.subscription.pending_update_expired": _subscription,
    "customer.subscription.trial_will_end": _subscription,
    "subscription_schedule.created": _schedule,
    "subscription_schedule.updated": _schedule,
    "subscription_schedule.released": _schedule,
    "subscription_schedule.canceled": _schedule,
    "subscription_schedule.completed": _schedule,
    "invoice.created": _invoice,
    "invoice.finalized": _invoice,
    "invoice.updated": _invoice,
    "invoice.paid": _invoice,
    "invoice.payment_succeeded": _invoice,
    "invoice.payment_failed": _invoice,
    "invoice.payment_action_required": _invoice,
    "invoice.voided": _invoice,
    "invoice.marked_uncollectible": _invoice,
    "payment_method.attached": _payment_method,
    "payment_method.updated": _payment_method,
    "payment_method.automatically_updated": _payment_method,
    "payment_method.detached": _payment_method,
}


def process(*, event_pk: int) -> str:
    """Process one stored event; returns its status afterwards.  A failure is recorded on the row
    (attempts, the error, when to try again, or `failed` once the policy gives up), never raised."""
    try:
        with transaction.atomic():
            event = StripeEvent.objects.select_for_update().get(pk=event_pk)
            if event.status in (Status.PROCESSED, Status.IGNORED):
                return event.status
            handler = HANDLERS.get(event.type)
            customer = None
            if handler is not None and event.customer_stripe_id:
                customer = sync.locked_customer(stripe_customer_id=event.customer_stripe_id)
            if handler is None or customer is None:
                # Unknown types and other people's customers are kept, and deliberately left alone.
                event.status = Status.IGNORED
            else:
                # What a handler writes in words (a plan's name in a confirmation) is in the
                # customer's language, not whichever the worker last had.
                with translation.override(customer.language):
                    handler(customer, event)
                event.status = Status.PROCESSED
            event.attempts += 1
            event.processed_at = timezone.now()
            event.last_error = ""
            event.next_attempt_at = None
            event.save(update_fields=["status", "attempts", "processed_at", "last_error", "next_attempt_at"])
            return event.status
    except StripeUnavailable as exc:
        return _failed(event_pk=event_pk, error=exc, outage=True)
    except Exception as exc:
        logger.exception("stripe event %s: unexpected error while processing it", event_pk)
        return _failed(event_pk=event_pk, error=exc, outage=False)


def _failed(*, event_pk: int, error: Exception, outage: bool) -> str:
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().get(pk=event_pk)
        if event.status in (Status.PROCESSED, Status.IGNORED):
            return event.status
        failed = policy.failure(
            policy=policy.current().events,
            attempts=event.attempts,
            error=error,
            outage=outage,
            waiting_since=event.received_at,
            now=timezone.now(),
        )
        event.attempts, event.last_error, event.next_attempt_at = (
            failed.attempts,
            failed.error,
            failed.retry_at,
        )
        event.status = Status.RETRYING if failed.retry_at else Status.FAILED
        event.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
    log = logger.warning if event.status == Status.RETRYING else logger.error
    log(
        "stripe event %s %s after %s attempt(s): %s", event_pk, event.status, event.attempts, event.last_error
    )
    return event.status
