"""Payments a change made that the customer's bank wants them to approve (3-D Secure), for any
change kind that declares `awaiting_approval()` and `approved()` (billing/changes.py).

The change page asks for the bank's check (`payment_secret`), the browser runs it with Stripe.js,
and then the page asks us to read the invoice again (`payment_recheck`).  A customer who approves
and closes the tab is not lost: the invoice's `invoice.paid` webhook settles the change too
(`settle_paid_invoice`).  Either way the change's result records the payment once and its
confirmation is sent once (the outbox's key is the change and the step)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone, translation

from billing import changes, gateway, sync
from billing.models import BillingChange, BillingCustomer

# How long after a change was applied its payment may still be approved: Stripe keeps a pending
# update 23 hours, and an open invoice's payment can be approved until it is paid or voided.
APPROVAL_WINDOW = dt.timedelta(days=3)


def _waiting_invoice(change: BillingChange) -> str:
    result = changes.result_of(change)
    if result is None:
        return ""
    return changes.kind_of(change).awaiting_approval(result=result)


def payment_secret(*, change: BillingChange) -> str:
    """What Stripe.js needs for the customer to approve the payment now.  Read from Stripe when
    they click, never stored: Stripe asks that client secrets are not kept."""
    invoice_id = _waiting_invoice(change)
    if not invoice_id:
        return ""
    with gateway.interactive():
        invoice = gateway.invoice_retrieve(invoice_id=invoice_id)
    return invoice.payment_client_secret if invoice.status == "open" else ""


def _settle(*, change_id: Any, customer: BillingCustomer, invoice: gateway.Invoice) -> None:
    """Record a paid invoice on the change that waited for it (the caller holds the customer's
    lock, as every writer of a customer's changes does)."""
    change = BillingChange.objects.select_for_update().filter(pk=change_id).first()
    if change is None or invoice.status != "paid" or _waiting_invoice(change) != invoice.id:
        return
    kind = changes.kind_of(change)
    change.customer = customer
    with translation.override(customer.language):
        result, confirmation = kind.approved(
            change=change, customer=customer, result=changes.result_of(change), invoice=invoice
        )
    change.result = result.model_dump(mode="json")
    change.save(update_fields=["result"])
    if confirmation is not None:
        changes.confirm(change=change, customer=customer, confirmation=confirmation, step="approved")


def payment_recheck(*, change: BillingChange) -> None:
    """After the customer approved (or abandoned) the bank's check in the browser, read the
    invoice again and record how it ended."""
    invoice_id = _waiting_invoice(change)
    if not invoice_id:
        return
    with transaction.atomic():
        customer = BillingCustomer.objects.select_for_update().get(pk=change.customer_id)
        with gateway.interactive():
            invoice = gateway.invoice_retrieve(invoice_id=invoice_id)
            sync.invoice_from_stripe(customer=customer, data=invoice.raw, state_at=timezone.now())
            _settle(change_id=change.pk, customer=customer, invoice=invoice)
    change.refresh_from_db()


def settle_paid_invoice(*, customer: BillingCustomer, invoice: gateway.Invoice) -> None:
    """An invoice was paid (a webhook): the customer's recent changes waiting for it are done."""
    if invoice.status != "paid":
        return
    kinds = [
        name
        for name, kind in changes.KINDS.items()
        if type(kind).awaiting_approval is not changes.ChangeKind.awaiting_approval
    ]
    waiting = BillingChange.objects.filter(
        customer=customer,
        kind__in=kinds,
        status=BillingChange.Status.APPLIED,
        applied_at__gte=timezone.now() - APPROVAL_WINDOW,
    ).values_list("pk", flat=True)
    for change_id in waiting:
        _settle(change_id=change_id, customer=customer, invoice=invoice)
