"""The rules of pausing on their own (billing/pauses.py): plain values in, a refusal in the
customer's words or none, the resume date, the credit shown and when the reminder is due."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone, translation

from billing.pauses import (
    PauseSituation,
    add_months,
    pause_refusal,
    reminder_due,
    resume_refusal,
    resumes_at,
    unused_credit,
)
from billing.policy import PausePolicy
from billing.state import Phase

NOW = dt.datetime(2027, 1, 3, 12, 0, tzinfo=dt.UTC)
POLICY = PausePolicy()
ACTIVE = PauseSituation(phase=Phase.ACTIVE)


@pytest.fixture(autouse=True)
def _english_in_utc() -> object:
    with translation.override("en"), timezone.override(dt.UTC):
        yield


def _refusal(situation: PauseSituation = ACTIVE, months: int = 2, policy: PausePolicy = POLICY) -> str | None:
    return pause_refusal(policy=policy, situation=situation, months=months, now=NOW)


def test_an_active_or_trial_subscription_may_pause_for_each_length_the_policy_offers() -> None:
    for months in (1, 2, 3):
        assert _refusal(months=months) is None
        assert _refusal(PauseSituation(phase=Phase.TRIAL), months=months) is None


@pytest.mark.parametrize(
    ("situation", "months", "says"),
    [
        (ACTIVE, 4, "A pause lasts one of these numbers of months: 1, 2, 3."),
        (ACTIVE, 0, "A pause lasts one of these numbers of months: 1, 2, 3."),
        (PauseSituation(phase=Phase.PAUSED), 2, "Your subscription is already paused."),
        (
            PauseSituation(phase=Phase.ENDED),
            2,
            "Your subscription is not active, so there is nothing to pause.",
        ),
        (
            PauseSituation(phase=Phase.INCOMPLETE),
            2,
            "Your subscription is not active, so there is nothing to pause.",
        ),
        (
            PauseSituation(phase=Phase.ENDING),
            2,
            "Your subscription is set to end. Keep it before you pause it.",
        ),
        (
            PauseSituation(phase=Phase.ACTIVE, awaiting_approval=True),
            2,
            "A payment is waiting for your approval. Approve it before you pause.",
        ),
        (
            PauseSituation(phase=Phase.PAST_DUE),
            2,
            "Your last payment has not gone through. Pay it first, with another card if need be; then you "
            "can pause.",
        ),
        (
            # An open invoice on a subscription Stripe still calls active: settled first all the same.
            PauseSituation(phase=Phase.ACTIVE, payment_failing=True),
            2,
            "Your last payment has not gone through. Pay it first, with another card if need be; then you "
            "can pause.",
        ),
        (
            PauseSituation(phase=Phase.ACTIVE, upgrade_pending=True),
            2,
            "Your plan change is waiting for its payment. Once it is paid or has lapsed, you can pause.",
        ),
    ],
)
def test_each_refusal_says_why(situation: PauseSituation, months: int, says: str) -> None:
    assert _refusal(situation, months) == says


def test_at_most_twice_in_twelve_months_and_the_day_it_may_pause_again() -> None:
    once = PauseSituation(phase=Phase.ACTIVE, pauses=(NOW - dt.timedelta(days=200),))
    assert _refusal(once) is None
    twice = PauseSituation(
        phase=Phase.ACTIVE, pauses=(NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=300))
    )
    assert _refusal(twice) == (
        "You can pause 2 times in 12 months, and you have. You can pause again from 9 March 2027."
    )
    # A pause more than a year ago no longer counts.
    long_ago = PauseSituation(
        phase=Phase.ACTIVE, pauses=(NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=366))
    )
    assert _refusal(long_ago) is None
    assert _refusal(once, policy=PausePolicy(max_per_year=1)) == (
        "You can pause once in 12 months, and you have. You can pause again from 17 June 2027."
    )


def test_the_policy_decides_the_lengths() -> None:
    six = PausePolicy(lengths_months=(1, 6))
    assert _refusal(months=6, policy=six) is None
    assert _refusal(months=2, policy=six) == "A pause lasts one of these numbers of months: 1, 6."


@pytest.mark.parametrize(
    ("situation", "says"),
    [
        (ACTIVE, "Your subscription is not paused."),
        (
            PauseSituation(phase=Phase.PAUSED, awaiting_approval=True),
            "A payment is waiting for your approval. Approve it to resume.",
        ),
        (
            PauseSituation(phase=Phase.PAUSED, payment_failing=True),
            "Your first payment after the pause has not gone through. Pay it with another card and your "
            "subscription resumes.",
        ),
    ],
)
def test_each_resume_refusal_says_why(situation: PauseSituation, says: str) -> None:
    assert resume_refusal(situation=situation) == says


def test_a_paused_subscription_may_resume_at_any_time() -> None:
    assert resume_refusal(situation=PauseSituation(phase=Phase.PAUSED)) is None


def test_the_resume_date_is_calendar_months_on() -> None:
    assert resumes_at(start=NOW, months=2) == dt.datetime(2027, 3, 3, 12, 0, tzinfo=dt.UTC)
    end_of_january = dt.datetime(2027, 1, 31, 9, 30, tzinfo=dt.UTC)
    assert add_months(moment=end_of_january, months=1) == dt.datetime(2027, 2, 28, 9, 30, tzinfo=dt.UTC)
    assert add_months(moment=dt.datetime(2027, 11, 30, tzinfo=dt.UTC), months=3) == dt.datetime(
        2028, 2, 29, tzinfo=dt.UTC
    )


def test_the_credit_is_the_unused_share_of_the_period_rounded_half_up() -> None:
    start, end = dt.datetime(2027, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    assert (
        unused_credit(amount=3100, start=start, end=end, at=dt.datetime(2027, 1, 11, tzinfo=dt.UTC)) == 2100
    )
    assert (
        unused_credit(amount=1900, start=start, end=end, at=dt.datetime(2027, 1, 11, tzinfo=dt.UTC)) == 1287
    )
    assert unused_credit(amount=1900, start=start, end=end, at=end) == 0
    assert unused_credit(amount=1900, start=start, end=end, at=start - dt.timedelta(days=1)) == 1900


def test_the_reminder_is_due_within_its_days_before_the_resume() -> None:
    back = NOW + dt.timedelta(days=10)
    assert not reminder_due(policy=POLICY, resumes_at=back, now=back - dt.timedelta(days=3, seconds=1))
    assert reminder_due(policy=POLICY, resumes_at=back, now=back - dt.timedelta(days=3))
    assert reminder_due(policy=POLICY, resumes_at=back, now=back - dt.timedelta(seconds=1))
    assert not reminder_due(policy=POLICY, resumes_at=back, now=back)
