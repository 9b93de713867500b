"""The state of a subscription, in facts and in words, decided in one place.

Named as Laravel Cashier and Rails Pay name it (`on_trial`, `past_due`, `paused`,
`on_grace_period`, `ends_at`), computed from the mirror by a pure function, and used by the
dashboard, the messages and the admin alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from billing.models import Subscription
from billing.money import format_day

Status = Subscription.Status

# Statuses in which the customer still has, or owes, a subscription that needs a card.
LIVE_STATUSES = frozenset(
    {Status.ACTIVE, Status.TRIALING, Status.PAST_DUE, Status.UNPAID, Status.INCOMPLETE, Status.PAUSED}
)


class Phase(enum.StrEnum):
    """The one word for where a subscription stands; also its CSS class on the dashboard."""

    ACTIVE = "active"
    TRIAL = "trial"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    ENDING = "ending"
    INCOMPLETE = "incomplete"
    ENDED = "ended"


@dataclasses.dataclass(frozen=True)
class NextCharge:
    amount: int
    currency: str
    at: dt.datetime
    # Moved to a later date at the customer's request (a payment extension before the renewal).
    moved: bool = False


@dataclasses.dataclass(frozen=True)
class SubscriptionState:
    phase: Phase
    live: bool
    on_trial: bool
    past_due: bool
    paused: bool
    # Collection is paused (access goes on) or the subscription itself is paused, until then.
    paused_until: dt.datetime | None
    # Canceled at the end of the period: access until then, no more charges.
    on_grace_period: bool
    ends_at: dt.datetime | None
    trial_ends_at: dt.datetime | None
    next_charge: NextCharge | None

    @property
    def summary(self) -> str:
        """The state in the customer's words, in the active language ("Paused until 3 March 2027")."""
        words: dict[Phase, Promise] = {
            Phase.ACTIVE: _("Active"),
            Phase.PAST_DUE: _("Payment failed"),
            Phase.INCOMPLETE: _("Waiting for the first payment"),
            Phase.ENDED: _("Ended"),
        }
        if self.phase == Phase.PAUSED:
            if self.paused_until is None:
                return str(_("Paused"))
            return str(_("Paused until %(date)s") % {"date": format_day(value=self.paused_until)})
        if self.phase == Phase.ENDING:
            return str(_("Ends on %(date)s") % {"date": format_day(value=self.ends_at)})
        if self.phase == Phase.TRIAL:
            return str(_("Trial until %(date)s") % {"date": format_day(value=self.trial_ends_at)})
        return str(words[self.phase])


def _renewal_unit_amount(sub: Subscription) -> int:
    """The price the renewal charges: a change scheduled for it (a downgrade, another interval)
    sets it, not today's price."""
    at, end = sub.scheduled_at, sub.current_period_end
    if sub.scheduled_price_id is None or at is None or end is None or at > end:
        return sub.unit_amount
    assert sub.scheduled_price is not None
    return sub.scheduled_price.unit_amount


def subscription_state(*, subscription: Subscription, now: dt.datetime) -> SubscriptionState:
    sub = subscription
    status = Status(sub.status)
    # `keep_as_draft` is how an extension moves a renewal's charge (billing.services.extensions):
    # the subscription goes on, only that payment comes later.
    moved_to = sub.pause_resumes_at if sub.pause_behavior == "keep_as_draft" else None
    collection_paused = (
        bool(sub.pause_behavior) and moved_to is None and status in (Status.ACTIVE, Status.TRIALING)
    )
    paused = status == Status.PAUSED or collection_paused
    past_due = status in (Status.PAST_DUE, Status.UNPAID)
    on_trial = status == Status.TRIALING and sub.trial_end is not None and sub.trial_end > now
    ending = sub.cancel_at_period_end or sub.cancel_at is not None
    ends_at = sub.cancel_at or (sub.current_period_end if sub.cancel_at_period_end else None)
    on_grace_period = (
        status in (Status.ACTIVE, Status.TRIALING) and ending and ends_at is not None and ends_at > now
    )
    if status in (Status.CANCELED, Status.INCOMPLETE_EXPIRED):
        phase = Phase.ENDED
    elif paused:
        phase = Phase.PAUSED
    elif past_due:
        phase = Phase.PAST_DUE
    elif status == Status.INCOMPLETE:
        phase = Phase.INCOMPLETE
    elif on_grace_period:
        phase = Phase.ENDING
    elif on_trial:
        phase = Phase.TRIAL
    else:
        phase = Phase.ACTIVE
    next_charge = None
    if phase in (Phase.ACTIVE, Phase.TRIAL) and sub.current_period_end is not None:
        next_charge = NextCharge(
            amount=_renewal_unit_amount(sub) * sub.quantity,
            currency=sub.currency,
            at=moved_to or sub.current_period_end,
            moved=moved_to is not None,
        )
    return SubscriptionState(
        phase=phase,
        live=status in LIVE_STATUSES,
        on_trial=on_trial,
        past_due=past_due,
        paused=paused,
        paused_until=sub.pause_resumes_at if paused else None,
        on_grace_period=on_grace_period,
        ends_at=sub.ended_at if phase == Phase.ENDED else (ends_at if phase == Phase.ENDING else None),
        trial_ends_at=sub.trial_end if on_trial else None,
        next_charge=next_charge,
    )
