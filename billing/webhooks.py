"""Receiving webhooks: verify → store (unique Stripe id) → enqueue on commit → answer at once."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

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
            )
            transaction.on_commit(lambda: _enqueue(row.pk, row.type))
    except IntegrityError:
        logger.info("webhook %s received again; already stored", event["id"])
        return None
    return row


def _enqueue(event_pk: int, event_type: str) -> None:
    from billing import tasks  # tasks imports the handlers, which import far more than this module needs

    tasks.process_event.apply_async(args=(event_pk,), queue=tasks.queue_for(event_type=event_type))
