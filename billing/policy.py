"""Business rules that decide whether a change may be made, and how long to wait between tries.

Each rule returns the reason a change is refused, in the customer's words, or None.
"""

from __future__ import annotations

import datetime as dt

from django.utils.translation import gettext as _

from billing.models import BillingCustomer, PaymentMethod, Subscription

# Statuses in which the customer still has, or owes, a subscription that needs a card.
LIVE_SUBSCRIPTION_STATUSES = (
    Subscription.Status.ACTIVE,
    Subscription.Status.TRIALING,
    Subscription.Status.PAST_DUE,
    Subscription.Status.UNPAID,
    Subscription.Status.INCOMPLETE,
    Subscription.Status.PAUSED,
)

# A change Stripe could not take yet is tried again after these delays, then every hour.
CHANGE_RETRY_DELAYS_SECONDS = (5, 30, 120, 600, 1800)
CHANGE_RETRY_MAX_DELAY_SECONDS = 3600


def change_retry_delay(*, attempts: int) -> dt.timedelta:
    if attempts <= 0:
        return dt.timedelta(0)
    index = attempts - 1
    if index < len(CHANGE_RETRY_DELAYS_SECONDS):
        return dt.timedelta(seconds=CHANGE_RETRY_DELAYS_SECONDS[index])
    return dt.timedelta(seconds=CHANGE_RETRY_MAX_DELAY_SECONDS)


def card_removal_refusal(
    *, customer: BillingCustomer, card: PaymentMethod, live_subscription: bool
) -> str | None:
    """A customer with a live subscription keeps at least one card; otherwise the next charge has
    nothing to go to.  The default card can go once another card can take its place."""
    if not live_subscription:
        return None
    others = customer.payment_methods.exclude(pk=card.pk).exists()
    if not others:
        return _("This is your only card and your subscription needs one. Add another card first.")
    if card.stripe_id == customer.default_payment_method_id:
        return _("This is your default card. Make another card the default first.")
    return None


def backup_refusal(*, customer: BillingCustomer, card: PaymentMethod, consent: bool) -> str | None:
    if not consent:
        return _("Please confirm that we may charge the backup card when your default card fails.")
    if card.stripe_id == customer.default_payment_method_id:
        return _("The default card can't also be the backup card.")
    return None


def default_refusal(*, customer: BillingCustomer, card: PaymentMethod, today: dt.date) -> str | None:
    if (card.exp_year, card.exp_month) < (today.year, today.month):
        return _("This card has expired.")
    return None
