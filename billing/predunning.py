"""Pre-dunning: who is reminded before a charge, and when, as pure functions.

Two reminders, each sent once per charge:

- the card on file expires before the next charge, and the customer has no other card that is
  still valid then: a reminder `card_days` before the charge, with a link that adds a card.  A card
  the card updater refreshed is never reminded about (Stripe has its new expiry already).
- a quarterly or yearly subscription renews: a reminder `renewal_days` before it, with the date
  and the amount, and where to switch interval or cancel.

Only a live subscription is reminded: active or on trial, not paused (Stripe's pause or
`pause_collection`), not set to end.  `billing.services.predunning` selects the same subscriptions
in SQL (month numbers below are how it compares a card's expiry with a charge); these functions
are the definition, and the scan checks every row it selects against them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable

from billing.policy import PredunningPolicy

LIVE_STATUSES = ("active", "trialing")


class Kind(enum.StrEnum):
    CARD_EXPIRING = "card_expiring"
    RENEWAL = "renewal"


class Renewal(enum.StrEnum):
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


# The catalog's interval (billing.models.Interval) of the renewals that get a reminder.
RENEWAL_INTERVALS: dict[str, Renewal] = {"quarter": Renewal.QUARTERLY, "year": Renewal.YEARLY}


@dataclasses.dataclass(frozen=True)
class Card:
    stripe_id: str
    exp_year: int
    exp_month: int
    # When the card updater last refreshed it (payment_method.automatically_updated), if ever.
    refreshed_at: dt.datetime | None = None


def month_number(*, year: int, month: int) -> int:
    """Months since year 0: a card is valid through its expiry month, so it is valid at a moment
    whose month number is at most its own."""
    return year * 12 + month


def card_valid_at(*, card: Card, moment: dt.datetime) -> bool:
    utc = moment.astimezone(dt.UTC)
    return month_number(year=card.exp_year, month=card.exp_month) >= month_number(
        year=utc.year, month=utc.month
    )


def live(*, status: str, paused: bool, cancel_at_period_end: bool) -> bool:
    return status in LIVE_STATUSES and not paused and not cancel_at_period_end


def charge_at(
    *, status: str, current_period_end: dt.datetime | None, trial_end: dt.datetime | None
) -> dt.datetime | None:
    """The next charge: the trial's end while on trial, otherwise the end of the paid period."""
    if status == "trialing" and trial_end is not None:
        return trial_end
    return current_period_end


def in_window(*, charge: dt.datetime, days: int, now: dt.datetime) -> bool:
    """Whether a reminder `days` before `charge` is due at `now` (and the charge still ahead)."""
    return charge - dt.timedelta(days=days) <= now < charge


def renewal_of(*, interval: str) -> Renewal | None:
    return RENEWAL_INTERVALS.get(interval)


def renewal_days(*, policy: PredunningPolicy, renewal: Renewal) -> int:
    return policy.renewal_days.quarterly if renewal == Renewal.QUARTERLY else policy.renewal_days.yearly


def card_reminder_due(
    *,
    policy: PredunningPolicy,
    charge: dt.datetime,
    card: Card | None,
    others: Iterable[Card],
    now: dt.datetime,
) -> bool:
    """The card on file expires before `charge` and no other card of the customer is valid then."""
    if card is None or card.refreshed_at is not None:
        return False
    if not in_window(charge=charge, days=policy.card_days, now=now):
        return False
    if card_valid_at(card=card, moment=charge):
        return False
    return not any(
        other.stripe_id != card.stripe_id and card_valid_at(card=other, moment=charge) for other in others
    )


def card_reminder_stale(
    *,
    card: Card | None,
    reminded_card_id: str,
    written_at: dt.datetime,
    charge: dt.datetime,
    others: Iterable[Card],
) -> str | None:
    """Why a card reminder written at `written_at` should no longer go out (None: send it): the
    card on file is another one now, the updater refreshed it since, or a card valid at the charge
    was added."""
    if card is None or card.stripe_id != reminded_card_id:
        return "card_replaced"
    if card.refreshed_at is not None and card.refreshed_at >= written_at:
        return "card_refreshed"
    if card_valid_at(card=card, moment=charge):
        return "card_refreshed"
    if any(
        other.stripe_id != card.stripe_id and card_valid_at(card=other, moment=charge) for other in others
    ):
        return "card_replaced"
    return None


def renewal_reminder_due(
    *, policy: PredunningPolicy, interval: str, charge: dt.datetime, now: dt.datetime
) -> bool:
    renewal = renewal_of(interval=interval)
    if renewal is None:
        return False
    return in_window(charge=charge, days=renewal_days(policy=policy, renewal=renewal), now=now)


def step(*, kind: Kind, charge: dt.datetime) -> str:
    """The outbox step of a reminder: one per kind and charge date, so each goes once."""
    return f"{kind}:{charge.astimezone(dt.UTC).date().isoformat()}"


def horizon_days(*, policy: PredunningPolicy) -> int:
    """The widest window: charges further ahead than this get nothing tonight."""
    return max(policy.card_days, policy.renewal_days.quarterly, policy.renewal_days.yearly)


def renewal_amount(*, unit_amount: int, quantity: int, scheduled_unit_amount: int | None) -> int:
    """What the renewal charges: the plan scheduled to start then, if any, else the current one."""
    return (scheduled_unit_amount if scheduled_unit_amount is not None else unit_amount) * quantity
