"""The rules of cancelling, in one place: who may cancel or keep a subscription set to end, the
reasons a customer can give, the one honest alternative each reason gets, and what happens to an
unpaid invoice.  Pure functions over plain facts, like billing/plans.py.

- A subscription is cancelled at the end of the period paid for; until then it can be kept.
- Too expensive: the cheapest other plan that costs less, with its real price (a lower tier on
  the same interval first, else a longer interval of the same tier that saves), at the renewal.
- Not using it right now, or only for a while: a pause.
- A missing feature, another provider, anything else: no offer, just the confirmation.
- A customer whose payment is failing is told what happens to the unpaid invoice; either way it
  is not tried again, so nobody is charged after they believed they had cancelled.
"""

from __future__ import annotations

import enum

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from billing.plans import Plan
from billing.state import Phase


class Reason(enum.StrEnum):
    TOO_EXPENSIVE = "too_expensive"
    NOT_USING = "not_using"
    TEMPORARY = "temporary"
    MISSING_FEATURE = "missing_feature"
    SWITCHING = "switching"
    OTHER = "other"


# The survey's choices, in the order shown.
REASON_LABELS = (
    (Reason.TOO_EXPENSIVE, _("It costs too much")),
    (Reason.NOT_USING, _("I'm not using it right now")),
    (Reason.TEMPORARY, _("I only need a break for a while")),
    (Reason.MISSING_FEATURE, _("It is missing something I need")),
    (Reason.SWITCHING, _("I'm moving to another service")),
    (Reason.OTHER, _("Something else")),
)

# Stripe's own words for the reason (cancellation_details.feedback), so its reports agree.
STRIPE_FEEDBACK = {
    Reason.TOO_EXPENSIVE: "too_expensive",
    Reason.NOT_USING: "unused",
    Reason.TEMPORARY: "unused",
    Reason.MISSING_FEATURE: "missing_features",
    Reason.SWITCHING: "switched_service",
    Reason.OTHER: "other",
}


class Offer(enum.StrEnum):
    CHEAPER_PLAN = "cheaper_plan"
    PAUSE = "pause"
    NONE = "none"


class Unpaid(enum.StrEnum):
    """What cancelling does to an invoice that is still unpaid (billing/policy.py decides)."""

    VOID = "void"  # cancelled: not owed any more
    KEEP_OWED = "keep_owed"  # still owed, payable from the invoice list, but never retried


def offer_for(*, reason: Reason) -> Offer:
    if reason == Reason.TOO_EXPENSIVE:
        return Offer.CHEAPER_PLAN
    if reason in (Reason.NOT_USING, Reason.TEMPORARY):
        return Offer.PAUSE
    return Offer.NONE


_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def monthly_cost(plan: Plan) -> float:
    return plan.amount / _MONTHS.get(plan.interval, 1)


def cheaper_plan(*, current: Plan, offered: list[Plan]) -> Plan | None:
    """The plan to offer a customer who finds `current` too expensive: a lower tier on the same
    interval (the highest such, so they lose least), else the same tier on a longer interval
    that costs less a month; None if nothing self-serve in their currency costs less."""
    usable = [p for p in offered if p.self_serve and p.currency == current.currency and p != current]
    lower = [p for p in usable if p.interval == current.interval and p.rank < current.rank]
    if lower:
        return max(lower, key=lambda p: p.rank)
    longer = [
        p
        for p in usable
        if p.tier == current.tier
        and _MONTHS.get(p.interval, 1) > _MONTHS.get(current.interval, 1)
        and monthly_cost(p) < monthly_cost(current)
    ]
    return min(longer, key=monthly_cost, default=None)


def cancel_refusal(*, phase: Phase) -> str | None:
    """Why the customer can't cancel now, in their words; None if they can."""
    if phase == Phase.ENDING:
        return gettext("Your subscription is already set to end.")
    if phase in (Phase.ENDED, Phase.INCOMPLETE):
        return gettext("You have no active subscription to cancel.")
    return None


def keep_refusal(*, phase: Phase) -> str | None:
    """Why a subscription can't be kept (its cancel undone); None if it can."""
    if phase != Phase.ENDING:
        return gettext("Your subscription is not set to end, so there is nothing to undo.")
    return None
