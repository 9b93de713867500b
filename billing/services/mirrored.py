"""What the change kinds of several areas (plans, subscriptions, pauses, cancels, invoices, the
backup card, extensions) read and do the same way: the customer's subscription as the mirror has
it, a catalog price still offered, a plan's name in the active language, the mirror brought up to
date after a write, and an invoice paid off-session with one card."""

from __future__ import annotations

import dataclasses
from typing import Literal

from django.utils import timezone

from billing import gateway, sync
from billing.errors import ActionRequired, CardDeclined, InvalidRequest
from billing.models import BillingCustomer, Price, Subscription


def plan_name(price: Price | None) -> str:
    """ "Standard (monthly)": the tier and the interval, as results and messages name a plan."""
    return f"{price.tier.name} ({price.get_interval_display()})" if price is not None else ""


def subscription_of(*, customer: BillingCustomer, stripe_id: str) -> Subscription:
    """The customer's subscription with its plans; one not theirs fails the change, said as such."""
    sub = (
        Subscription.objects.select_related("price__tier", "scheduled_price__tier", "pending_price__tier")
        .filter(customer=customer, stripe_id=stripe_id)
        .first()
    )
    if sub is None:
        raise InvalidRequest("The subscription is not the customer's.", code="subscription_foreign")
    return sub


def offered_price(*, lookup_key: str) -> Price:
    """A price of the catalog that is still offered (and known to Stripe)."""
    price = Price.objects.select_related("tier").filter(lookup_key=lookup_key, active=True).first()
    if price is None or not price.stripe_price_id:
        raise InvalidRequest("That plan is no longer offered.", code="price_gone")
    return price


def refreshed(*, customer: BillingCustomer, subscription_id: str) -> gateway.Subscription:
    """The subscription read again from Stripe and written to the mirror: after a write, pages show
    what Stripe now says without waiting for its webhook."""
    live = gateway.subscription_retrieve(subscription_id=subscription_id)
    sync.subscription_from_stripe(customer=customer, data=live.raw, state_at=timezone.now())
    return live


PaymentOutcome = Literal["paid", "declined", "action_required", "already_paid"]


@dataclasses.dataclass(frozen=True)
class Payment:
    """What paying an invoice off-session with one card came to, and the invoice as Stripe has it
    after."""

    outcome: PaymentOutcome
    decline_code: str
    invoice: gateway.Invoice


def pay_invoice(*, invoice_id: str, payment_method_id: str, idempotency_key: str) -> Payment:
    """Pay an open invoice off-session with a saved card, as Stripe Billing charges one: declined
    (with the bank's code), the bank wanting the customer (3-D Secure), or paid already by another
    payment are outcomes, not errors; anything else Stripe refuses is raised."""
    outcome: PaymentOutcome = "paid"
    decline_code = ""
    try:
        invoice = gateway.invoice_pay(
            invoice_id=invoice_id, payment_method_id=payment_method_id, idempotency_key=idempotency_key
        )
    except CardDeclined as exc:
        outcome, decline_code = "declined", exc.decline_code or exc.code
    except ActionRequired:
        outcome, decline_code = "action_required", "authentication_required"
    except InvalidRequest as exc:
        if exc.code != "invoice_already_paid":
            raise
        outcome = "already_paid"
    if outcome != "paid":
        invoice = gateway.invoice_retrieve(invoice_id=invoice_id)
    elif invoice.status != "paid":
        outcome = "declined"
    return Payment(outcome=outcome, decline_code=decline_code, invoice=invoice)
