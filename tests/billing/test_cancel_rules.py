"""The rules of cancelling on their own (billing/cancellation.py): the offer each reason gets,
the cheaper plan offered to a customer who finds theirs too expensive, who may cancel or keep."""

from __future__ import annotations

import pytest

from billing.cancellation import Offer, Reason, cancel_refusal, cheaper_plan, keep_refusal, offer_for
from billing.plans import Plan
from billing.state import Phase


def _plan(tier: str, rank: int, interval: str, amount: int, **extra: object) -> Plan:
    return Plan(
        tier=tier,
        tier_name=tier.title(),
        rank=rank,
        interval=interval,
        currency=str(extra.pop("currency", "eur")),
        amount=amount,
        **extra,  # type: ignore[arg-type]
    )


BASIC = _plan("basic", 1, "month", 900)
BASIC_YEAR = _plan("basic", 1, "year", 9000)
STANDARD = _plan("standard", 2, "month", 1900)
STANDARD_QUARTER = _plan("standard", 2, "quarter", 5400)
STANDARD_YEAR = _plan("standard", 2, "year", 19000)
PRO = _plan("pro", 3, "month", 4900)
CATALOG = [BASIC, BASIC_YEAR, STANDARD, STANDARD_QUARTER, STANDARD_YEAR, PRO]


@pytest.mark.parametrize(
    ("reason", "offer"),
    [
        (Reason.TOO_EXPENSIVE, Offer.CHEAPER_PLAN),
        (Reason.NOT_USING, Offer.PAUSE),
        (Reason.TEMPORARY, Offer.PAUSE),
        (Reason.MISSING_FEATURE, Offer.NONE),
        (Reason.SWITCHING, Offer.NONE),
        (Reason.OTHER, Offer.NONE),
    ],
)
def test_each_reason_gets_one_honest_alternative(reason: Reason, offer: Offer) -> None:
    assert offer_for(reason=reason) == offer


def test_the_cheaper_plan_is_a_lower_tier_first_then_a_longer_interval() -> None:
    # Pro monthly: the highest lower tier on the same interval (they lose least).
    assert cheaper_plan(current=PRO, offered=CATALOG) == STANDARD
    # Basic monthly: no lower tier; the yearly Basic costs less a month.
    assert cheaper_plan(current=BASIC, offered=CATALOG) == BASIC_YEAR
    # Basic yearly: nothing costs less.
    assert cheaper_plan(current=BASIC_YEAR, offered=CATALOG) is None
    # Another currency or a tier not offered here is never offered.
    assert cheaper_plan(current=PRO, offered=[_plan("standard", 2, "month", 1900, currency="sek")]) is None
    assert cheaper_plan(current=PRO, offered=[_plan("standard", 2, "month", 1900, self_serve=False)]) is None


@pytest.mark.parametrize(
    ("phase", "cancel_words", "keep_words"),
    [
        (Phase.ACTIVE, None, "nothing to undo"),
        (Phase.PAST_DUE, None, "nothing to undo"),
        (Phase.PAUSED, None, "nothing to undo"),
        (Phase.TRIAL, None, "nothing to undo"),
        (Phase.ENDING, "already set to end", None),
        (Phase.ENDED, "no active subscription", "nothing to undo"),
        (Phase.INCOMPLETE, "no active subscription", "nothing to undo"),
    ],
)
def test_who_may_cancel_and_who_may_keep(
    phase: Phase, cancel_words: str | None, keep_words: str | None
) -> None:
    for said, words in ((cancel_refusal(phase=phase), cancel_words), (keep_refusal(phase=phase), keep_words)):
        if words is None:
            assert said is None
        else:
            assert said is not None and words in said
