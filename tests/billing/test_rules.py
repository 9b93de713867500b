"""The rules on their own: policy functions and the state of a subscription, from plain values,
with neither the database nor Stripe (nothing here is marked django_db)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import translation

from billing import policy
from billing.models import Subscription
from billing.policy import Category, Channel
from billing.state import Phase, subscription_state

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
STOCKHOLM = zoneinfo.ZoneInfo("Europe/Stockholm")
MINUTE = dt.timedelta(minutes=1)


# --------------------------------------------------------------------------- the policy value


def test_defaults_and_overrides_from_settings() -> None:
    default = policy.build()
    assert default.changes.backoff.delay(attempts=1) == dt.timedelta(seconds=5)
    assert default.changes.backoff.delay(attempts=99) == dt.timedelta(hours=1)
    tuned = policy.build(
        {"events": {"max_attempts": 3, "backoff": {"delays_seconds": [1, 2]}}, "grace_days": 10}
    )
    assert (tuned.events.max_attempts, tuned.events.backoff.delays_seconds, tuned.grace_days) == (
        3,
        (1, 2),
        10,
    )
    assert tuned.changes == default.changes  # untouched parts keep their defaults
    with pytest.raises(ValueError, match="no setting 'max_atempts'"):
        policy.build({"events": {"max_atempts": 3}})


def test_policy_follows_the_settings(settings: object) -> None:
    settings.BILLING_POLICY = {"changes": {"max_attempts": 2}}  # type: ignore[attr-defined]
    assert policy.current().changes.max_attempts == 2
    settings.BILLING_POLICY = {}  # type: ignore[attr-defined]
    assert policy.current().changes.max_attempts == policy.RetryPolicy().max_attempts


# --------------------------------------------------------------------------- retries


def test_an_error_of_ours_is_tried_a_bounded_number_of_times() -> None:
    rules = policy.RetryPolicy(backoff=policy.Backoff(delays_seconds=(5, 30)), max_attempts=3)
    tries = [
        policy.next_try(policy=rules, attempts=n, outage=False, waiting_since=NOW, now=NOW) for n in (1, 2, 3)
    ]
    assert tries == [NOW + dt.timedelta(seconds=5), NOW + dt.timedelta(seconds=30), None]


def test_an_outage_is_waited_out_until_the_time_limit_however_many_tries() -> None:
    rules = policy.RetryPolicy(max_attempts=2, give_up_after_seconds=3600)
    later = NOW + dt.timedelta(minutes=59)
    assert policy.next_try(policy=rules, attempts=40, outage=True, waiting_since=NOW, now=later) is not None
    assert (
        policy.next_try(policy=rules, attempts=41, outage=True, waiting_since=NOW, now=later + MINUTE) is None
    )


def test_one_waiting_item_probes_stripe_once_a_minute() -> None:
    rules = policy.RetryPolicy(probe_seconds=60)
    assert policy.probe_due(policy=rules, attempted_at=None, now=NOW)
    assert not policy.probe_due(policy=rules, attempted_at=NOW - dt.timedelta(seconds=59), now=NOW)
    assert policy.probe_due(policy=rules, attempted_at=NOW - dt.timedelta(seconds=60), now=NOW)


# --------------------------------------------------------------------------- cards


def test_card_expiry() -> None:
    assert policy.card_expired(exp_year=2026, exp_month=11, today=NOW.date())
    assert not policy.card_expired(exp_year=2026, exp_month=12, today=NOW.date())
    # A card works to the end of its month: December's card pays on 31 December, not on 1 January.
    assert not policy.card_expires_before(exp_year=2026, exp_month=12, moment=NOW.replace(day=31))
    assert policy.card_expires_before(
        exp_year=2026, exp_month=12, moment=dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    )


def test_card_rules_say_why_in_the_customers_language() -> None:
    with translation.override("en"):
        assert (
            policy.default_refusal(exp_year=2020, exp_month=1, today=NOW.date()) == "This card has expired."
        )
        assert policy.default_refusal(exp_year=2030, exp_month=1, today=NOW.date()) is None
        assert "Please confirm" in str(
            policy.backup_refusal(card_id="pm_b", default_card_id="pm_a", consent=False)
        )
        assert "can't also be the backup" in str(
            policy.backup_refusal(card_id="pm_a", default_card_id="pm_a", consent=True)
        )
        assert policy.backup_refusal(card_id="pm_b", default_card_id="pm_a", consent=True) is None
    with translation.override("sv"):
        refusal = policy.card_removal_refusal(
            card_id="pm_a", default_card_id="pm_a", other_cards=0, live_subscription=True
        )
        assert (
            refusal
            == "Det här är ditt enda kort och ditt abonnemang behöver ett. Lägg till ett annat kort först."
        )


def test_which_card_may_be_removed() -> None:
    def refusal(card: str, others: int, live: bool) -> str | None:
        return policy.card_removal_refusal(
            card_id=card, default_card_id="pm_a", other_cards=others, live_subscription=live
        )

    assert refusal("pm_a", 0, live=False) is None  # nothing to charge it for
    assert refusal("pm_a", 0, live=True) is not None  # the only card
    assert refusal("pm_a", 1, live=True) is not None  # the default: another must take its place first
    assert refusal("pm_b", 1, live=True) is None


# --------------------------------------------------------------------------- messages


def test_payment_critical_messages_ignore_opt_outs_and_in_app_is_always_kept() -> None:
    def reason(category: Category, channel: Channel, *, address: bool = True) -> str | None:
        return policy.delivery_suppression(
            category=category, channel=channel, opt_outs=["reminder", "payment_critical"], has_address=address
        )

    assert reason(Category.REMINDER, Channel.EMAIL) == "opted_out"
    assert reason(Category.PAYMENT_CRITICAL, Channel.EMAIL) is None
    assert reason(Category.PAYMENT_CRITICAL, Channel.SMS, address=False) == "no_address"
    assert reason(Category.REMINDER, Channel.IN_APP) is None
    assert not policy.may_opt_out(category=Category.PAYMENT_CRITICAL)
    # A change the customer made is confirmed whatever they chose (F10).
    assert not policy.may_opt_out(category=Category.CONFIRMATION)
    assert policy.may_opt_out(category=Category.REMINDER) and policy.may_opt_out(
        category=Category.INFORMATION
    )


@pytest.mark.parametrize(
    ("local_time", "expected_local"),
    [
        ("2026-12-01 23:30", "2026-12-02 08:00"),  # late evening: tomorrow morning
        ("2026-12-02 03:00", "2026-12-02 08:00"),  # the small hours: this morning
        ("2026-12-02 08:00", "2026-12-02 08:00"),  # the morning: at once
        ("2026-12-02 20:59", "2026-12-02 20:59"),
        ("2026-06-30 22:00", "2026-07-01 08:00"),  # summer time: still the customer's 08:00
    ],
)
def test_quiet_hours_are_the_customers_own(local_time: str, expected_local: str) -> None:
    now = dt.datetime.fromisoformat(local_time).replace(tzinfo=STOCKHOLM).astimezone(dt.UTC)
    send = policy.send_after(
        quiet=policy.QuietHours(), prompted=False, channel=Channel.SMS, now=now, zone=STOCKHOLM
    )
    assert send.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M") == expected_local


def test_what_the_customer_just_did_is_confirmed_at_once_even_at_night() -> None:
    night = dt.datetime(2026, 12, 1, 23, 30, tzinfo=STOCKHOLM)
    quiet = policy.QuietHours()
    assert (
        policy.send_after(quiet=quiet, prompted=True, channel=Channel.EMAIL, now=night, zone=STOCKHOLM)
        == night
    )
    assert (
        policy.send_after(quiet=quiet, prompted=False, channel=Channel.IN_APP, now=night, zone=STOCKHOLM)
        == night
    )


# --------------------------------------------------------------------------- the state of a subscription


def _sub(status: str, **fields: object) -> Subscription:
    values: dict[str, object] = {
        "stripe_id": "sub_1",
        "status": status,
        "currency": "eur",
        "unit_amount": 1900,
        "current_period_end": NOW + dt.timedelta(days=20),
        "created": NOW - dt.timedelta(days=10),
        "stripe_state_at": NOW,
        **fields,
    }
    return Subscription(**values)  # unsaved: no database needed


def test_active_with_its_next_charge() -> None:
    state = subscription_state(subscription=_sub("active"), now=NOW)
    assert state.phase == Phase.ACTIVE and state.live and not state.past_due
    assert state.next_charge is not None
    assert (state.next_charge.amount, state.next_charge.currency) == (1900, "eur")
    with translation.override("sv"):
        assert state.summary == "Aktivt"


def test_canceled_at_period_end_is_on_its_grace_period_and_ends() -> None:
    end = NOW + dt.timedelta(days=20)
    state = subscription_state(
        subscription=_sub("active", cancel_at_period_end=True, current_period_end=end), now=NOW
    )
    assert (state.phase, state.on_grace_period, state.ends_at, state.next_charge) == (
        Phase.ENDING,
        True,
        end,
        None,
    )
    with translation.override("en"):
        assert state.summary.startswith("Ends on ")


def test_paused_collection_says_until_when() -> None:
    resumes = NOW + dt.timedelta(days=60)
    state = subscription_state(
        subscription=_sub("active", pause_behavior="void", pause_resumes_at=resumes), now=NOW
    )
    assert (state.phase, state.paused, state.paused_until, state.next_charge) == (
        Phase.PAUSED,
        True,
        resumes,
        None,
    )
    assert subscription_state(subscription=_sub("paused"), now=NOW).paused_until is None


def test_failed_payment_trial_first_payment_and_the_end() -> None:
    assert subscription_state(subscription=_sub("past_due"), now=NOW).past_due
    assert subscription_state(subscription=_sub("unpaid"), now=NOW).phase == Phase.PAST_DUE
    trial = subscription_state(subscription=_sub("trialing", trial_end=NOW + dt.timedelta(days=3)), now=NOW)
    assert (trial.phase, trial.on_trial, trial.next_charge is not None) == (Phase.TRIAL, True, True)
    assert subscription_state(subscription=_sub("incomplete"), now=NOW).phase == Phase.INCOMPLETE
    ended = subscription_state(subscription=_sub("canceled", ended_at=NOW - MINUTE), now=NOW)
    assert (ended.phase, ended.live, ended.ends_at) == (Phase.ENDED, False, NOW - MINUTE)
    with translation.override("nl"):
        assert subscription_state(subscription=_sub("past_due"), now=NOW).summary == "Betaling mislukt"
