"""Processing stored Stripe events.

Events are notices, not data: each handler re-reads the object from Stripe while holding
the customer's row lock and writes what it reads into the mirror.  Duplicates, retries and
events arriving in any order therefore all end in the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing import gateway, notify, sync
from billing.errors import InvalidRequest
from billing.models import BillingCustomer, StripeEvent

logger = logging.getLogger(__name__)

Handler = Callable[[BillingCustomer, StripeEvent], None]


def _subscription(customer: BillingCustomer, event: StripeEvent) -> None:
    data = gateway.subscription_retrieve(subscription_id=event.object_id)
    sync.subscription_from_stripe(customer=customer, data=data, state_at=timezone.now())


def _invoice(customer: BillingCustomer, event: StripeEvent) -> None:
    data = gateway.invoice_retrieve(invoice_id=event.object_id)
    sync.invoice_from_stripe(customer=customer, data=data, state_at=timezone.now())
    # A receipt for every paid invoice with money in it, once, whichever event told us.
    if data.get("status") == "paid" and (data.get("amount_paid") or 0) > 0:
        notify.payment_received(customer=customer, invoice=data)


def _payment_method(customer: BillingCustomer, event: StripeEvent) -> None:
    try:
        data = gateway.payment_method_retrieve(payment_method_id=event.object_id)
    except InvalidRequest:
        # Gone from Stripe altogether: it can't be the customer's card any more.
        customer.payment_methods.filter(stripe_id=event.object_id).delete()
        return
    sync.payment_method_from_stripe(customer=customer, data=data, state_at=timezone.now())


def _customer(customer: BillingCustomer, event: StripeEvent) -> None:
    data = gateway.customer_retrieve(customer_id=event.object_id)
    sync.customer_from_stripe(customer=customer, data=data, state_at=timezone.now())


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
    """Process one stored event; returns its final status.  Raises on failure (the caller retries);
    the failure is recorded on the row first so that staff can see it."""
    try:
        with transaction.atomic():
            event = StripeEvent.objects.select_for_update().get(pk=event_pk)
            if event.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
                return event.status
            event.attempts += 1
            handler = HANDLERS.get(event.type)
            customer = None
            if handler is not None and event.customer_stripe_id:
                customer = sync.locked_customer(stripe_customer_id=event.customer_stripe_id)
            if handler is None or customer is None:
                # Unknown types and other people's customers are kept, and deliberately left alone.
                event.status = StripeEvent.Status.IGNORED
            else:
                handler(customer, event)
                event.status = StripeEvent.Status.PROCESSED
            event.processed_at = timezone.now()
            event.last_error = ""
            event.save(update_fields=["status", "attempts", "processed_at", "last_error"])
            return event.status
    except Exception as exc:
        _record_failure(event_pk=event_pk, error=exc)
        raise


def _record_failure(*, event_pk: int, error: Exception) -> None:
    StripeEvent.objects.filter(pk=event_pk).exclude(status=StripeEvent.Status.PROCESSED).update(
        status=StripeEvent.Status.FAILED,
        attempts=F("attempts") + 1,
        last_error=f"{type(error).__name__}: {error}"[:2000],
    )
    logger.warning("stripe event %s failed: %s", event_pk, type(error).__name__)
