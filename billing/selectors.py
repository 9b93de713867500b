"""Reads for pages: from the local mirror only, never from Stripe, in a fixed number of queries.

Every lookup is scoped to the customer it is for: another customer's card, invoice or
change is simply not found (the views answer 404).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from billing import policy
from billing.models import BillingChange, BillingCustomer, Invoice, Notification, PaymentMethod, Subscription

# How many of the latest confirmations the dashboard lists.
RECENT_NOTIFICATIONS = 5


@dataclass(frozen=True)
class Banner:
    """Something that needs the customer's action, and the one button that fixes it."""

    kind: str
    invoice: Invoice | None = None
    card: PaymentMethod | None = None


@dataclass
class Dashboard:
    customer: BillingCustomer
    subscription: Subscription | None
    cards: list[PaymentMethod]
    default_card: PaymentMethod | None
    backup_card: PaymentMethod | None
    open_invoices: list[Invoice]
    pending_changes: list[BillingChange]
    notifications: list[Notification]
    banners: list[Banner] = field(default_factory=list)


def customer_cards(*, customer: BillingCustomer) -> QuerySet[PaymentMethod]:
    return PaymentMethod.objects.filter(customer=customer)


def card_for(*, customer: BillingCustomer, card_id: int) -> PaymentMethod:
    return get_object_or_404(PaymentMethod, customer=customer, pk=card_id)


def change_for(*, customer: BillingCustomer, change_id: Any) -> BillingChange:
    return get_object_or_404(BillingChange, customer=customer, pk=change_id)


def invoice_for(*, customer: BillingCustomer, invoice_id: int) -> Invoice:
    return get_object_or_404(Invoice, customer=customer, pk=invoice_id)


def open_invoices(*, customer: BillingCustomer) -> list[Invoice]:
    """Invoices waiting for money, oldest first (the order they are retried in)."""
    return list(Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN).order_by("created"))


def current_subscription(*, customer: BillingCustomer) -> Subscription | None:
    """The subscription the dashboard is about: a live one first, else the most recent."""
    subs = list(
        Subscription.objects.filter(customer=customer).select_related("price__tier").order_by("-created")[:10]
    )
    for sub in subs:
        if sub.status in policy.LIVE_SUBSCRIPTION_STATUSES:
            return sub
    return subs[0] if subs else None


def card_expires_before(*, card: PaymentMethod, moment: dt.datetime) -> bool:
    """A card works until the end of its expiry month."""
    if card.exp_month == 12:
        first_after = dt.datetime(card.exp_year + 1, 1, 1, tzinfo=dt.UTC)
    else:
        first_after = dt.datetime(card.exp_year, card.exp_month + 1, 1, tzinfo=dt.UTC)
    return first_after <= moment


def dashboard(*, customer: BillingCustomer) -> Dashboard:
    subscription = current_subscription(customer=customer)
    cards = list(customer_cards(customer=customer))
    by_id = {card.stripe_id: card for card in cards}
    default_id = customer.default_payment_method_id
    if subscription is not None and subscription.default_payment_method_id:
        default_id = subscription.default_payment_method_id
    view = Dashboard(
        customer=customer,
        subscription=subscription,
        cards=cards,
        default_card=by_id.get(default_id),
        backup_card=by_id.get(customer.backup_payment_method_id),
        open_invoices=open_invoices(customer=customer),
        pending_changes=list(
            BillingChange.objects.filter(
                customer=customer,
                status__in=[BillingChange.Status.PENDING, BillingChange.Status.ACTION_REQUIRED],
            ).order_by("-created_at")[:10]
        ),
        notifications=list(
            Notification.objects.filter(customer=customer).order_by("-created_at")[:RECENT_NOTIFICATIONS]
        ),
    )
    view.banners = _banners(view)
    return view


def _banners(view: Dashboard) -> list[Banner]:
    banners: list[Banner] = []
    for invoice in view.open_invoices:
        banners.append(Banner(kind="invoice_open", invoice=invoice))
    sub = view.subscription
    live = sub is not None and sub.status in policy.LIVE_SUBSCRIPTION_STATUSES
    if live and view.default_card is None:
        banners.append(Banner(kind="no_card"))
    next_charge = sub.current_period_end if sub is not None else None
    if (
        live
        and view.default_card is not None
        and next_charge is not None
        and card_expires_before(card=view.default_card, moment=next_charge)
        and (view.backup_card is None or card_expires_before(card=view.backup_card, moment=next_charge))
    ):
        banners.append(Banner(kind="card_expiring", card=view.default_card))
    return banners
