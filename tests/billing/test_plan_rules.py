"""The rules of plan changes on their own (billing/plans.py): plain values in, a move, its
timings, a refusal in the customer's words or none, and the saving an interval shows."""

from __future__ import annotations

import pytest
from django.utils import translation

from billing.plans import Move, Plan, Situation, When, move_of, refusal, saving, start_refusal, timings
from billing.state import Phase


def _plan(tier: str, rank: int, interval: str = "month", amount: int = 1900, **extra: object) -> Plan:
    return Plan(
        tier=tier,
        tier_name=tier.title(),
        rank=rank,
        interval=interval,
        currency=str(extra.pop("currency", "eur")),
        amount=amount,
        **extra,  # type: ignore[arg-type]
    )


BASIC = _plan("basic", 1, amount=900)
STANDARD = _plan("standard", 2)
STANDARD_YEAR = _plan("standard", 2, "year", 19000)
PRO = _plan("pro", 3, amount=4900)
ACTIVE = Situation(phase=Phase.ACTIVE, currency="eur")


def test_what_a_move_is_and_when_it_may_take_effect() -> None:
    assert move_of(current=STANDARD, target=PRO) == Move.UPGRADE
    assert move_of(current=STANDARD, target=BASIC) == Move.DOWNGRADE
    assert move_of(current=STANDARD, target=STANDARD_YEAR) == Move.INTERVAL
    assert move_of(current=STANDARD, target=STANDARD) is None
    assert timings(move=Move.UPGRADE) == (When.NOW,)
    assert timings(move=Move.DOWNGRADE) == (When.RENEWAL,)
    assert timings(move=Move.INTERVAL) == (When.NOW, When.RENEWAL)


def test_what_is_allowed_for_an_active_subscription() -> None:
    assert refusal(situation=ACTIVE, current=STANDARD, target=PRO, when=When.NOW) is None
    assert refusal(situation=ACTIVE, current=STANDARD, target=BASIC, when=When.RENEWAL) is None
    assert refusal(situation=ACTIVE, current=STANDARD, target=STANDARD_YEAR, when=When.NOW) is None
    assert refusal(situation=ACTIVE, current=STANDARD, target=STANDARD_YEAR, when=When.RENEWAL) is None


@pytest.mark.parametrize(
    ("situation", "current", "target", "when", "words"),
    [
        (ACTIVE, STANDARD, STANDARD, When.NOW, "This is your current plan."),
        (ACTIVE, STANDARD, _plan("ent", 4, self_serve=False), When.NOW, "can't be chosen here"),
        (ACTIVE, STANDARD, _plan("pro", 3, currency="usd"), When.NOW, "not offered in your currency"),
        (Situation(phase=Phase.PAUSED, currency="eur"), STANDARD, PRO, When.NOW, "is paused"),
        (Situation(phase=Phase.ENDING, currency="eur"), STANDARD, PRO, When.NOW, "set to end"),
        (Situation(phase=Phase.ENDED, currency="eur"), STANDARD, PRO, When.NOW, "not active"),
        (
            Situation(phase=Phase.ACTIVE, currency="eur", awaiting_approval=True),
            STANDARD,
            PRO,
            When.NOW,
            "approval",
        ),
        (
            Situation(phase=Phase.ACTIVE, currency="eur", upgrade_pending=True),
            STANDARD,
            BASIC,
            When.RENEWAL,
            "waiting",
        ),
        (ACTIVE, STANDARD, PRO, When.RENEWAL, "An upgrade takes effect at once."),
        (ACTIVE, STANDARD, BASIC, When.NOW, "end of the period"),
        (Situation(phase=Phase.PAST_DUE, currency="eur"), STANDARD, PRO, When.NOW, "has not gone through"),
        (
            Situation(phase=Phase.PAST_DUE, currency="eur"),
            STANDARD,
            STANDARD_YEAR,
            When.RENEWAL,
            "costs less",
        ),
    ],
)
def test_every_refusal_is_a_sentence(
    situation: Situation, current: Plan, target: Plan, when: When, words: str
) -> None:
    said = refusal(situation=situation, current=current, target=target, when=when)
    assert said is not None and words in said


def test_past_due_may_still_move_to_something_cheaper() -> None:
    past_due = Situation(phase=Phase.PAST_DUE, currency="eur")
    assert refusal(situation=past_due, current=STANDARD, target=BASIC, when=When.RENEWAL) is None
    standard_year = Plan("standard", "Standard", 2, "year", "eur", 19000)
    assert refusal(situation=past_due, current=standard_year, target=STANDARD, when=When.RENEWAL) is None


def test_refusals_speak_the_customers_language() -> None:
    with translation.override("sv"):
        said = refusal(situation=ACTIVE, current=STANDARD, target=STANDARD, when=When.NOW)
    assert said is not None and said != "This is your current plan."


def test_the_saving_of_a_longer_interval() -> None:
    # Standard: €19.00 a month, €190.00 a year: €38.00 less, 16 % (rounded down, never overstated).
    found = saving(monthly_amount=1900, amount=19000, months=12)
    assert found is not None and (found.amount, found.percent) == (3800, 16)
    assert saving(monthly_amount=1900, amount=1900, months=1) is None
    assert saving(monthly_amount=1900, amount=5700, months=3) is None


@pytest.mark.parametrize(
    ("phase", "target", "words"),
    [
        (None, STANDARD, None),  # a new sign-up
        (Phase.ENDED, PRO, None),  # a subscription that ended
        (Phase.ACTIVE, PRO, "You already have a subscription."),
        (Phase.PAST_DUE, PRO, "You already have a subscription."),
        (Phase.PAUSED, PRO, "You already have a subscription."),
        (Phase.INCOMPLETE, PRO, "Your first payment has not gone through yet."),
        (None, _plan("ent", 4, self_serve=False), "can't be chosen here"),
        (None, _plan("pro", 3, currency="usd"), "not offered in your currency"),
    ],
)
def test_who_may_start_a_subscription_and_why_not(
    phase: Phase | None, target: Plan, words: str | None
) -> None:
    said = start_refusal(phase=phase, currency="eur", target=target)
    if words is None:
        assert said is None
    else:
        assert said is not None and words in said
