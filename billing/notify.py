"""The outbox: messages to customers are rows first (unique dedupe key), sent by a task.

A message is written in the customer's language at the time it is sent; the row keeps
only facts (ids, amounts, codes), so a resend reads the same.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from billing.models import BillingChange, BillingCustomer, Notification

logger = logging.getLogger(__name__)

# Which message confirms which kind of change.
CHANGE_TEMPLATES = {
    BillingChange.Kind.CARD_ADD: "card_added",
    BillingChange.Kind.CARD_SET_DEFAULT: "card_default",
    BillingChange.Kind.CARD_SET_BACKUP: "card_backup",
    BillingChange.Kind.CARD_REMOVE: "card_removed",
}


def _enqueue(
    *,
    customer: BillingCustomer,
    template: str,
    dedupe_key: str,
    context: dict[str, Any],
    change: BillingChange | None = None,
) -> Notification | None:
    """Create the row unless the same key exists, and send it once the transaction commits."""
    try:
        with transaction.atomic():
            note = Notification.objects.create(
                customer=customer, template=template, dedupe_key=dedupe_key, context=context, change=change
            )
    except IntegrityError:
        return None

    def send_later() -> None:
        from billing import tasks  # tasks imports this module

        tasks.send_notification.delay(note.pk)

    transaction.on_commit(send_later)
    return note


def change_applied(*, change: BillingChange) -> Notification | None:
    template = CHANGE_TEMPLATES.get(BillingChange.Kind(change.kind))
    if template is None:
        return None
    return _enqueue(
        customer=change.customer,
        template=template,
        dedupe_key=f"change:{change.pk}",
        context={"kind": change.kind, **change.result},
        change=change,
    )


def payment_received(*, customer: BillingCustomer, invoice: dict[str, Any]) -> Notification | None:
    return _enqueue(
        customer=customer,
        template="payment_received",
        dedupe_key=f"invoice-paid:{invoice['id']}",
        context={
            "invoice": invoice["id"],
            "number": invoice.get("number") or "",
            "amount": invoice.get("amount_paid") or 0,
            "currency": invoice.get("currency") or customer.currency,
        },
    )


def send(*, notification_id: int) -> bool:
    """Send one notification if it has not been sent; True when this call sent it."""
    with transaction.atomic():
        note = (
            # Lock the notification only: without `of`, PostgreSQL also locks the joined customer
            # row, which webhook processing holds while it calls Stripe, and skip_locked would
            # then leave the message unsent until the periodic sweep.
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("customer", "customer__user")
            .filter(pk=notification_id, status=Notification.Status.PENDING)
            .first()
        )
        if note is None:
            return False
        customer = note.customer
        to = customer.email or getattr(customer.user, "email", "")
        with translation.override(customer.language):
            context = {
                "customer": customer,
                "c": note.context,
                "portal_url": settings.PORTAL_BASE_URL.rstrip("/") + reverse("portal:dashboard"),
                "cards_url": settings.PORTAL_BASE_URL.rstrip("/") + reverse("portal:cards"),
            }
            subject = render_to_string(f"billing/emails/{note.template}_subject.txt", context).strip()
            body = render_to_string(f"billing/emails/{note.template}.txt", context)
            html = render_to_string(f"billing/emails/{note.template}.html", context)
        message = EmailMultiAlternatives(subject=subject, body=body, to=[to])
        message.attach_alternative(html, "text/html")
        note.attempts += 1
        try:
            message.send()
        except OSError as exc:
            note.last_error = str(exc)[:2000]
            note.save(update_fields=["attempts", "last_error"])
            raise
        note.status = Notification.Status.SENT
        note.sent_at = timezone.now()
        note.save(update_fields=["attempts", "status", "sent_at"])
    logger.info("notification %s (%s) sent", note.pk, note.template)
    return True
