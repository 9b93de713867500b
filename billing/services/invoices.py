"""Invoices: the receipt for a payment, once, whichever Stripe event told us of it."""

from __future__ import annotations

from billing import gateway, messages, outbox
from billing.messages import Facts
from billing.models import BillingCustomer
from billing.policy import Category, Channel


class PaymentFacts(Facts):
    invoice: str
    number: str
    amount: int
    currency: str


PAYMENT_RECEIVED = messages.declare(
    "payment_received",
    category=Category.CONFIRMATION,
    channels=(Channel.EMAIL, Channel.IN_APP),
    facts=PaymentFacts,
)


def invoice_paid(*, customer: BillingCustomer, invoice: gateway.Invoice) -> None:
    """A receipt for every paid invoice with money in it; its dedupe key makes it once-only."""
    if invoice.status != "paid" or invoice.amount_paid <= 0:
        return
    outbox.enqueue(
        customer=customer,
        message=PAYMENT_RECEIVED,
        about=f"invoice:{invoice.id}",
        step="paid",
        facts=PaymentFacts(
            invoice=invoice.id,
            number=invoice.number,
            amount=invoice.amount_paid,
            currency=invoice.currency or customer.currency,
        ),
    )
