"""The payment-extension rules on their own (billing/extensions.py): the dates a customer may pick,
what is refused, what is approved at once and what goes to staff, and when the charge is tried."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from billing import extensions, recovery
from billing.extensions import Facts, Refusal, Review, Rules

STOCKHOLM = ZoneInfo("Europe/Stockholm")
# Declined on 20 March at 06:00 in Stockholm.
DUE = dt.datetime(2027, 3, 20, 5, 0, tzinfo=dt.UTC)
NOW = DUE + dt.timedelta(hours=2)
RULES = Rules()


def _facts(*, until: dt.date, amount: int = 1900, currency: str = "eur", earlier: int = 0) -> Facts:
    return Facts(due=DUE, until=until, amount=amount, currency=currency, earlier=earlier, running=False)


def _day(n: int) -> dt.date:
    return dt.date(2027, 3, 20) + dt.timedelta(days=n)


def test_the_calendar_runs_from_tomorrow_to_the_policys_last_day_after_the_due_date() -> None:
    window = extensions.window(due=DUE, now=NOW, zone=STOCKHOLM, rules=RULES)
    assert window == extensions.Window(_day(1), _day(14))
    assert _day(14) in window and _day(15) not in window and _day(0) not in window
    # Asked a week later, the first day is tomorrow; the last day stays.
    later = extensions.window(due=DUE, now=NOW + dt.timedelta(days=7), zone=STOCKHOLM, rules=RULES)
    assert later == extensions.Window(_day(8), _day(14))
    # Past the last day nothing is left to pick.
    assert extensions.window(due=DUE, now=NOW + dt.timedelta(days=14), zone=STOCKHOLM, rules=RULES) is None


def test_the_due_date_is_the_customers_local_day() -> None:
    # 23:30 UTC on 19 March is already 20 March in Stockholm.
    late = dt.datetime(2027, 3, 19, 23, 30, tzinfo=dt.UTC)
    window = extensions.window(due=late, now=late, zone=STOCKHOLM, rules=RULES)
    assert window is not None and window.first == _day(1)


@pytest.mark.parametrize(
    ("until", "earlier", "expected"),
    [
        (_day(5), 0, None),
        (_day(14), 0, None),
        (_day(15), 0, Refusal.OUT_OF_RANGE),
        (_day(0), 0, Refusal.OUT_OF_RANGE),
        (_day(5), 1, None),
        (_day(5), 2, Refusal.TOO_MANY),
    ],
)
def test_days_and_requests_per_year_are_limited(
    until: dt.date, earlier: int, expected: Refusal | None
) -> None:
    window = extensions.window(due=DUE, now=NOW, zone=STOCKHOLM, rules=RULES)
    assert (
        extensions.refusal(facts=_facts(until=until, earlier=earlier), allowed=window, rules=RULES)
        == expected
    )


def test_a_running_request_refuses_another() -> None:
    facts = Facts(due=DUE, until=_day(3), amount=1900, currency="eur", earlier=0, running=True)
    window = extensions.window(due=DUE, now=NOW, zone=STOCKHOLM, rules=RULES)
    assert extensions.refusal(facts=facts, allowed=window, rules=RULES) == Refusal.RUNNING


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (_facts(until=_day(7)), []),
        (_facts(until=_day(8)), [Review.LONG]),
        (_facts(until=_day(3), earlier=1), [Review.REPEAT]),
        (_facts(until=_day(3), amount=20000), []),
        (_facts(until=_day(3), amount=20001), [Review.AMOUNT]),
        (_facts(until=_day(3), amount=150000, currency="sek"), []),
        (_facts(until=_day(3), amount=250000, currency="sek"), [Review.AMOUNT]),
        # A currency without a threshold always goes to staff.
        (_facts(until=_day(3), amount=100, currency="chf"), [Review.AMOUNT]),
        (_facts(until=_day(10), amount=30000, earlier=1), [Review.LONG, Review.REPEAT, Review.AMOUNT]),
    ],
)
def test_what_is_approved_at_once_and_what_goes_to_staff(facts: Facts, expected: list[Review]) -> None:
    assert extensions.reviews(facts=facts, zone=STOCKHOLM, rules=RULES) == expected


def test_staff_may_approve_a_second_request_at_once_if_the_policy_says_so() -> None:
    rules = Rules(auto_first_only=False)
    assert extensions.reviews(facts=_facts(until=_day(3), earlier=1), zone=STOCKHOLM, rules=rules) == []


def test_the_charge_is_tried_at_the_policys_local_hour_on_the_agreed_day() -> None:
    # 10:00 in Stockholm is 09:00 UTC in winter and 08:00 in summer.
    assert extensions.charge_at(until=dt.date(2027, 3, 25), zone=STOCKHOLM, rules=RULES) == dt.datetime(
        2027, 3, 25, 9, 0, tzinfo=dt.UTC
    )
    assert extensions.charge_at(until=dt.date(2027, 4, 5), zone=STOCKHOLM, rules=RULES) == dt.datetime(
        2027, 4, 5, 8, 0, tzinfo=dt.UTC
    )


def test_before_a_renewal_one_may_ask_only_when_it_is_close() -> None:
    renewal = NOW + dt.timedelta(days=10)
    assert extensions.may_ask_before_renewal(renewal=renewal, now=NOW, rules=RULES)
    assert not extensions.may_ask_before_renewal(renewal=NOW + dt.timedelta(days=20), now=NOW, rules=RULES)
    assert not extensions.may_ask_before_renewal(renewal=NOW - dt.timedelta(days=1), now=NOW, rules=RULES)


def test_a_policy_version_that_does_not_hold_together_is_refused() -> None:
    data = recovery.DEFAULT.model_dump(mode="json")
    data["extensions"] = {**data["extensions"], "auto_days": 20, "max_days": 10}
    with pytest.raises(recovery.InvalidPolicy, match="auto_days"):
        recovery.spec(data=data)
    data["extensions"] = {**recovery.DEFAULT.extensions.model_dump(mode="json"), "charge_hour": 3}
    with pytest.raises(recovery.InvalidPolicy, match="charge_hour"):
        recovery.spec(data=data)
