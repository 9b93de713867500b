"""Receiving webhooks: verify → store (unique Stripe id) → enqueue on commit → answer at once."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import gateway
from billing.models import StripeEvent

logger = logging.getLogger(__name__)


def _customer_of(obj: dict[str, Any]) -> str:
    if obj.get("object") == "customer":
        return str(obj.get("id") or "")
    ref = obj.get("customer")
    if isinstance(ref, dict):
        return str(ref.get("id") or "")
    return str(ref or "")


def receive(*, payload: bytes, signature: str) -> StripeEvent | None:
    """Store a verified event; raises billing.errors.WebhookRejected.  Returns the new row, or None
    when this event id was already received (a duplicate delivery)."""
    event = gateway.verified_event(
        payload=payload,
        signature=signature,
        secret=settings.STRIPE_WEBHOOK_SECRET,
        tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
    )
    obj = event["data"]["object"]
    # A type the portal has no handler for (Stripe sends every type to an endpoint that asks for
    # "*") is kept as ignored at once: no task for it to wait behind, or to keep others waiting.
    handled = event["type"] in handled_types()
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(
                stripe_id=event["id"],
                type=event["type"],
                api_version=event.get("api_version") or "",
                livemode=bool(event.get("livemode")),
                object_id=str(obj.get("id") or ""),
                # A detached card no longer names its customer; the event's previous attributes do.
                customer_stripe_id=_customer_of(obj)
                or _customer_of(event["data"].get("previous_attributes") or {}),
                payload=event,
                stripe_created=dt.datetime.fromtimestamp(event["created"], tz=dt.UTC),
                status=StripeEvent.Status.PENDING if handled else StripeEvent.Status.IGNORED,
                processed_at=None if handled else timezone.now(),
            )
            if handled:
                transaction.on_commit(lambda: _enqueue(row.pk, row.type))
    except IntegrityError:
        logger.info("webhook %s received again; already stored", event["id"])
        return None
    return row


@functools.cache
def handled_types() -> frozenset[str]:
    from billing import handlers  # imported on first use: the handlers import far more than this

    return frozenset(handlers.HANDLERS)


def _enqueue(event_pk: int, event_type: str) -> None:
    from billing import tasks  # tasks imports the handlers, which import far more than this module needs

    tasks.process_event.apply_async(args=(event_pk,), queue=tasks.queue_for(event_type=event_type))
