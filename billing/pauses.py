"""The rules of pausing, in one place: who may pause, for how long, when the subscription resumes,
what it costs then, and why a pause or a resume is refused (a sentence in the customer's
language).  Pure functions over plain facts and billing.policy's PausePolicy: no database, no
Stripe, so the pause page, the services, the beat job and the tests share them.

- A pause starts at once and lasts one of the lengths the policy offers (1, 2 or 3 months by
  default); the subscription resumes by itself on the date shown, or earlier if the customer asks.
- The unused part of the paid period is credited at the pause and taken off the first payment
  after it; that payment starts a new period on the day the subscription resumes.
- A customer may pause at most `max_per_year` times in twelve months, counted from the pauses
  they made (applied pause changes).
- Not while a payment is failing or waits for the bank's approval: that is settled first.
- A plan change scheduled for the renewal is dropped by the pause (Stripe can't pause a
  subscription on a schedule, and the renewal it waits for doesn't come while paused).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext, ngettext

from billing.money import format_day
from billing.policy import PausePolicy
from billing.state import Phase

# How far back pauses count against the yearly limit.
YEAR = dt.timedelta(days=365)


@dataclasses.dataclass(frozen=True)
class PauseSituation:
    """What the customer's subscription is doing now, as far as pausing cares."""

    phase: Phase
    # A payment of theirs is failing: the subscription is past due, or an invoice is open.
    payment_failing: bool = False
    # A payment waits for the customer's 3-D Secure approval (a change or an invoice).
    awaiting_approval: bool = False
    # An upgrade is applied at Stripe only once its invoice is paid; until then it is pending.
    upgrade_pending: bool = False
    # When the customer's earlier pauses were made (applied pause changes), any order.
    pauses: tuple[dt.datetime, ...] = ()


def add_months(*, moment: dt.datetime, months: int) -> dt.datetime:
    """The same time of day `months` calendar months on; a day the month lacks becomes its last
    (31 January + 1 month = 28 or 29 February)."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def resumes_at(*, start: dt.datetime, months: int) -> dt.datetime:
    return add_months(moment=start, months=months)


def unused_credit(*, amount: int, start: dt.datetime, end: dt.datetime, at: dt.datetime) -> int:
    """What Stripe credits for the part of a period after `at` (its proration: the unused seconds'
    share of the amount, rounded half up).  Shown before the pause; the pause's own result holds
    the amount Stripe credited."""
    length = (end - start).total_seconds()
    if length <= 0 or at >= end:
        return 0
    unused = Decimal((end - max(at, start)).total_seconds()) / Decimal(length)
    return int((Decimal(amount) * unused).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def pauses_in_year(*, pauses: tuple[dt.datetime, ...], now: dt.datetime) -> list[dt.datetime]:
    return sorted(moment for moment in pauses if now - moment < YEAR)


def pause_refusal(
    *, policy: PausePolicy, situation: PauseSituation, months: int, now: dt.datetime
) -> str | None:
    """Why this customer can't pause for `months` now, in their words; None if they can."""
    if situation.phase == Phase.PAUSED:
        return gettext("Your subscription is already paused.")
    if situation.phase in (Phase.ENDED, Phase.INCOMPLETE):
        return gettext("Your subscription is not active, so there is nothing to pause.")
    if situation.phase == Phase.ENDING:
        return gettext("Your subscription is set to end. Keep it before you pause it.")
    if situation.awaiting_approval:
        return gettext("A payment is waiting for your approval. Approve it before you pause.")
    if situation.payment_failing or situation.phase == Phase.PAST_DUE:
        return gettext(
            "Your last payment has not gone through. Pay it first, with another card if need be; "
            "then you can pause."
        )
    if situation.upgrade_pending:
        return gettext(
            "Your plan change is waiting for its payment. Once it is paid or has lapsed, you can pause."
        )
    if months not in policy.lengths_months:
        return length_refusal(policy=policy)
    recent = pauses_in_year(pauses=situation.pauses, now=now)
    if len(recent) >= policy.max_per_year:
        # The oldest pause within the year is the first to stop counting.
        again = recent[len(recent) - policy.max_per_year] + YEAR
        return ngettext(
            "You can pause once in 12 months, and you have. You can pause again from %(date)s.",
            "You can pause %(count)d times in 12 months, and you have. You can pause again from %(date)s.",
            policy.max_per_year,
        ) % {"count": policy.max_per_year, "date": format_day(value=again)}
    return None


def length_refusal(*, policy: PausePolicy) -> str:
    lengths = ", ".join(str(months) for months in policy.lengths_months)
    return gettext("A pause lasts one of these numbers of months: %(lengths)s.") % {"lengths": lengths}


def resume_refusal(*, situation: PauseSituation) -> str | None:
    """Why the customer can't resume now; None if they can."""
    if situation.phase != Phase.PAUSED:
        return gettext("Your subscription is not paused.")
    if situation.awaiting_approval:
        return gettext("A payment is waiting for your approval. Approve it to resume.")
    if situation.payment_failing:
        return gettext(
            "Your first payment after the pause has not gone through. Pay it with another card and "
            "your subscription resumes."
        )
    return None


def reminder_due(*, policy: PausePolicy, resumes_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether the reminder that a pause ends soon is due: within its days before the resume."""
    return resumes_at - dt.timedelta(days=policy.reminder_days_before) <= now < resumes_at
