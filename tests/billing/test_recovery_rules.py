"""The recovery rules on their own: the escalation policy's validation, when a step goes (retries,
caps), and access (full, grace, restricted) on the policy's dates."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from billing import recovery
from billing.policy import Channel, QuietHours, send_after
from billing.recovery import Level, SubscriptionFacts

T0 = dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


def _policy(**changes: Any) -> dict[str, Any]:
    data = recovery.DEFAULT.model_dump(mode="json")
    data.update(changes)
    return data


def test_the_default_policy_is_what_the_seeds_suggest() -> None:
    steps = [(s.day, s.tone, s.channels) for s in recovery.DEFAULT.steps]
    assert steps == [
        (0, "friendly", ("email", "in_app")),
        (3, "reminder", ("email",)),
        (7, "direct", ("email", "sms")),
        (11, "final", ("email", "sms", "in_app")),
    ]
    assert recovery.DEFAULT.grace_days == 14
    assert recovery.spec(data=recovery.DEFAULT.model_dump(mode="json")) == recovery.DEFAULT


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"steps": []}, "at least 1"),
        ({"grace_days": 10}, "before access ends"),
        ({"end_action": "delete"}, "end_action"),
        ({"daily_cap": 0}, "daily_cap"),
        (
            {"steps": [{"name": "a", "day": 2, "tone": "final", "channels": ["email"]}]},
            "day 0",
        ),
        (
            {
                "steps": [
                    {"name": "a", "day": 0, "tone": "friendly", "channels": ["email"]},
                    {"name": "b", "day": 0, "tone": "final", "channels": ["email"]},
                ]
            },
            "increasing days",
        ),
        (
            {
                "steps": [
                    {"name": "a", "day": 0, "tone": "final", "channels": ["email"]},
                    {"name": "b", "day": 3, "tone": "reminder", "channels": ["email"]},
                ]
            },
            "final notice",
        ),
        ({"steps": [{"name": "a", "day": 0, "tone": "final", "channels": ["fax"]}]}, "channels"),
        ({"steps": [{"name": "a", "day": 0, "tone": "final", "channels": []}]}, "channels"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_policy_that_does_not_hold_together_is_refused_with_its_reason(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(recovery.InvalidPolicy, match=reason):
        recovery.spec(data=_policy(**change))


def test_the_first_message_never_waits_but_a_reminder_waits_for_a_retry_due_within_the_hold() -> None:
    retry = T0 + 5 * H
    common = {"hard": False, "hold_hours": 12, "recent_sends": [], "daily_cap": 1}
    assert recovery.send_time(due=T0, first=True, next_retry_at=retry, **common) == T0
    assert recovery.send_time(due=T0, first=False, next_retry_at=retry, **common) == retry + H
    # Further away than the hold, or a hard decline (no retry will come): at once.
    assert recovery.send_time(due=T0, first=False, next_retry_at=T0 + 13 * H, **common) == T0
    assert recovery.send_time(due=T0, first=False, next_retry_at=retry, **{**common, "hard": True}) == T0


def test_at_most_the_daily_cap_of_recovery_messages_in_24_hours() -> None:
    sent = [T0 - 2 * H]
    at = recovery.send_time(
        due=T0, first=True, hard=False, next_retry_at=None, hold_hours=12, recent_sends=sent, daily_cap=1
    )
    assert at == T0 + 22 * H
    two = recovery.send_time(
        due=T0, first=True, hard=False, next_retry_at=None, hold_hours=12, recent_sends=sent, daily_cap=2
    )
    assert two == T0


def test_a_message_due_at_23_in_stockholm_goes_at_8_the_next_morning() -> None:
    from zoneinfo import ZoneInfo

    stockholm = ZoneInfo("Europe/Stockholm")
    due = dt.datetime(2027, 1, 12, 23, 0, tzinfo=stockholm)
    at = send_after(quiet=QuietHours(), prompted=False, channel=Channel.EMAIL, now=due, zone=stockholm)
    assert at.astimezone(stockholm) == dt.datetime(2027, 1, 13, 8, 0, tzinfo=stockholm)
    # In-app is the customer's record, and what they prompted goes at once.
    assert (
        send_after(quiet=QuietHours(), prompted=False, channel=Channel.IN_APP, now=due, zone=stockholm) == due
    )
    assert send_after(quiet=QuietHours(), prompted=True, channel=Channel.SMS, now=due, zone=stockholm) == due


def _facts(**changes: Any) -> SubscriptionFacts:
    values: dict[str, Any] = {"stripe_id": "sub_1", "phase": "active", "paused_service": False}
    values.update(changes)
    return SubscriptionFacts(**values)


def test_access_is_full_then_grace_until_the_policys_date_then_restricted() -> None:
    grace_end = T0 + 14 * D
    assert recovery.subscription_access(facts=_facts(), now=T0).level == Level.FULL
    owing = _facts(phase="past_due", case_id=7, grace_ends_at=grace_end)
    during = recovery.subscription_access(facts=owing, now=T0 + 13 * D)
    assert (during.level, during.until, during.case_id) == (Level.GRACE, grace_end, 7)
    after = recovery.subscription_access(facts=owing, now=grace_end)
    assert (after.level, after.until) == (Level.RESTRICTED, grace_end)
    assert recovery.subscription_access(facts=_facts(phase="ended"), now=T0).level == Level.NONE
    assert recovery.customer_access(subscriptions=[], now=T0).level == Level.NONE


def test_a_failure_on_one_subscription_takes_nothing_from_another_that_is_paid_for() -> None:
    owing = _facts(stripe_id="sub_owing", phase="past_due", case_id=7, grace_ends_at=T0)
    prepaid = _facts(stripe_id="sub_yearly")
    access = recovery.customer_access(subscriptions=[owing, prepaid], now=T0 + D)
    assert (access.level, access.subscription) == (Level.FULL, "sub_yearly")
    alone = recovery.customer_access(subscriptions=[owing], now=T0 + D)
    assert alone.level == Level.RESTRICTED
