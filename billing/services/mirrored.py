"""What the change kinds of several areas (plans, subscriptions, pauses, cancels) read and refresh
the same way: the customer's subscription as the mirror has it, a catalog price still offered, a
plan's name in the active language, and the mirror brought up to date after a write."""

from __future__ import annotations

from django.utils import timezone

from billing import gateway, sync
from billing.errors import InvalidRequest
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
