"""Who gets a reminder before a charge, and when: the rules alone (no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from billing import policy, predunning
from billing.predunning import Card, Kind

NOW = dt.datetime(2027, 3, 20, 2, 7, tzinfo=dt.UTC)
RULES = policy.PredunningPolicy()


def _card(year: int, month: int, *, pm: str = "pm_on_file", refreshed: dt.datetime | None = None) -> Card:
    return Card(stripe_id=pm, exp_year=year, exp_month=month, refreshed_at=refreshed)


def test_a_card_is_valid_through_the_end_of_its_expiry_month() -> None:
    card = _card(2027, 3)
    assert predunning.card_valid_at(card=card, moment=dt.datetime(2027, 3, 31, 23, 59, tzinfo=dt.UTC))
    assert not predunning.card_valid_at(card=card, moment=dt.datetime(2027, 4, 1, tzinfo=dt.UTC))
    # The same month numbers the SQL compares.
    assert predunning.month_number(year=2027, month=3) + 1 == predunning.month_number(year=2027, month=4)


def test_the_card_reminder_goes_in_the_days_before_a_charge_the_card_will_not_live_to_see() -> None:
    charge = dt.datetime(2027, 4, 2, 9, tzinfo=dt.UTC)  # 13 days ahead
    expiring = _card(2027, 3)
    assert predunning.card_reminder_due(
        policy=RULES, charge=charge, card=expiring, others=[expiring], now=NOW
    )
    # Valid at the charge: nothing to say.
    assert not predunning.card_reminder_due(
        policy=RULES, charge=charge, card=_card(2027, 4), others=[], now=NOW
    )
    # Too early (more than 14 days ahead) or the charge has passed.
    later = dt.datetime(2027, 4, 30, tzinfo=dt.UTC)
    assert not predunning.card_reminder_due(policy=RULES, charge=later, card=expiring, others=[], now=NOW)
    assert not predunning.card_reminder_due(policy=RULES, charge=NOW, card=expiring, others=[], now=NOW)
    # Exactly 14 days before is the first moment.
    assert predunning.card_reminder_due(
        policy=RULES, charge=NOW + dt.timedelta(days=14), card=expiring, others=[], now=NOW
    )


def test_no_card_reminder_with_a_newer_card_a_refreshed_card_or_no_card() -> None:
    charge = dt.datetime(2027, 4, 2, 9, tzinfo=dt.UTC)
    expiring = _card(2027, 3)
    newer = _card(2030, 1, pm="pm_newer")
    old_backup = _card(2026, 12, pm="pm_old")
    assert not predunning.card_reminder_due(
        policy=RULES, charge=charge, card=expiring, others=[newer], now=NOW
    )
    assert predunning.card_reminder_due(
        policy=RULES, charge=charge, card=expiring, others=[old_backup], now=NOW
    )
    refreshed = _card(2027, 3, refreshed=NOW - dt.timedelta(days=300))
    assert not predunning.card_reminder_due(policy=RULES, charge=charge, card=refreshed, others=[], now=NOW)
    assert not predunning.card_reminder_due(policy=RULES, charge=charge, card=None, others=[newer], now=NOW)


def test_a_written_card_reminder_is_dropped_once_the_card_is_replaced_or_refreshed() -> None:
    charge = dt.datetime(2027, 4, 2, 9, tzinfo=dt.UTC)
    written = NOW
    expiring = _card(2027, 3)

    def stale(card: Card | None, *others: Card) -> str | None:
        return predunning.card_reminder_stale(
            card=card,
            reminded_card_id="pm_on_file",
            written_at=written,
            charge=charge,
            others=[expiring, *others],
        )

    assert stale(expiring) is None
    assert stale(_card(2029, 5, refreshed=written + dt.timedelta(hours=3))) == "card_refreshed"
    assert stale(_card(2029, 5)) == "card_refreshed"
    assert stale(_card(2030, 1, pm="pm_newer")) == "card_replaced"
    assert stale(expiring, _card(2030, 1, pm="pm_newer")) == "card_replaced"
    assert stale(None) == "card_replaced"


@pytest.mark.parametrize(
    ("interval", "days_ahead", "due"),
    [
        ("quarter", 7, True),
        ("quarter", 8, False),
        ("year", 30, True),
        ("year", 31, False),
        ("year", 1, True),
        ("month", 3, False),
    ],
)
def test_renewal_reminders_go_before_quarterly_and_yearly_renewals_only(
    interval: str, days_ahead: int, due: bool
) -> None:
    charge = NOW + dt.timedelta(days=days_ahead)
    assert predunning.renewal_reminder_due(policy=RULES, interval=interval, charge=charge, now=NOW) is due


def test_a_trial_charges_at_its_end_and_only_live_subscriptions_are_reminded() -> None:
    period_end = dt.datetime(2027, 5, 1, tzinfo=dt.UTC)
    trial_end = dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
    assert (
        predunning.charge_at(status="trialing", current_period_end=period_end, trial_end=trial_end)
        == trial_end
    )
    assert (
        predunning.charge_at(status="active", current_period_end=period_end, trial_end=trial_end)
        == period_end
    )
    assert predunning.live(status="active", paused=False, cancel_at_period_end=False)
    assert predunning.live(status="trialing", paused=False, cancel_at_period_end=False)
    assert not predunning.live(status="active", paused=True, cancel_at_period_end=False)
    assert not predunning.live(status="active", paused=False, cancel_at_period_end=True)
    for status in ("paused", "past_due", "canceled", "unpaid", "incomplete"):
        assert not predunning.live(status=status, paused=False, cancel_at_period_end=False)


def test_each_reminder_is_keyed_by_its_kind_and_the_charge_date() -> None:
    charge = dt.datetime(2027, 4, 2, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert predunning.step(kind=Kind.CARD_EXPIRING, charge=charge) == "card_expiring:2027-04-03"
    assert predunning.step(kind=Kind.RENEWAL, charge=charge) == "renewal:2027-04-03"


def test_a_renewal_charges_the_plan_scheduled_for_it() -> None:
    assert predunning.renewal_amount(unit_amount=1900, quantity=2, scheduled_unit_amount=None) == 3800
    assert predunning.renewal_amount(unit_amount=1900, quantity=2, scheduled_unit_amount=900) == 1800


def test_the_policy_is_configured_and_checked() -> None:
    built = policy.build(
        {"predunning": {"card_days": 10, "renewal_days": {"quarterly": 5, "yearly": 21}, "batch": 100}}
    )
    assert (built.predunning.card_days, built.predunning.renewal_days.yearly, built.predunning.batch) == (
        10,
        21,
        100,
    )
    assert predunning.horizon_days(policy=built.predunning) == 21
    with pytest.raises(ValueError, match="card_days"):
        policy.build({"predunning": {"card_days": 0}})
    with pytest.raises(ValueError, match="no setting"):
        policy.build({"predunning": {"cards_days": 3}})
