"""The rules of plan changes, in one place: what a move is, when it takes effect, which moves are
offered, and why one is refused (a sentence in the customer's language).  Pure functions over
plain facts: no database, no Stripe, so the Plan page, the services and the tests share them.

- An upgrade (a higher tier) takes effect now: prorated, invoiced and charged at once, and the
  plan changes only once that invoice is paid.
- A downgrade (a lower tier) takes effect at the end of the paid period.
- The same tier on another interval: now (a new period starts today, the unused time is credited)
  or at the next renewal.
- A new choice replaces a change already scheduled (the preview says so first).
- A customer with no subscription, or one that has ended, starts one; one whose first payment is
  still open pays or approves that instead of starting another.
"""

from __future__ import annotations

import dataclasses
import enum

from django.utils.translation import gettext

from billing.state import Phase


class Move(enum.StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    INTERVAL = "interval"


class When(enum.StrEnum):
    NOW = "now"
    RENEWAL = "renewal"


@dataclasses.dataclass(frozen=True)
class Plan:
    """One tier on one interval in one currency, as the catalog offers it."""

    tier: str
    tier_name: str
    rank: int
    interval: str
    currency: str
    amount: int
    self_serve: bool = True


@dataclasses.dataclass(frozen=True)
class Situation:
    """What the customer's subscription is doing now, as far as plan changes care."""

    phase: Phase
    currency: str
    # A payment waits for the customer's 3-D Secure approval (a change or an invoice).
    awaiting_approval: bool = False
    # An upgrade is applied at Stripe only once its invoice is paid; until then it is pending.
    upgrade_pending: bool = False


def move_of(*, current: Plan, target: Plan) -> Move | None:
    """What going from `current` to `target` is (None: it is the same plan)."""
    if target.rank > current.rank:
        return Move.UPGRADE
    if target.rank < current.rank:
        return Move.DOWNGRADE
    if target.interval != current.interval:
        return Move.INTERVAL
    return None


def timings(*, move: Move) -> tuple[When, ...]:
    """When a move may take effect, the default first."""
    return {
        Move.UPGRADE: (When.NOW,),
        Move.DOWNGRADE: (When.RENEWAL,),
        Move.INTERVAL: (When.NOW, When.RENEWAL),
    }[move]


def refusal(*, situation: Situation, current: Plan, target: Plan, when: When) -> str | None:
    """Why this change can't be made now, in the customer's words; None if it can."""
    move = move_of(current=current, target=target)
    if move is None:
        return gettext("This is your current plan.")
    if not target.self_serve:
        return gettext("The %(plan)s plan can't be chosen here. Please contact us to change to it.") % {
            "plan": target.tier_name
        }
    if target.currency != situation.currency:
        return gettext("The %(plan)s plan is not offered in your currency.") % {"plan": target.tier_name}
    if situation.phase == Phase.PAUSED:
        return gettext("Your subscription is paused. Resume it before you change your plan.")
    if situation.phase in (Phase.ENDED, Phase.INCOMPLETE):
        return gettext("Your subscription is not active, so there is no plan to change.")
    if situation.phase == Phase.ENDING:
        return gettext("Your subscription is set to end. Keep it before you change your plan.")
    if situation.awaiting_approval:
        return gettext("A payment is waiting for your approval. Approve it before you change your plan.")
    if situation.upgrade_pending:
        return gettext(
            "Your upgrade is waiting for its payment. Once it is paid you can change your plan again."
        )
    if when not in timings(move=move):
        if move == Move.UPGRADE:
            return gettext("An upgrade takes effect at once.")
        return gettext("A downgrade takes effect at the end of the period you have paid for.")
    if situation.phase == Phase.PAST_DUE and (
        move == Move.UPGRADE or charges_more(current=current, target=target)
    ):
        return gettext(
            "Your last payment has not gone through. Pay it first; until then you can only move to a "
            "plan that costs less."
        )
    return None


def start_refusal(*, phase: Phase | None, currency: str, target: Plan) -> str | None:
    """Why the customer can't start a subscription to `target` now (their latest subscription is
    in `phase`, None if they never had one); None if they can."""
    if not target.self_serve:
        return gettext("The %(plan)s plan can't be chosen here. Please contact us to start it.") % {
            "plan": target.tier_name
        }
    if target.currency != currency:
        return gettext("The %(plan)s plan is not offered in your currency.") % {"plan": target.tier_name}
    if phase == Phase.INCOMPLETE:
        return gettext(
            "Your first payment has not gone through yet. Approve it, or pay it with another card."
        )
    if phase is not None and phase != Phase.ENDED:
        return gettext("You already have a subscription. Change its plan instead.")
    return None


def charges_more(*, current: Plan, target: Plan) -> bool:
    """Whether the target's regular payment is larger than today's."""
    return target.amount > current.amount


@dataclasses.dataclass(frozen=True)
class Saving:
    amount: int
    percent: int


def saving(*, monthly_amount: int, amount: int, months: int) -> Saving | None:
    """What paying `amount` every `months` months saves against paying monthly, or None."""
    if months <= 1 or monthly_amount <= 0:
        return None
    full = monthly_amount * months
    saved = full - amount
    if saved <= 0:
        return None
    # Rounded down: "save 17 %" is never more than the customer really saves.
    return Saving(amount=saved, percent=saved * 100 // full)
